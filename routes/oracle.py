"""Routes of the oracle area (to be built)."""

from fastapi import APIRouter

router = APIRouter(prefix="/oracle", tags=["oracle"])
