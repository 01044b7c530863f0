"""Audit reports (Data Safe set) over any window, as JSON, CSV, XLSX or PDF."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

import reports
from deps import CurrentUser, StoreDep
from errors import ApiError
from routes.audit import time_window

router = APIRouter(prefix="/reports", tags=["reports"])


class ReportKind(BaseModel):
    kind: str
    title: str
    description: str


class ReportList(BaseModel):
    reports: list[ReportKind]
    formats: list[str]


@router.get("", response_model=ReportList)
async def list_reports(_: CurrentUser) -> ReportList:
    """The reports that can be made."""
    return ReportList(
        reports=[ReportKind(kind=k, title=t, description=d) for k, (t, d) in reports.REPORTS.items()],
        formats=["json", "csv", "xlsx", "pdf"],
    )


def _split(raw: list[str] | None) -> list[str]:
    return [v.strip() for item in raw or [] for v in item.split(",") if v.strip()]


@router.get(
    "/{kind}",
    response_model=reports.Report,
    responses={200: {"content": {"text/csv": {}, "application/pdf": {}, "application/octet-stream": {}}}},
)
async def make_report(
    _: CurrentUser,
    store: StoreDep,
    kind: str,
    timeframe: Annotated[str | None, Query(description="1h, 24h, 7d or 30d (default 7d)")] = None,
    start: Annotated[str | None, Query(description="ISO 8601")] = None,
    end: Annotated[str | None, Query(description="ISO 8601, excluded; default now")] = None,
    format: Annotated[str, Query(description="json, csv, xlsx or pdf")] = "json",
    section: Annotated[str | None, Query(description="csv: one section as a plain table")] = None,
    dbusername: Annotated[list[str] | None, Query(description="accounts (repeat or comma-separated)")] = None,
    object_schema: Annotated[list[str] | None, Query(description="schemas")] = None,
    objects: Annotated[list[str] | None, Query(description="watched objects, SCHEMA.OBJECT")] = None,
) -> reports.Report | Response:
    """A report over the window: each figure is computed by the chat's query compiler."""
    if kind not in reports.REPORTS:
        raise ApiError(
            404,
            "report_not_found",
            f"Rapport inconnu : « {kind[:40]} » ; choix : {', '.join(reports.REPORTS)}.",
        )
    if format not in ("json", "csv", "xlsx", "pdf"):
        raise ApiError(422, "validation_error", "« format » : json, csv, xlsx ou pdf.")
    if timeframe == "all":
        raise ApiError(
            422,
            "validation_error",
            "Un rapport porte sur une période bornée (1h, 24h, 7d, 30d ou start/end).",
        )
    start_at, end_at = time_window(timeframe, start, end)
    end_at = end_at or datetime.now(UTC)
    assert start_at is not None
    filters = {
        "dbusername": [u.upper() for u in _split(dbusername)],
        "object_schema": [s.upper() for s in _split(object_schema)],
    }
    for name, values in filters.items():
        if len(values) > 100 or any(len(v) > 128 for v in values):
            raise ApiError(422, "validation_error", f"« {name} » : au plus 100 valeurs de 128 caractères.")
    try:
        report = await reports.build(
            store, kind, start=start_at, end=end_at, filters=filters, objects=_split(objects)[:50]
        )
        if format == "json":
            return report
        content, media, ext = await reports.render(report, format, section)
    except reports.ReportError as exc:
        raise ApiError(422, "validation_error", str(exc)) from None
    name = f"rapport-{kind}-{start_at:%Y%m%d}-{end_at:%Y%m%d}.{ext}"
    return Response(
        content, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
