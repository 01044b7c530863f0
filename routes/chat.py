"""Routes of the chat area (to be built)."""

from fastapi import APIRouter

router = APIRouter(prefix="/chat", tags=["chat"])
