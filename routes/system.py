"""Health and information: the only routes besides login and registration open without a token."""

import time
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from config import settings
from database import StoreUnavailable
from deps import OptionalUser, StoreDep
from models import DependencyHealth, HealthResponse, InfoResponse

router = APIRouter(tags=["system"])


async def _store_health(store) -> DependencyHealth:
    try:
        latency = await store.ping()
    except StoreUnavailable as exc:
        return DependencyHealth(status="down", detail=str(exc)[:200], kind=store.kind)
    return DependencyHealth(status="up", latency_ms=round(latency, 2), kind=store.kind)


@router.get("/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
async def health(request: Request, store: StoreDep) -> JSONResponse:
    """State of the service and of each dependency; 503 when the audit store is unreachable."""
    deps = {"store": await _store_health(store)}
    for name, check in getattr(request.app.state, "health_checks", {}).items():
        started = time.perf_counter()
        try:
            deps[name] = await check()
        except Exception as exc:  # a failing check must not fail the health route
            deps[name] = DependencyHealth(status="down", detail=str(exc)[:200])
        if deps[name].latency_ms is None and deps[name].status == "up":
            deps[name].latency_ms = round((time.perf_counter() - started) * 1000, 2)
    deps.setdefault(
        "llm",
        DependencyHealth(
            status="up" if settings.llm_enabled else "not_configured",
            detail=settings.OPENAI_MODEL if settings.llm_enabled else "réponses par gabarits",
        ),
    )
    if deps["store"].status == "down":
        status = "unhealthy"
    elif any(d.status in ("down", "degraded") for d in deps.values()):
        status = "degraded"
    else:
        status = "healthy"
    body = HealthResponse(
        status=status, version=settings.APP_VERSION, time=datetime.now(UTC), dependencies=deps
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=503 if status == "unhealthy" else 200)


@router.get("/info", response_model=InfoResponse)
async def info(store: StoreDep, user: OptionalUser) -> InfoResponse:
    """Name, version and store kind; document counts with a token (users: admins only)."""
    counts: dict[str, int] = {}
    if user is not None:
        counts["audit_events"] = await store.audit.estimated_document_count()
        if user.get("role") == "admin":
            counts["users"] = await store.users.estimated_document_count()
    return InfoResponse(
        name=settings.APP_NAME,
        version=settings.APP_VERSION,
        store=store.kind,
        timezone=settings.APP_TIMEZONE,
        llm_enabled=settings.llm_enabled,
        counts=counts,
    )
