"""Alerts (read, acknowledge, close, comment) and alert policies (admin); the detection schedule."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from loguru import logger
from pydantic import BaseModel, Field

import alerts
import notify
from config import settings
from database import Store
from deps import AdminUser, CurrentUser, StoreDep
from errors import ApiError
from routes.audit import parse_instant

router = APIRouter(tags=["alerts"])
_background: set[asyncio.Task] = set()


def schedule_minutes(oracle_configured: bool) -> float:
    if settings.ALERTS_SCHEDULE_MINUTES is not None:
        return settings.ALERTS_SCHEDULE_MINUTES
    return 5.0 if oracle_configured else 0.0


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    store: Store = app.state.store
    await alerts.ensure_indexes(store)
    oracle = getattr(app.state, "oracle", None)
    configured = bool(oracle is not None and oracle.configured)

    async def sync() -> Any:
        assert oracle is not None  # only scheduled when configured
        return await oracle.sync_audit(store, batch_size=settings.ORACLE_SYNC_BATCH_SIZE)

    scheduler = alerts.Scheduler(
        store,
        tick_seconds=settings.ALERTS_TICK_SECONDS,
        every_minutes=schedule_minutes(configured),
        sync=sync if configured else None,
        deliver=lambda: notify.deliver_due(store),
    )
    app.state.alert_scheduler = scheduler
    if settings.ALERTS_ENABLED:
        scheduler.start()
        logger.info("alerts: schedule every {} min (0 = after imports and syncs only)", scheduler.every)
    try:
        yield
    finally:
        await scheduler.stop()
        for task in list(_background):
            task.cancel()


def deliver_soon(store: Store) -> None:
    """Send the queued notifications now, without holding the request."""
    task = asyncio.create_task(notify.deliver_due(store), name="alerts-deliver")
    _background.add(task)
    task.add_done_callback(_background.discard)


async def after_ingest(request: Request, inserted: int) -> alerts.RunSummary | None:
    """Run the detectors on what an import or a sync added, then send the notifications."""
    if not settings.ALERTS_ENABLED or inserted <= 0:
        return None
    store: Store = request.app.state.store
    try:
        summary = await alerts.run_detection(store)
    except Exception as exc:  # the import itself succeeded: the schedule will catch up
        logger.opt(exception=exc).warning("alerts: detection after ingest failed")
        return None
    if summary.deliveries:
        deliver_soon(store)
    return summary


# --------------------------------------------------------------------------- alerts


class AlertList(BaseModel):
    alerts: list[alerts.Alert]
    total: int
    limit: int
    offset: int


class AlertPatch(BaseModel):
    status: alerts.Status | None = None
    comment: str | None = Field(default=None, min_length=1, max_length=4000)


class CommentIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class StatusIn(BaseModel):
    comment: str | None = Field(default=None, min_length=1, max_length=4000)


def _who(user: dict[str, Any]) -> str:
    return str(user.get("username") or user.get("_id"))


def _not_found(alert_id: str) -> ApiError:
    return ApiError(404, "alert_not_found", f"Alerte introuvable : {alert_id[:64]}.")


def _csv(raw: str | None) -> list[str]:
    return [v.strip() for v in (raw or "").split(",") if v.strip()]


@router.get("/alerts", response_model=AlertList)
async def list_alerts(
    _: CurrentUser,
    store: StoreDep,
    status: Annotated[str | None, Query(description="new, acknowledged, closed (comma-separated)")] = None,
    severity: Annotated[str | None, Query(description="minimum severity: low, medium or high")] = None,
    type: Annotated[str | None, Query(description="comma-separated detector types")] = None,
    dbusername: Annotated[str | None, Query(max_length=128)] = None,
    userhost: Annotated[str | None, Query(max_length=256)] = None,
    start: Annotated[str | None, Query(description="ISO 8601: alerts about activity from then")] = None,
    end: Annotated[str | None, Query(description="ISO 8601: alerts about activity before then")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> AlertList:
    """Alerts, newest first, with filters (the evidence is in GET /alerts/{id})."""
    statuses = _csv(status)
    bad = [s for s in statuses if s not in alerts.STATUS_LABELS]
    if bad:
        raise ApiError(
            422, "validation_error", f"« status » : new, acknowledged ou closed (reçu : {bad[0][:20]})."
        )
    if severity is not None and severity not in alerts.SEVERITY_LABELS:
        raise ApiError(422, "validation_error", "« severity » : low, medium ou high.")
    types = _csv(type)
    unknown = [t for t in types if t not in alerts.DETECTORS]
    if unknown:
        raise ApiError(
            422,
            "validation_error",
            f"« type » inconnu : {unknown[0][:40]} ; choix : {', '.join(alerts.DETECTORS)}.",
        )
    query = alerts.AlertQuery(
        status=statuses,  # type: ignore[arg-type]
        min_severity=severity,  # type: ignore[arg-type]
        types=types,
        user=dbusername,
        host=userhost,
        start=parse_instant(start, "start") if start else None,
        end=parse_instant(end, "end") if end else None,
        limit=limit,
        offset=offset,
    )
    found, total = await alerts.list_alerts(store, query)
    return AlertList(alerts=found, total=total, limit=limit, offset=offset)


@router.post("/alerts/run", response_model=alerts.RunSummary)
async def run_now(_: AdminUser, store: StoreDep) -> alerts.RunSummary:
    """Run the detectors now on what changed since the last run (admin)."""
    summary = await alerts.run_detection(store)
    if summary.deliveries:
        deliver_soon(store)
    return summary


@router.get("/alerts/{alert_id}", response_model=alerts.Alert)
async def read_alert(_: CurrentUser, store: StoreDep, alert_id: str) -> alerts.Alert:
    """One alert with its evidence (event ids), history, comments and notifications."""
    alert = await alerts.get_alert(store, alert_id)
    if alert is None:
        raise _not_found(alert_id)
    return alert


async def _change(
    store: Store, user: dict[str, Any], alert_id: str, status: alerts.Status | None, comment: str | None
) -> alerts.Alert:
    """The one place an alert changes: its status (with an optional comment), or a comment alone."""
    if status is not None:
        alert = await alerts.set_status(store, alert_id, status, by=_who(user), comment=comment)
    else:
        alert = await alerts.add_comment(store, alert_id, comment or "", by=_who(user))
    if alert is None:
        raise _not_found(alert_id)
    return alert


@router.patch("/alerts/{alert_id}", response_model=alerts.Alert)
async def patch_alert(user: CurrentUser, store: StoreDep, alert_id: str, body: AlertPatch) -> alerts.Alert:
    """Change the status (new, acknowledged, closed) and/or add a comment."""
    if body.status is None and body.comment is None:
        raise ApiError(422, "validation_error", "Indiquez « status » ou « comment ».")
    return await _change(store, user, alert_id, body.status, body.comment)


@router.post("/alerts/{alert_id}/acknowledge", response_model=alerts.Alert)
async def acknowledge(
    user: CurrentUser, store: StoreDep, alert_id: str, body: StatusIn | None = None
) -> alerts.Alert:
    """Mark the alert as taken into account (who and when are kept)."""
    return await _change(store, user, alert_id, "acknowledged", body.comment if body else None)


@router.post("/alerts/{alert_id}/close", response_model=alerts.Alert)
async def close(
    user: CurrentUser, store: StoreDep, alert_id: str, body: StatusIn | None = None
) -> alerts.Alert:
    """Close the alert (who and when are kept)."""
    return await _change(store, user, alert_id, "closed", body.comment if body else None)


@router.post("/alerts/{alert_id}/comments", response_model=alerts.Alert)
async def comment(user: CurrentUser, store: StoreDep, alert_id: str, body: CommentIn) -> alerts.Alert:
    """Add a comment to the alert (who and when are kept)."""
    return await _change(store, user, alert_id, None, body.text)


@router.post("/alerts/{alert_id}/deliveries/{delivery_id}/retry", response_model=alerts.Alert)
async def retry_delivery(_: AdminUser, store: StoreDep, alert_id: str, delivery_id: str) -> alerts.Alert:
    """Queue a failed notification again (admin)."""
    if not await notify.retry(store, delivery_id):
        raise ApiError(404, "delivery_not_found", "Notification en échec introuvable.")
    deliver_soon(store)
    alert = await alerts.get_alert(store, alert_id)
    if alert is None:
        raise _not_found(alert_id)
    return alert


# --------------------------------------------------------------------------- policies


class PolicyList(BaseModel):
    policies: list[alerts.Policy]
    detectors: dict[str, str]
    parameters: dict[str, float]  # the global values each policy may override


def _parameters() -> dict[str, float]:
    return {key: getattr(settings, name) for key, name in alerts.PARAMETERS.items()}


@router.get("/alert-policies", response_model=PolicyList)
async def list_policies(_: AdminUser, store: StoreDep) -> PolicyList:
    """The alert policies (admin); with none, every detector raises alerts from ALERTS_MIN_SEVERITY."""
    return PolicyList(
        policies=await alerts.list_policies(store),
        detectors=dict(alerts.anomalies.TYPE_LABELS),
        parameters=_parameters(),
    )


@router.post("/alert-policies", response_model=alerts.Policy, status_code=201)
async def create_policy(user: AdminUser, store: StoreDep, body: alerts.PolicyIn) -> alerts.Policy:
    """Create an alert policy (admin)."""
    return await alerts.save_policy(store, body, by=_who(user))


@router.get("/alert-policies/{policy_id}", response_model=alerts.Policy)
async def read_policy(_: AdminUser, store: StoreDep, policy_id: str) -> alerts.Policy:
    """One alert policy (admin)."""
    policy = await alerts.get_policy(store, policy_id)
    if policy is None:
        raise ApiError(404, "policy_not_found", "Politique d'alerte introuvable.")
    return policy


@router.put("/alert-policies/{policy_id}", response_model=alerts.Policy)
async def update_policy(
    user: AdminUser, store: StoreDep, policy_id: str, body: alerts.PolicyIn
) -> alerts.Policy:
    """Replace an alert policy (admin); enable or disable it with `enabled`."""
    try:
        return await alerts.save_policy(store, body, by=_who(user), policy_id=policy_id)
    except KeyError:
        raise ApiError(404, "policy_not_found", "Politique d'alerte introuvable.") from None


@router.delete("/alert-policies/{policy_id}", status_code=204)
async def delete_policy(_: AdminUser, store: StoreDep, policy_id: str) -> Response:
    """Delete an alert policy (admin)."""
    if not await alerts.delete_policy(store, policy_id):
        raise ApiError(404, "policy_not_found", "Politique d'alerte introuvable.")
    return Response(status_code=204)
