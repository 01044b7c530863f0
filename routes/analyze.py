"""Question analysis: how the chat reads a French question about the audit trail (its plan)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI
from loguru import logger

import chat_service
import nlp_lexicon
from database import StoreUnavailable
from deps import CurrentUser, StoreDep
from errors import ApiError
from models import Analysis, AnalyzeRequest, DependencyHealth

router = APIRouter(prefix="/audit", tags=["audit"])


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Build the gazetteer in the background (the first question does not pay for it); report it."""

    async def nlp_health() -> DependencyHealth:
        gaz = nlp_lexicon.loaded(app.state.store)
        if gaz is None:
            return DependencyHealth(
                status="up", detail="valeurs connues en cours de chargement", kind="gazetteer"
            )
        known = sum(len(v) for v in gaz.values.values())
        return DependencyHealth(status="up", detail=f"{known} valeurs connues", kind="gazetteer")

    app.state.health_checks["nlp"] = nlp_health
    warm = asyncio.create_task(_warm_gazetteer(app.state.store, getattr(app.state, "ready", None)))
    yield
    warm.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await warm


async def _warm_gazetteer(store, ready: asyncio.Event | None = None) -> None:
    # After start-up: its trust check counts the trail, and the other areas' index creations would wait.
    if ready is not None:
        await ready.wait()
    try:
        await nlp_lexicon.gazetteer(store)
    except Exception as exc:  # the store may be down at start-up: the first question retries
        logger.warning("gazetteer warm-up failed: {}", exc)


@router.post("/analyze", response_model=Analysis)
async def analyze(body: AnalyzeRequest, store: StoreDep, user: CurrentUser) -> Analysis:
    """Read a French question as the chat does: its plan, or the words that were not understood."""
    if not body.query.strip():
        raise ApiError(400, "empty_query", "La question est vide.")
    try:
        return await chat_service.analyze(store, body.query, body.previous)
    except StoreUnavailable as exc:
        raise ApiError(503, "store_unavailable", "La base d'audit est indisponible.") from exc
