"""Cache area: answer cache statistics, clean-up, and chat action statistics."""

import contextlib
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request

from cache_service import AnswerCache, CacheUnavailable
from config import settings
from deps import AdminUser, CurrentUser
from errors import ApiError
from models import DependencyHealth

router = APIRouter(prefix="/cache", tags=["cache"])

TIMEFRAME = re.compile(r"^(\d{1,4})([mhdw])$")
UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    cache = AnswerCache(settings.SQLITE_DB_PATH, ttl_seconds=settings.CACHE_TTL_SECONDS)
    await cache.open()
    app.state.answer_cache = cache

    async def check() -> DependencyHealth:
        try:
            latency = await cache.ping()
        except Exception as exc:
            return DependencyHealth(status="down", detail=str(exc)[:200], kind="sqlite")
        return DependencyHealth(status="up", latency_ms=round(latency, 2), kind="sqlite")

    app.state.health_checks["cache"] = check
    try:
        yield
    finally:
        await cache.close()


async def get_cache(request: Request) -> AnswerCache:
    cache = getattr(request.app.state, "answer_cache", None)
    if cache is None:
        raise ApiError(503, "cache_unavailable", "Le cache des réponses est indisponible.")
    return cache


CacheDep = Annotated[AnswerCache, Depends(get_cache)]


def window(timeframe: str | None, start: datetime | None, end: datetime | None) -> tuple[float, float]:
    """[start, end) in epoch seconds from `timeframe` (1h, 24h, 7d, 30d) or ISO start/end."""
    now = time.time()
    if timeframe:
        m = TIMEFRAME.match(timeframe.strip())
        if not m:
            raise ApiError(422, "invalid_timeframe", "timeframe attendu : 1h, 24h, 7d, 30d…")
        return now - int(m.group(1)) * UNITS[m.group(2)], now
    if start or end:
        lo = _epoch(start) if start else 0.0
        hi = _epoch(end) if end else now
        if hi <= lo:
            raise ApiError(422, "invalid_window", "La fin de la période doit suivre son début.")
        return lo, hi
    return now - timedelta(days=7).total_seconds(), now


def _epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=settings.tz)).timestamp()


@router.get("/stats")
async def cache_stats(user: CurrentUser, cache: CacheDep) -> dict[str, Any]:
    """Answer cache: entries, size, hits, misses and hit rate."""
    try:
        return await cache.stats()
    except CacheUnavailable as exc:
        raise ApiError(503, "cache_unavailable", str(exc)) from None


@router.get("/actions")
async def cache_actions(
    user: CurrentUser,
    cache: CacheDep,
    timeframe: Annotated[str | None, Query(max_length=8)] = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    """Chat questions answered in a time window (default 7 days): yours, or everyone's for admins."""
    lo, hi = window(timeframe, start, end)
    owner = None if user.get("role") == "admin" else user["username"]
    stats = await cache.actions(start=lo, end=hi, username=owner)
    return {
        "start": datetime.fromtimestamp(lo, settings.tz).isoformat(timespec="seconds"),
        "end": datetime.fromtimestamp(hi, settings.tz).isoformat(timespec="seconds"),
        **stats,
        "by_user": [
            {
                **u,
                "last_action": datetime.fromtimestamp(u["last_action"], settings.tz).isoformat(
                    timespec="seconds"
                ),
            }
            for u in stats["by_user"]
        ],
    }


@router.post("/cleanup")
async def cache_cleanup(
    admin: AdminUser, cache: CacheDep, all: Annotated[bool, Query(alias="all")] = False
) -> dict[str, Any]:
    """Remove expired answers (every answer with all=true) and action records older than 90 days."""
    removed = await cache.cleanup(everything=all)
    return {**removed, "stats": await cache.stats()}
