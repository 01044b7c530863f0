"""Question analysis: what a French question about the audit trail asks (intent, entities, time)."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI
from loguru import logger

import nlp_lexicon
import nlp_service
from database import StoreUnavailable
from deps import CurrentUser, StoreDep
from errors import ApiError
from models import Analysis, AnalyzeRequest, DependencyHealth

router = APIRouter(prefix="/audit", tags=["audit"])


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load spaCy once, off the event loop, and report it in /api/health."""
    started = time.perf_counter()
    await asyncio.to_thread(nlp_service.load)
    load_ms = (time.perf_counter() - started) * 1000

    async def nlp_health() -> DependencyHealth:
        if not nlp_service.is_loaded():
            return DependencyHealth(status="down", detail="modèle spaCy non chargé")
        return DependencyHealth(
            status="up", detail=f"{nlp_service.SPACY_MODEL} ({load_ms:.0f} ms)", kind="spacy"
        )

    app.state.health_checks["nlp"] = nlp_health
    # Build the gazetteer in the background so the first question does not pay for it.
    warm = asyncio.create_task(_warm_gazetteer(app.state.store))
    yield
    warm.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await warm


async def _warm_gazetteer(store) -> None:
    try:
        await nlp_lexicon.gazetteer(store)
    except Exception as exc:  # the store may be down at start-up: the first question retries
        logger.warning("gazetteer warm-up failed: {}", exc)


@router.post("/analyze", response_model=Analysis)
async def analyze(body: AnalyzeRequest, store: StoreDep, user: CurrentUser) -> Analysis:
    """Analyse a French question: intent, entities found in the audit trail, time range, grouping."""
    if not body.query.strip():
        raise ApiError(400, "empty_query", "La question est vide.")
    try:
        return await nlp_service.analyze(body.query, store=store, previous=body.previous)
    except StoreUnavailable as exc:
        raise ApiError(503, "store_unavailable", "La base d'audit est indisponible.") from exc
