"""Scheduled reports (admin): weekly or monthly, sent by e-mail by the alerts' schedule."""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from pydantic import BaseModel

import report_schedules
import reports
from database import Store
from deps import AdminUser, StoreDep

router = APIRouter(prefix="/report-schedules", tags=["reports"])


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Indexes, and the runner as a job of the alerts' schedule (its lease: one process sends)."""
    store: Store = app.state.store
    await report_schedules.ensure_indexes(store)
    app.state.alert_scheduler.add_job("report-schedules", lambda: report_schedules.run_due(store))
    yield


class ScheduleList(BaseModel):
    schedules: list[report_schedules.SchedulePublic]
    reports: dict[str, str]  # kind: French title
    formats: list[str]


def _who(user: dict[str, Any]) -> str:
    return str(user.get("username") or user.get("_id"))


@router.get("", response_model=ScheduleList)
async def list_schedules(_: AdminUser, store: StoreDep) -> ScheduleList:
    """The report schedules (admin), with the reports and formats they can send."""
    return ScheduleList(
        schedules=await report_schedules.list_schedules(store),
        reports={kind: title for kind, (title, _) in reports.REPORTS.items()},
        formats=list(report_schedules.MEDIA_TYPES),
    )


@router.post("", response_model=report_schedules.SchedulePublic, status_code=201)
async def create_schedule(
    user: AdminUser, store: StoreDep, body: report_schedules.ScheduleCreate
) -> report_schedules.SchedulePublic:
    """Schedule a report (admin): its first period is the first instant from now."""
    return await report_schedules.save_schedule(store, body, by=_who(user))


@router.get("/{schedule_id}", response_model=report_schedules.ScheduleDetail)
async def read_schedule(_: AdminUser, store: StoreDep, schedule_id: str) -> report_schedules.ScheduleDetail:
    """One schedule with its latest runs (sent, pending or failed, with the error)."""
    return await report_schedules.get_schedule(store, schedule_id)


@router.put("/{schedule_id}", response_model=report_schedules.SchedulePublic)
async def update_schedule(
    user: AdminUser, store: StoreDep, schedule_id: str, body: report_schedules.ScheduleCreate
) -> report_schedules.SchedulePublic:
    """Replace a schedule (admin); enable or disable it with `enabled`."""
    return await report_schedules.save_schedule(store, body, by=_who(user), schedule_id=schedule_id)


@router.delete("/{schedule_id}", status_code=204)
async def delete_schedule(_: AdminUser, store: StoreDep, schedule_id: str) -> Response:
    """Delete a schedule and its runs (admin)."""
    await report_schedules.delete_schedule(store, schedule_id)
    return Response(status_code=204)


@router.post("/{schedule_id}/send", response_model=report_schedules.ScheduleRun)
async def send_now(_: AdminUser, store: StoreDep, schedule_id: str) -> report_schedules.ScheduleRun:
    """Send the report of the period ending now, at once (admin); a failure is retried later."""
    return await report_schedules.send_now(store, schedule_id)


@router.post("/{schedule_id}/runs/{run_id}/retry", response_model=report_schedules.ScheduleRun)
async def retry_run(
    user: AdminUser, store: StoreDep, schedule_id: str, run_id: str
) -> report_schedules.ScheduleRun:
    """Retry a run that failed for good, at once (admin); 409 unless it failed."""
    return await report_schedules.retry_run(store, schedule_id, run_id, by=_who(user))
