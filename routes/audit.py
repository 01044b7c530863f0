"""Routes of the audit area (to be built)."""

from fastapi import APIRouter

router = APIRouter(prefix="/audit", tags=["audit"])
