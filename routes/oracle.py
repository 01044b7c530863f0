"""Oracle area (admin only): read-only SQL console, pool, live metrics, audit trail sync."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from loguru import logger
from pydantic import BaseModel, Field, model_validator
from sse_starlette import EventSourceResponse, ServerSentEvent

import oracle_service as svc
from config import settings
from deps import AdminUser, StoreDep
from errors import ApiError
from routes.alerts import after_ingest
from sql_guard import MAX_QUERY_CHARS, QueryRefused

router = APIRouter(prefix="/oracle", tags=["oracle"])

PING_SECONDS = 15
BindValue = str | int | float | bool | None


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    service = svc.OracleService(
        svc.OracleConfig.from_settings(settings), allowed_hosts=settings.ORACLE_ALLOWED_HOSTS
    )
    app.state.oracle = service
    app.state.health_checks["oracle"] = service.health
    if service.configured:
        # The pool makes its connections in the background: start-up never waits for Oracle.
        try:
            await service.start()
        except Exception as exc:  # a bad DSN must not stop the service
            logger.warning("oracle: pool not opened at start-up: {}", exc)
    else:
        logger.info("oracle: not configured ({})", ", ".join(service.config.missing()))
    try:
        yield
    finally:
        await service.close()


async def get_oracle(request: Request) -> svc.OracleService:
    return request.app.state.oracle


OracleDep = Annotated[svc.OracleService, Depends(get_oracle)]


def _http_error(exc: Exception) -> ApiError:
    if isinstance(exc, QueryRefused):
        return ApiError(400, "query_refused", f"Requête refusée : {exc}")
    if isinstance(exc, svc.OracleNotConfigured):
        return ApiError(503, "oracle_not_configured", str(exc))
    if isinstance(exc, svc.OracleUnavailable):
        return ApiError(503, "oracle_unavailable", str(exc), headers={"Retry-After": "10"})
    if isinstance(exc, svc.OracleTimeout):
        return ApiError(504, "oracle_timeout", str(exc))
    if isinstance(exc, svc.OracleQueryFailed):
        return ApiError(400, "oracle_error", str(exc))
    if isinstance(exc, svc.HostNotAllowed):
        return ApiError(403, "host_not_allowed", str(exc))
    if isinstance(exc, svc.SyncInProgress):
        return ApiError(409, "sync_in_progress", str(exc))
    raise exc


@contextlib.contextmanager
def _as_http():
    try:
        yield
    except (QueryRefused, svc.OracleError) as exc:
        raise _http_error(exc) from None


# --------------------------------------------------------------------------- models


class OracleConfigIn(BaseModel):
    """Connection settings; fields left out keep their current value (the password too)."""

    dsn: str | None = Field(None, max_length=2000, description="host:port/service or a TNS string")
    host: str | None = Field(None, max_length=255)
    port: int | None = Field(None, ge=1, le=65535)
    service_name: str | None = Field(None, max_length=255)
    username: str | None = Field(None, max_length=128)
    password: str | None = Field(None, max_length=1024)
    pool_min: int | None = Field(None, ge=0, le=64)
    pool_max: int | None = Field(None, ge=1, le=64)
    connect_timeout_seconds: float | None = Field(None, gt=0, le=120)
    connect_retries: int | None = Field(None, ge=0, le=10)
    call_timeout_ms: int | None = Field(None, ge=100, le=600_000)
    max_rows: int | None = Field(None, ge=1, le=100_000)
    start: bool = Field(False, description="open the pool at once")

    def __repr__(self) -> str:  # never print the password
        return f"OracleConfigIn(dsn={self.dsn!r}, host={self.host!r}, username={self.username!r})"


class ExecuteSqlIn(BaseModel):
    query: str = Field(..., min_length=1, max_length=MAX_QUERY_CHARS)
    binds: dict[str, BindValue] | list[BindValue] | None = None
    max_rows: int | None = Field(None, ge=1, le=100_000)


class ExecuteSqlOut(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    elapsed_ms: float


class PoolResizeIn(BaseModel):
    min: int = Field(..., ge=0, le=64)
    max: int = Field(..., ge=1, le=64)

    @model_validator(mode="after")
    def _bounds(self) -> "PoolResizeIn":
        if self.min > self.max:
            raise ValueError("min doit être inférieur ou égal à max")
        return self


class SyncIn(BaseModel):
    limit: int | None = Field(None, ge=1, description="rows to read at most in this run")
    batch_size: int | None = Field(None, ge=1, le=100_000)
    restart: bool = Field(False, description="read from the beginning (already stored rows are skipped)")


# --------------------------------------------------------------------------- routes


@router.get("/config")
async def get_config(_: AdminUser, oracle: OracleDep) -> dict[str, Any]:
    """Current Oracle connection settings (never the password)."""
    return oracle.config.public()


@router.post("/config", responses={403: {"description": "Host outside ORACLE_ALLOWED_HOSTS"}})
async def set_config(body: OracleConfigIn, _: AdminUser, oracle: OracleDep) -> dict[str, Any]:
    """Change the Oracle connection settings at run time; the pool is reopened with them."""
    changes = body.model_dump(exclude={"start"}, exclude_none=True)
    config = oracle.config.updated(**changes)  # an empty string clears a field (e.g. dsn)
    if config.pool_min > config.pool_max:
        raise ApiError(400, "bad_request", "pool_min doit être inférieur ou égal à pool_max.")
    with _as_http():
        await oracle.configure(config, start=body.start)
    return config.public()


@router.post("/test-connection")
async def test_connection(_: AdminUser, oracle: OracleDep) -> dict[str, Any]:
    """Open a connection (with the configured retries) and ping the database."""
    with _as_http():
        return await oracle.test_connection()


@router.post("/execute-sql", response_model=ExecuteSqlOut)
async def execute_sql(body: ExecuteSqlIn, _: AdminUser, oracle: OracleDep) -> dict[str, Any]:
    """Run one read-only query (SELECT / WITH / set operation); others are refused with the reason."""
    with _as_http():
        return await oracle.run_query(body.query, binds=body.binds, max_rows=body.max_rows)


@router.get("/pool-status")
async def pool_status(_: AdminUser, oracle: OracleDep) -> dict[str, Any]:
    """Pool figures: open, busy, min, max, waiting, and whether Oracle is configured."""
    return oracle.pool_status()


@router.post("/pool/start")
async def pool_start(_: AdminUser, oracle: OracleDep) -> dict[str, Any]:
    """Open the pool (its connections are made in the background)."""
    with _as_http():
        await oracle.start()
    return oracle.pool_status()


@router.post("/pool/resize")
async def pool_resize(body: PoolResizeIn, _: AdminUser, oracle: OracleDep) -> dict[str, Any]:
    """New pool bounds; running queries finish on the old pool."""
    with _as_http():
        await oracle.resize(pool_min=body.min, pool_max=body.max)
    return oracle.pool_status()


@router.post("/pool/close")
async def pool_close(_: AdminUser, oracle: OracleDep) -> dict[str, Any]:
    """Close the pool and its connections."""
    await oracle.close_pool()
    return oracle.pool_status()


@router.get("/metrics")
async def metrics(_: AdminUser, oracle: OracleDep) -> dict[str, Any]:
    """Pool figures, query and error counts, latency percentiles, as one JSON document."""
    return oracle.metrics_snapshot()


@router.get("/metrics/stream")
async def metrics_stream(
    request: Request,
    _: AdminUser,
    oracle: OracleDep,
    max_events: Annotated[int | None, Query(ge=1, description="stop after this many events")] = None,
) -> EventSourceResponse:
    """Server-sent `metrics` events every ORACLE_METRICS_INTERVAL_SECONDS, with keep-alive pings."""
    interval = settings.ORACLE_METRICS_INTERVAL_SECONDS

    async def events() -> AsyncIterator[ServerSentEvent]:
        oracle.metrics.streams += 1
        sent = 0
        try:
            while not oracle.closing.is_set():
                # One snapshot serves every client of the same tick.
                snapshot = oracle.metrics_snapshot(max_age=interval / 2)
                yield ServerSentEvent(data=json.dumps(snapshot), event="metrics", id=str(sent))
                sent += 1
                if max_events and sent >= max_events:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(oracle.closing.wait(), timeout=interval)
        finally:
            oracle.metrics.streams -= 1

    return EventSourceResponse(
        events(),
        ping=PING_SECONDS,
        send_timeout=30,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/sync-audit")
async def sync_audit(
    request: Request, _: AdminUser, oracle: OracleDep, store: StoreDep, body: SyncIn | None = None
) -> dict[str, Any]:
    """Copy new UNIFIED_AUDIT_TRAIL rows (after the last synced EVENT_TIMESTAMP) into the audit store."""
    body = body or SyncIn()
    with _as_http():
        summary = await oracle.sync_audit(
            store,
            batch_size=body.batch_size or settings.ORACLE_SYNC_BATCH_SIZE,
            limit=body.limit,
            restart=body.restart,
        )
    run = await after_ingest(request, int(summary.get("inserted") or 0))
    return {**summary, "alerts": run.model_dump(mode="json") if run else None}


@router.get("/sync-audit")
async def sync_audit_state(_: AdminUser, oracle: OracleDep, store: StoreDep) -> dict[str, Any]:
    """Where the audit trail sync stands: the last synced EVENT_TIMESTAMP, and whether it runs."""
    return await oracle.sync_state(store)
