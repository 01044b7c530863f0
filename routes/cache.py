"""Routes of the cache area (to be built)."""

from fastapi import APIRouter

router = APIRouter(prefix="/cache", tags=["cache"])
