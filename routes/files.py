"""Routes of the files area (to be built)."""

from fastapi import APIRouter

router = APIRouter(prefix="/files", tags=["files"])
