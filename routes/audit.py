"""Audit trail analytics: search, statistics, users, objects, sessions, off-hours and anomalies.

Every route takes a time window (`timeframe` = 1h, 24h, 7d, 30d or all, or `start`/`end` in ISO 8601;
7 days by default) and the filters of the audit fields as query parameters. A list filter takes
repeated parameters or comma-separated values (`dbusername=JDUPONT,SCOTT`).
"""

import shlex
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

import analytics
from anomalies import Anomaly, Baseline, detect
from config import settings
from deps import CurrentUser, StoreDep
from errors import ApiError
from models import DIMENSIONS, TIME_BUCKETS, AuditFilters, QueryResult

router = APIRouter(prefix="/audit", tags=["audit"])

TIMEFRAMES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_TIMEFRAME = "7d"


def _bad(message: str) -> ApiError:
    return ApiError(422, "validation_error", message)


def parse_instant(value: str, name: str) -> datetime:
    """An ISO 8601 date or date-time; without a zone it is read in APP_TIMEZONE."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _bad(
            f"Date « {name} » invalide : « {value} ». Format attendu : ISO 8601, par exemple "
            "2024-05-01 ou 2024-05-01T08:00:00+02:00."
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=settings.tz)
    return parsed.astimezone(UTC)


def time_window(
    timeframe: str | None, start: str | None, end: str | None
) -> tuple[datetime | None, datetime | None]:
    """[start, end) from `start`/`end` or from `timeframe` ending now."""
    if timeframe is not None and timeframe != "all" and timeframe not in TIMEFRAMES:
        raise _bad(f"Période « {timeframe} » inconnue : utilisez 1h, 24h, 7d, 30d ou all, ou bien start/end.")
    end_at = parse_instant(end, "end") if end else None
    start_at = parse_instant(start, "start") if start else None
    if start_at is None and timeframe == "all":
        return None, end_at
    if start_at is None:
        span = TIMEFRAMES[timeframe or DEFAULT_TIMEFRAME]
        end_at = end_at or datetime.now(UTC)
        start_at = end_at - span
    if start_at is not None and end_at is not None and start_at >= end_at:
        raise _bad("La date de début (start) doit précéder la date de fin (end).")
    return start_at, end_at


def _values(raw: list[str] | None) -> list[str]:
    return [v.strip() for item in raw or [] for v in item.split(",") if v.strip()]


def _ints(raw: list[str] | None, name: str) -> list[int]:
    out = []
    for v in _values(raw):
        try:
            number = int(v)
        except ValueError:
            raise _bad(f"« {name} » attend des nombres entiers, pas « {v} ».") from None
        if not -(2**63) <= number < 2**63:  # BSON integers are 64-bit
            raise _bad(f"« {name} » : nombre hors limites ({v[:30]}).")
        out.append(number)
    return out


def _words(text: str | None) -> list[str]:
    if not text or not text.strip():
        return []
    try:
        return [w for w in shlex.split(text) if w.strip()]
    except ValueError:  # unbalanced quote
        return text.split()


ListParam = Annotated[list[str] | None, Query()]


async def audit_filters(
    timeframe: Annotated[
        str | None, Query(description="1h, 24h, 7d, 30d or all (default 7d unless start is given)")
    ] = None,
    start: Annotated[str | None, Query(description="ISO 8601; without a zone, APP_TIMEZONE")] = None,
    end: Annotated[str | None, Query(description="ISO 8601, excluded; default now")] = None,
    dbusername: ListParam = None,
    os_username: ListParam = None,
    userhost: ListParam = None,
    terminal: ListParam = None,
    client_program_name: ListParam = None,
    action_name: ListParam = None,
    object_schema: ListParam = None,
    object_name: ListParam = None,
    authentication_type: ListParam = None,
    unified_audit_policies: ListParam = None,
    system_privilege_used: ListParam = None,
    session_id: ListParam = None,
    return_code: ListParam = None,
    failed: Annotated[bool | None, Query(description="true: return_code != 0; false: = 0")] = None,
    sql_text: Annotated[
        str | None, Query(max_length=500, description='words the SQL text contains (all of them), "a phrase"')
    ] = None,
) -> AuditFilters:
    start_at, end_at = time_window(timeframe, start, end)
    return AuditFilters(
        dbusername=_values(dbusername),
        os_username=_values(os_username),
        userhost=_values(userhost),
        terminal=_values(terminal),
        client_program_name=_values(client_program_name),
        action_name=_values(action_name),
        object_schema=_values(object_schema),
        object_name=_values(object_name),
        authentication_type=_values(authentication_type),
        unified_audit_policies=_values(unified_audit_policies),
        system_privilege_used=_values(system_privilege_used),
        session_id=_ints(session_id, "session_id"),
        return_code=_ints(return_code, "return_code"),
        failed=failed,
        sql_text_contains=_words(sql_text),
        start=start_at,
        end=end_at,
    )


Filters = Annotated[AuditFilters, Depends(audit_filters)]


def _french_int(n: int) -> str:
    return f"{n:,}".replace(",", "\u202f")


class SearchPage(BaseModel):
    total: int  # every match; when total_exact is false, a lower bound (the count stopped there)
    total_exact: bool = True
    total_label: str = ""  # French: "1 234", or "plus de 100 000"
    page: int
    limit: int
    pages: int
    columns: list[str]
    items: list[dict[str, Any]]
    query: dict[str, Any]


class FieldStats(BaseModel):
    distinct: int
    top: list[list[Any]]


class StatsResponse(BaseModel):
    total: int
    start: datetime | None
    end: datetime | None
    fields: dict[str, FieldStats]
    buckets: dict[str, list[list[Any]]]
    query: dict[str, Any]


class AnomalyReport(BaseModel):
    start: datetime
    end: datetime
    count: int
    by_severity: dict[str, int]
    by_type: dict[str, int]
    baseline: Baseline
    anomalies: list[Anomaly]


def _list_param(raw: str | None, allowed: tuple[str, ...], default: tuple[str, ...], name: str) -> list[str]:
    if raw is None:
        return list(default)
    values = _values([raw])
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise _bad(f"« {name} » : valeur(s) inconnue(s) {', '.join(unknown)} ; choix : {', '.join(allowed)}.")
    return values


async def _run(coro):
    try:
        return await coro
    except analytics.AnalyticsError as exc:
        raise _bad(str(exc)) from None


@router.get("/search", response_model=SearchPage)
async def search(
    _: CurrentUser,
    store: StoreDep,
    filters: Filters,
    sort: Annotated[str, Query(description="a field, '-' first for descending")] = "-event_timestamp",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> SearchPage:
    """Events matching the filters, one page, latest first by default, with the total count."""
    result, exact = await _run(analytics.search_page(store, filters, sort=sort, limit=limit, page=page))
    items = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
    return SearchPage(
        total=result.total,
        total_exact=exact,
        total_label=_french_int(result.total) if exact else f"plus de {_french_int(result.total)}",
        page=page,
        limit=limit,
        pages=-(-result.total // limit),
        columns=result.columns,
        items=items,
        query=result.query,
    )


@router.get("/events/{event_id}")
async def get_event(_: CurrentUser, store: StoreDep, event_id: str) -> dict[str, Any]:
    """One audit event with every stored column."""
    doc = await analytics.get_event(store, event_id)
    if doc is None:
        raise ApiError(404, "not_found", "Événement d'audit introuvable.")
    return doc


@router.get("/count", response_model=QueryResult)
async def count(_: CurrentUser, store: StoreDep, filters: Filters) -> QueryResult:
    """The number of events matching the filters."""
    return await _run(analytics.count_events(store, filters))


@router.get("/stats", response_model=StatsResponse)
async def stats(
    _: CurrentUser,
    store: StoreDep,
    filters: Filters,
    fields: Annotated[str | None, Query(description="comma-separated fields to count by")] = None,
    buckets: Annotated[str | None, Query(description="comma-separated: hour, day, weekday, week")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> StatsResponse:
    """Counts per field (top values, distinct count) and per time bucket, in one pass over the events."""
    out = await _run(
        analytics.statistics(
            store,
            filters,
            fields=_list_param(fields, DIMENSIONS, analytics.STAT_FIELDS, "fields"),
            buckets=_list_param(buckets, TIME_BUCKETS, ("hour", "weekday", "day"), "buckets"),
            limit=limit,
        )
    )
    return StatsResponse(start=filters.start, end=filters.end, **out)


@router.get("/stats/{field}", response_model=QueryResult)
async def stats_by(
    _: CurrentUser,
    store: StoreDep,
    filters: Filters,
    field: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
) -> QueryResult:
    """Events per value of one field (or per hour, day, weekday, week), most frequent first."""
    return await _run(analytics.count_by(store, filters, field, limit=limit))


@router.get("/distinct/{field}", response_model=QueryResult)
async def distinct(
    _: CurrentUser,
    store: StoreDep,
    filters: Filters,
    field: str,
    limit: Annotated[int, Query(ge=1, le=5000)] = 100,
) -> QueryResult:
    """The distinct values of a field with their counts; `total` is the number of values."""
    return await _run(analytics.distinct_values(store, filters, field, limit=limit))


@router.get("/timeline", response_model=QueryResult)
async def timeline(
    _: CurrentUser,
    store: StoreDep,
    filters: Filters,
    bucket: Annotated[str, Query(description="hour (of day), day, weekday or week, local time")] = "day",
) -> QueryResult:
    """Events per local hour of day, day, weekday or ISO week."""
    return await _run(analytics.time_distribution(store, filters, bucket))


@router.get("/user-activity", response_model=QueryResult)
async def user_activity(
    _: CurrentUser,
    store: StoreDep,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    username: Annotated[str | None, Query(description="same as dbusername")] = None,
) -> QueryResult:
    """Per user: events, failures, actions by type, distinct objects, first/last activity, hosts, programs."""
    if username:
        filters = filters.model_copy(update={"dbusername": [*filters.dbusername, *_values([username])]})
    return await _run(analytics.user_activity(store, filters, limit=limit))


@router.get("/objects", response_model=QueryResult)
async def objects(
    _: CurrentUser,
    store: StoreDep,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
) -> QueryResult:
    """The most accessed objects, with the users who touched them (filter by object_schema for one schema)."""
    return await _run(analytics.top_objects(store, filters, limit=limit))


@router.get("/objects/changes", response_model=QueryResult)
async def object_changes(
    _: CurrentUser,
    store: StoreDep,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> QueryResult:
    """Objects created, altered, dropped, truncated or renamed, latest first."""
    return await _run(analytics.object_changes(store, filters, limit=limit))


@router.get("/sessions", response_model=QueryResult)
async def sessions(
    _: CurrentUser,
    store: StoreDep,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    sort: Annotated[str, Query(description=", ".join(analytics.SESSION_SORTS))] = "-start",
) -> QueryResult:
    """Per session id: user, host, program, start, end, duration and statements."""
    return await _run(analytics.sessions(store, filters, limit=limit, sort=sort))


@router.get("/off-hours", response_model=QueryResult)
async def off_hours(
    _: CurrentUser,
    store: StoreDep,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> QueryResult:
    """Activity outside business hours or at the weekend (local time), per user."""
    return await _run(analytics.off_hours(store, filters, limit=limit))


@router.get("/anomalies", response_model=AnomalyReport)
async def anomalies(
    _: CurrentUser,
    store: StoreDep,
    timeframe: Annotated[str | None, Query(description="1h, 24h, 7d or 30d (default 7d)")] = None,
    start: Annotated[str | None, Query(description="ISO 8601")] = None,
    end: Annotated[str | None, Query(description="ISO 8601, excluded; default now")] = None,
    severity: Annotated[str | None, Query(description="minimum severity: low, medium or high")] = None,
    type: Annotated[str | None, Query(description="comma-separated anomaly types")] = None,
    dbusername: ListParam = None,
) -> AnomalyReport:
    """Suspicious activity in the window: failed-logon bursts, off-hours work, volume spikes,
    sensitive actions, privileged accounts, new hosts or programs, mass DML."""
    if timeframe == "all":
        raise _bad("La détection d'anomalies demande une période bornée (1h, 24h, 7d, 30d ou start/end).")
    start_at, end_at = time_window(timeframe, start, end)
    if severity is not None and severity not in ("low", "medium", "high"):
        raise _bad("« severity » : low, medium ou high.")
    detection = await detect(store, start=start_at, end=end_at or datetime.now(UTC))
    found = detection.findings
    rank = {"low": 0, "medium": 1, "high": 2}
    if severity:
        found = [a for a in found if rank[a.severity] >= rank[severity]]
    if type:
        types = set(_values([type]))
        found = [a for a in found if a.type in types]
    users = set(_values(dbusername))
    if users:
        found = [a for a in found if a.dbusername in users]
    by_severity = {s: sum(a.severity == s for a in found) for s in ("high", "medium", "low")}
    by_type: dict[str, int] = {}
    for a in found:
        by_type[a.type] = by_type.get(a.type, 0) + 1
    return AnomalyReport(
        start=start_at,
        end=end_at or datetime.now(UTC),
        count=len(found),
        by_severity=by_severity,
        by_type=by_type,
        baseline=detection.baseline,
        anomalies=found,
    )
