"""Audit analytics computed in the store: counts, distributions, users, objects, sessions, search.

Every function takes the store and `AuditFilters`, runs ONE aggregation (a `$facet` when it needs
both rows and a total) and returns a `QueryResult` holding the table and the pipeline that ran.

The first `$match` holds only what one index can serve (the time range plus the equality on the
index's leading fields): SecantusDB's planner falls back to a collection scan as soon as the filter
has a predicate no single index covers, so the other conditions go to a second `$match` (MongoDB
merges adjacent `$match` stages, so this costs nothing there). Hours, days and weekdays are local
to `settings.APP_TIMEZONE`; stored times are UTC.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from config import settings
from database import Store
from models import AUDIT_FIELDS, DIMENSIONS, TIME_BUCKETS, AuditFilters, QueryResult


class AnalyticsError(ValueError):
    """A parameter the analytics cannot use (the message is French, for the user)."""


WEEKDAYS_FR = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
SESSION_ACTIONS = ("LOGON", "LOGOFF")
SEARCH_SORT_FIELDS = ("event_timestamp", *DIMENSIONS)
STAT_FIELDS: tuple[str, ...] = tuple(
    f for f in DIMENSIONS if f not in ("unified_audit_policies", "system_privilege_used", "session_id")
)

_OBJECT_TYPES = (
    "TABLE", "INDEX", "VIEW", "MATERIALIZED VIEW", "MATERIALIZED VIEW LOG", "SEQUENCE", "SYNONYM",
    "PUBLIC SYNONYM", "PROCEDURE", "FUNCTION", "PACKAGE", "PACKAGE BODY", "TRIGGER", "TYPE",
    "TYPE BODY", "DIRECTORY", "DATABASE LINK", "PUBLIC DATABASE LINK", "CLUSTER", "LIBRARY",
    "JAVA", "DIMENSION", "CONTEXT", "TABLESPACE",
)  # fmt: skip
# Oracle action names that create, change or remove a schema object.
CHANGE_ACTIONS: tuple[str, ...] = (
    *(f"{verb} {kind}" for verb in ("CREATE", "ALTER", "DROP") for kind in _OBJECT_TYPES),
    "TRUNCATE TABLE",
    "TRUNCATE CLUSTER",
    "RENAME",
    "PURGE TABLE",
    "FLASHBACK TABLE",
)

# Single-equality indexes that can lead the first $match, best first (see database.AUDIT_INDEXES).
_INDEX_LEADS: tuple[tuple[str, ...], ...] = (
    ("return_code",),
    ("object_schema", "object_name"),
    ("dbusername",),
    ("userhost",),
    ("action_name",),
)


# --------------------------------------------------------------------------- pipeline helpers


def _is_bare(value: Any) -> bool:
    return not isinstance(value, dict | list)


def match_stages(filters: AuditFilters, extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The `$match` stages for the filters: index-servable conditions first, the rest after."""
    rest = filters.to_match()
    for key, value in (extra or {}).items():
        if key in rest and key != "$and":
            rest.setdefault("$and", []).append({key: value})
        elif key == "$and":
            rest.setdefault("$and", []).extend(value)
        else:
            rest[key] = value
    for key, value in rest.items():  # a one-value `$in` (a category of one action) is an equality
        if isinstance(value, dict) and list(value) == ["$in"] and len(value["$in"]) == 1:
            rest[key] = value["$in"][0]
    first: dict[str, Any] = {}
    if "session_id" in rest and _is_bare(rest["session_id"]):
        # A session is a handful of events: its own index beats any time range.
        first["session_id"] = rest.pop("session_id")
    else:
        if "event_timestamp" in rest:
            first["event_timestamp"] = rest.pop("event_timestamp")
        for lead in _INDEX_LEADS:
            if all(f in rest and _is_bare(rest[f]) for f in lead):
                if lead == ("return_code",) and rest["return_code"] == 0:
                    continue  # almost every event succeeds: the index would not narrow anything
                for f in lead:
                    first[f] = rest.pop(f)
                break
    stages = [{"$match": first}] if first else []
    if rest:
        stages.append({"$match": rest})
    return stages


def _query(store: Store, pipeline: list[dict[str, Any]]) -> dict[str, Any]:
    return {"collection": store.audit_name, "pipeline": pipeline}


async def _aggregate(store: Store, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return await store.aggregate(pipeline)


async def _facet_one(store: Store, pipeline: list[dict[str, Any]]) -> dict[str, Any]:
    docs = await _aggregate(store, pipeline)
    return docs[0] if docs else {}


def _first_count(facet_rows: list[dict[str, Any]]) -> int:
    return int(facet_rows[0]["n"]) if facet_rows else 0


def _check_field(field: str) -> None:
    if field not in DIMENSIONS:
        raise AnalyticsError(f"Champ inconnu « {field} » : choisissez parmi {', '.join(DIMENSIONS)}.")


def _tz() -> str:
    return settings.APP_TIMEZONE


def local_hour(expr: str = "$event_timestamp") -> dict[str, Any]:
    return {"$hour": {"date": expr, "timezone": _tz()}}


def local_weekday(expr: str = "$event_timestamp") -> dict[str, Any]:
    """ISO weekday, 1 = Monday ... 7 = Sunday, in local time."""
    return {"$isoDayOfWeek": {"date": expr, "timezone": _tz()}}


def local_day(expr: str = "$event_timestamp") -> dict[str, Any]:
    return {"$dateToString": {"date": expr, "format": "%Y-%m-%d", "timezone": _tz()}}


def off_hours_expr(hour: Any, weekday: Any) -> dict[str, Any]:
    """True outside business hours or at the weekend, for a local hour and ISO weekday."""
    return {
        "$or": [
            {"$lt": [hour, settings.BUSINESS_HOURS_START]},
            {"$gte": [hour, settings.BUSINESS_HOURS_END]},
            {"$gte": [weekday, 6]},
        ]
    }


def bucket_expr(bucket: str) -> dict[str, Any]:
    if bucket == "hour":
        return local_hour()
    if bucket == "weekday":
        return local_weekday()
    if bucket == "day":
        return local_day()
    if bucket == "week":
        return {"$dateToString": {"date": "$event_timestamp", "format": "%G-W%V", "timezone": _tz()}}
    raise AnalyticsError(f"Découpage inconnu « {bucket} » : choisissez parmi {', '.join(TIME_BUCKETS)}.")


def _fill_buckets(bucket: str, counts: dict[Any, int]) -> list[list[Any]]:
    """Rows [label, count] in time order, empty hours, weekdays and days included."""
    if bucket == "hour":
        return [[h, counts.get(h, 0)] for h in range(24)]
    if bucket == "weekday":
        return [[WEEKDAYS_FR[d - 1], counts.get(d, 0)] for d in range(1, 8)]
    keys = sorted(k for k in counts if k is not None)
    if bucket == "day" and keys:
        first = datetime.strptime(keys[0], "%Y-%m-%d").date()
        last = datetime.strptime(keys[-1], "%Y-%m-%d").date()
        days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
        return [[d, counts.get(d, 0)] for d in days]
    return [[k, counts[k]] for k in keys]


# --------------------------------------------------------------------------- counts


async def count_events(store: Store, filters: AuditFilters) -> QueryResult:
    """The number of events matching the filters (one row)."""
    pipeline = [*match_stages(filters), {"$count": "n"}]
    docs = await _aggregate(store, pipeline)
    n = _first_count(docs)
    return QueryResult(columns=["count"], rows=[[n]], total=n, query=_query(store, pipeline))


async def count_by(store: Store, filters: AuditFilters, field: str, *, limit: int = 10) -> QueryResult:
    """Events per value of `field` (a DIMENSIONS field, or a TIME_BUCKETS value), most frequent first.

    Rows `[value, count]`; events without a value are not listed; `total` is the number of
    matching events.
    """
    if field in TIME_BUCKETS:
        return await time_distribution(store, filters, field)
    _check_field(field)
    pipeline = [
        *match_stages(filters),
        {
            "$facet": {
                "total": [{"$count": "n"}],
                "rows": [
                    {"$group": {"_id": f"${field}", "n": {"$sum": 1}}},
                    {"$match": {"_id": {"$ne": None}}},
                    {"$sort": {"n": -1, "_id": 1}},
                    {"$limit": max(1, limit)},
                ],
            }
        },
    ]
    doc = await _facet_one(store, pipeline)
    rows = [[r["_id"], r["n"]] for r in doc.get("rows", [])]
    return QueryResult(
        columns=[field, "count"],
        rows=rows,
        total=_first_count(doc.get("total", [])),
        query=_query(store, pipeline),
    )


async def distinct_values(
    store: Store, filters: AuditFilters, field: str, *, limit: int = 100
) -> QueryResult:
    """The distinct values of `field` with their event counts; `total` is the number of values."""
    _check_field(field)
    pipeline = [
        *match_stages(filters),
        {"$group": {"_id": f"${field}", "n": {"$sum": 1}}},
        {"$match": {"_id": {"$ne": None}}},
        {
            "$facet": {
                "total": [{"$count": "n"}],
                "rows": [{"$sort": {"n": -1, "_id": 1}}, {"$limit": max(1, limit)}],
            }
        },
    ]
    doc = await _facet_one(store, pipeline)
    rows = [[r["_id"], r["n"]] for r in doc.get("rows", [])]
    return QueryResult(
        columns=[field, "count"],
        rows=rows,
        total=_first_count(doc.get("total", [])),
        query=_query(store, pipeline),
    )


async def time_distribution(store: Store, filters: AuditFilters, bucket: str) -> QueryResult:
    """Events per local hour of day (0-23), weekday (lundi..dimanche), day (YYYY-MM-DD) or ISO week."""
    pipeline = [
        *match_stages(filters),
        {"$group": {"_id": bucket_expr(bucket), "n": {"$sum": 1}}},
        {"$sort": {"_id": 1}},
    ]
    docs = await _aggregate(store, pipeline)
    counts = {d["_id"]: d["n"] for d in docs}
    return QueryResult(
        columns=[bucket, "count"],
        rows=_fill_buckets(bucket, counts),
        total=sum(counts.values()),
        query=_query(store, pipeline),
    )


async def statistics(
    store: Store,
    filters: AuditFilters,
    *,
    fields: tuple[str, ...] | list[str] = STAT_FIELDS,
    buckets: tuple[str, ...] | list[str] = ("hour", "weekday", "day"),
    limit: int = 10,
) -> dict[str, Any]:
    """Counts per field (top values and distinct count) and per time bucket, in one pass.

    Returns `{total, fields: {field: {distinct, top: [[value, count]]}}, buckets: {bucket: [[label,
    count]]}, query}`.
    """
    for f in fields:
        _check_field(f)
    facets: dict[str, list[dict[str, Any]]] = {"total": [{"$count": "n"}]}
    for f in fields:
        facets[f"f_{f}"] = [
            {"$group": {"_id": f"${f}", "n": {"$sum": 1}}},
            {"$match": {"_id": {"$ne": None}}},
            {"$sort": {"n": -1, "_id": 1}},
            {"$group": {"_id": None, "distinct": {"$sum": 1}, "top": {"$push": ["$_id", "$n"]}}},
            {"$project": {"_id": 0, "distinct": 1, "top": {"$slice": ["$top", max(1, limit)]}}},
        ]
    for b in buckets:
        facets[f"b_{b}"] = [{"$group": {"_id": bucket_expr(b), "n": {"$sum": 1}}}]
    pipeline = [*match_stages(filters), {"$facet": facets}]
    doc = await _facet_one(store, pipeline)
    out_fields = {}
    for f in fields:
        part = (doc.get(f"f_{f}") or [{"distinct": 0, "top": []}])[0]
        out_fields[f] = {"distinct": part["distinct"], "top": [list(t) for t in part["top"]]}
    out_buckets = {b: _fill_buckets(b, {d["_id"]: d["n"] for d in doc.get(f"b_{b}", [])}) for b in buckets}
    return {
        "total": _first_count(doc.get("total", [])),
        "fields": out_fields,
        "buckets": out_buckets,
        "query": _query(store, pipeline),
    }


# --------------------------------------------------------------------------- users, objects, sessions


async def user_activity(store: Store, filters: AuditFilters, *, limit: int = 20) -> QueryResult:
    """Per user, most active first: events, failures, actions by type, distinct objects, first and
    last activity, hosts and programs; `total` is the number of users."""
    pipeline = [
        *match_stages(filters),
        {
            "$group": {
                "_id": {
                    "u": "$dbusername",
                    "a": "$action_name",
                    "h": "$userhost",
                    "p": "$client_program_name",
                    "s": "$object_schema",
                    "o": "$object_name",
                },
                "n": {"$sum": 1},
                "failed": {"$sum": {"$cond": [{"$ne": ["$return_code", 0]}, 1, 0]}},
                "first": {"$min": "$event_timestamp"},
                "last": {"$max": "$event_timestamp"},
            }
        },
        {
            "$facet": {
                "total": [{"$group": {"_id": "$_id.u"}}, {"$count": "n"}],
                "users": [
                    {
                        "$group": {
                            "_id": "$_id.u",
                            "n": {"$sum": "$n"},
                            "failed": {"$sum": "$failed"},
                            "first": {"$min": "$first"},
                            "last": {"$max": "$last"},
                            "hosts": {"$addToSet": "$_id.h"},
                            "programs": {"$addToSet": "$_id.p"},
                        }
                    },
                    {"$sort": {"n": -1, "_id": 1}},
                    {"$limit": max(1, limit)},
                ],
                "actions": [{"$group": {"_id": {"u": "$_id.u", "a": "$_id.a"}, "n": {"$sum": "$n"}}}],
                "objects": [
                    {"$match": {"_id.o": {"$ne": None}}},
                    {"$group": {"_id": {"u": "$_id.u", "s": "$_id.s", "o": "$_id.o"}}},
                    {"$group": {"_id": "$_id.u", "n": {"$sum": 1}}},
                ],
            }
        },
    ]
    doc = await _facet_one(store, pipeline)
    actions: dict[Any, dict[str, int]] = {}
    for a in sorted(doc.get("actions", []), key=lambda a: (-a["n"], str(a["_id"].get("a")))):
        actions.setdefault(a["_id"].get("u"), {})[a["_id"].get("a")] = a["n"]
    objects = {o["_id"]: o["n"] for o in doc.get("objects", [])}
    rows = [
        [
            u["_id"],
            u["n"],
            u["failed"],
            actions.get(u["_id"], {}),
            objects.get(u["_id"], 0),
            u["first"],
            u["last"],
            sorted(h for h in u["hosts"] if h is not None),
            sorted(p for p in u["programs"] if p is not None),
        ]
        for u in doc.get("users", [])
    ]
    return QueryResult(
        columns=[
            "dbusername",
            "events",
            "failed",
            "actions",
            "distinct_objects",
            "first_activity",
            "last_activity",
            "hosts",
            "programs",
        ],
        rows=rows,
        total=_first_count(doc.get("total", [])),
        query=_query(store, pipeline),
    )


async def top_objects(store: Store, filters: AuditFilters, *, limit: int = 10) -> QueryResult:
    """The most accessed objects: schema, object, events, users who touched it (most active first),
    last access; `total` is the number of distinct objects."""
    pipeline = [
        *match_stages(filters, {"object_name": {"$ne": None}}),
        {
            "$group": {
                "_id": {"s": "$object_schema", "o": "$object_name", "u": "$dbusername"},
                "n": {"$sum": 1},
                "last": {"$max": "$event_timestamp"},
            }
        },
        {"$sort": {"n": -1, "_id.u": 1}},
        {
            "$group": {
                "_id": {"s": "$_id.s", "o": "$_id.o"},
                "n": {"$sum": "$n"},
                "users": {"$push": "$_id.u"},
                "last": {"$max": "$last"},
            }
        },
        {
            "$facet": {
                "total": [{"$count": "n"}],
                "rows": [{"$sort": {"n": -1, "_id.s": 1, "_id.o": 1}}, {"$limit": max(1, limit)}],
            }
        },
    ]
    doc = await _facet_one(store, pipeline)
    rows = [
        [r["_id"].get("s"), r["_id"].get("o"), r["n"], [u for u in r["users"] if u is not None], r["last"]]
        for r in doc.get("rows", [])
    ]
    return QueryResult(
        columns=["object_schema", "object_name", "count", "users", "last_access"],
        rows=rows,
        total=_first_count(doc.get("total", [])),
        query=_query(store, pipeline),
    )


CHANGE_COLUMNS = [
    "event_timestamp", "dbusername", "action_name", "object_schema", "object_name",
    "userhost", "client_program_name", "return_code", "sql_text",
]  # fmt: skip


async def object_changes(store: Store, filters: AuditFilters, *, limit: int = 50) -> QueryResult:
    """Objects created, altered, dropped, truncated or renamed, latest first; `total` counts them all."""
    actions = [a for a in CHANGE_ACTIONS if not filters.action_name or a in filters.action_name]
    narrowed = filters.model_copy(update={"action_name": []})
    # Changes are rare: the action index over all time reads fewer events than the time range.
    stages = [{"$match": {"action_name": {"$in": actions}}}]
    rest = narrowed.to_match()
    if rest:
        stages.append({"$match": rest})
    pipeline = [
        *stages,
        {
            "$facet": {
                "total": [{"$count": "n"}],
                "rows": [
                    {"$sort": {"event_timestamp": -1, "_id": -1}},
                    {"$limit": max(1, limit)},
                    {"$project": {"_id": 0, **{c: 1 for c in CHANGE_COLUMNS}}},
                ],
            }
        },
    ]
    doc = await _facet_one(store, pipeline)
    rows = [[r.get(c) for c in CHANGE_COLUMNS] for r in doc.get("rows", [])]
    return QueryResult(
        columns=CHANGE_COLUMNS,
        rows=rows,
        total=_first_count(doc.get("total", [])),
        query=_query(store, pipeline),
    )


SESSION_SORTS = {
    "-start": {"start": -1, "_id": -1},
    "start": {"start": 1, "_id": 1},
    "-statements": {"statements": -1, "start": -1},
    "-events": {"events": -1, "start": -1},
    "-duration": {"duration_s": -1, "start": -1},
    "-failed": {"failed": -1, "start": -1},
}


async def sessions(
    store: Store, filters: AuditFilters, *, limit: int = 20, sort: str = "-start"
) -> QueryResult:
    """Per session id: user, OS user, host, program, start, end, duration, statements (events other
    than LOGON/LOGOFF), failures; latest first by default; `total` is the number of sessions."""
    if sort not in SESSION_SORTS:
        raise AnalyticsError(f"Tri inconnu « {sort} » : choisissez parmi {', '.join(SESSION_SORTS)}.")
    pipeline = [
        *match_stages(filters, {"session_id": {"$ne": None}}),
        {
            "$group": {
                "_id": "$session_id",
                "user": {"$first": "$dbusername"},
                "os_user": {"$first": "$os_username"},
                "host": {"$first": "$userhost"},
                "program": {"$first": "$client_program_name"},
                "start": {"$min": "$event_timestamp"},
                "end": {"$max": "$event_timestamp"},
                "events": {"$sum": 1},
                "statements": {"$sum": {"$cond": [{"$in": ["$action_name", list(SESSION_ACTIONS)]}, 0, 1]}},
                "failed": {"$sum": {"$cond": [{"$ne": ["$return_code", 0]}, 1, 0]}},
            }
        },
        {
            "$facet": {
                "total": [{"$count": "n"}],
                "rows": [
                    {"$set": {"duration_s": {"$divide": [{"$subtract": ["$end", "$start"]}, 1000]}}},
                    {"$sort": SESSION_SORTS[sort]},
                    {"$limit": max(1, limit)},
                ],
            }
        },
    ]
    doc = await _facet_one(store, pipeline)
    rows = [
        [
            r["_id"],
            r["user"],
            r["os_user"],
            r["host"],
            r["program"],
            r["start"],
            r["end"],
            round(r["duration_s"], 3),
            r["statements"],
            r["events"],
            r["failed"],
        ]
        for r in doc.get("rows", [])
    ]
    return QueryResult(
        columns=[
            "session_id",
            "dbusername",
            "os_username",
            "userhost",
            "client_program_name",
            "start",
            "end",
            "duration_seconds",
            "statements",
            "events",
            "failed",
        ],
        rows=rows,
        total=_first_count(doc.get("total", [])),
        query=_query(store, pipeline),
    )


async def off_hours(store: Store, filters: AuditFilters, *, limit: int = 50) -> QueryResult:
    """Activity outside business hours (local time) or at the weekend, per user, most first.

    `total` is the number of such events; per user: events, of which at the weekend, distinct
    local days, first and last, hosts, actions by type.
    """
    hour, weekday = local_hour(), local_weekday()
    pipeline = [
        *match_stages(filters),
        {
            # Group first (per user, local day, hour, action, host): the off-hours test then runs on
            # groups, not on every event.
            "$group": {
                "_id": {
                    "u": "$dbusername",
                    "d": local_day(),
                    "h": hour,
                    "w": weekday,
                    "a": "$action_name",
                    "host": "$userhost",
                },
                "n": {"$sum": 1},
                "first": {"$min": "$event_timestamp"},
                "last": {"$max": "$event_timestamp"},
            }
        },
        {"$match": {"$expr": off_hours_expr("$_id.h", "$_id.w")}},
        {
            "$facet": {
                "total": [{"$group": {"_id": None, "n": {"$sum": "$n"}}}],
                "users": [
                    {
                        "$group": {
                            "_id": "$_id.u",
                            "n": {"$sum": "$n"},
                            "weekend": {"$sum": {"$cond": [{"$gte": ["$_id.w", 6]}, "$n", 0]}},
                            "days": {"$addToSet": "$_id.d"},
                            "first": {"$min": "$first"},
                            "last": {"$max": "$last"},
                            "hosts": {"$addToSet": "$_id.host"},
                        }
                    },
                    {"$sort": {"n": -1, "_id": 1}},
                    {"$limit": max(1, limit)},
                ],
                "actions": [{"$group": {"_id": {"u": "$_id.u", "a": "$_id.a"}, "n": {"$sum": "$n"}}}],
            }
        },
    ]
    doc = await _facet_one(store, pipeline)
    actions: dict[Any, dict[str, int]] = {}
    for a in sorted(doc.get("actions", []), key=lambda a: (-a["n"], str(a["_id"].get("a")))):
        actions.setdefault(a["_id"].get("u"), {})[a["_id"].get("a")] = a["n"]
    rows = [
        [
            u["_id"],
            u["n"],
            u["weekend"],
            len(u["days"]),
            u["first"],
            u["last"],
            sorted(h for h in u["hosts"] if h is not None),
            actions.get(u["_id"], {}),
        ]
        for u in doc.get("users", [])
    ]
    total = doc.get("total") or [{"n": 0}]
    return QueryResult(
        columns=["dbusername", "events", "weekend_events", "days", "first", "last", "hosts", "actions"],
        rows=rows,
        total=int(total[0]["n"]),
        query=_query(store, pipeline),
    )


# --------------------------------------------------------------------------- search

EVENT_COLUMNS = ["id", *AUDIT_FIELDS]


def parse_sort(sort: str) -> dict[str, int]:
    field = sort.lstrip("+-")
    if field not in SEARCH_SORT_FIELDS:
        raise AnalyticsError(
            f"Tri inconnu « {sort} » : un champ parmi {', '.join(SEARCH_SORT_FIELDS)}, précédé de « - » "
            "pour l'ordre décroissant."
        )
    direction = -1 if sort.startswith("-") else 1
    spec = {field: direction}
    if field != "event_timestamp":
        spec["event_timestamp"] = -1
    spec["_id"] = direction
    return spec


SEARCH_COUNT_BOUND = 100_000  # search counts matches up to this many when the rollups cannot say


async def _rollup_total(store: Store, filters: AuditFilters) -> int | None:
    """The number of matches read from the rollups, when they hold the filters (else None)."""
    from plan import Filters, Period, Plan
    from plan_runner import run_plan  # lazy: both import this module
    from rollup_compiler import compile_rollup_plan

    if filters.session_id:
        return None
    include = {name: list(getattr(filters, name)) for name in DIMENSIONS if getattr(filters, name)}
    plan = Plan(
        filters=Filters(
            include=include,
            exclude=dict(filters.exclude),
            failed=filters.failed if not filters.return_code else None,
            sql_contains=list(filters.sql_text_contains),
        ),
        period=Period(start=filters.start, end=filters.end) if filters.start or filters.end else None,
    )
    if compile_rollup_plan(plan) is None:
        return None
    result = await run_plan(store, plan)
    if not result.query.get("collection", "").endswith("_rollups"):
        return None  # the rollups lag behind the events: count them instead
    return int(result.rows[0][0]) if result.rows else 0


SEARCH_WINDOW = timedelta(hours=1)  # the narrowest time window a page sorted on time is read in
SEARCH_WINDOW_GROWTH = (4.0, 64.0)  # a window too narrow is widened at least / at most this much
SEARCH_WINDOW_CAP = timedelta(days=366 * 50)  # beyond this (no span known), read the whole match


async def _page_docs(
    store: Store, filters: AuditFilters, spec: dict[str, int], skip: int, limit: int, total: int
) -> list[dict[str, Any]]:
    """The documents of one page, read in a time window at the end the sort starts at.

    SecantusDB sorts a `$sort` + `$limit` after materialising every match (no top-k, no index
    walk with an early stop): 7.6 s for the first page of 200k events. A page sorted on time
    first is made of the events of the newest (oldest) window holding `skip + limit` matches: an
    event outside the window `[bound, ...)` is older than every one in it, whatever the tie-breaks,
    so the window's sorted head is the page. The window is open on the side the sort starts at
    (the period's end, else the rollups' last hour, a hint), sized from the matches' density
    (`total` over the period the rollups span) and widened until it holds the page; when it would
    reach the trail's other end, or the matches are fewer than the page needs, the whole match is
    read as before.
    """

    async def read(f: AuditFilters, n: int, skipped: int = 0) -> list[dict[str, Any]]:
        tail: list[dict[str, Any]] = [
            {"$sort": spec},
            *([{"$skip": skipped}] if skipped else []),
            {"$limit": n},
        ]
        return await _aggregate(store, [*match_stages(f), *tail])

    lead, direction = next(iter(spec.items()))
    need = skip + limit
    if lead != "event_timestamp" or filters.session_id or total < need:
        return await read(filters, limit, skip)
    import rollups

    span = await rollups.span(store)
    newest = direction < 0
    anchor = filters.end if newest else filters.start
    if anchor is None and span:
        anchor = span[1] if newest else span[0]
    elif anchor is None and newest:
        anchor = datetime.now(UTC)
    if anchor is None:
        return await read(filters, limit, skip)
    whole = filters.start if newest else filters.end
    far = (span[0] if newest else span[1]) if span else None
    if far is not None and whole is not None:
        far = max(far, whole) if newest else min(far, whole)
    far = far if far is not None else whole
    width = SEARCH_WINDOW
    if far is not None:
        width = max(width, abs(anchor - far) * (1.5 * need / total))
    while width <= SEARCH_WINDOW_CAP:
        bound = anchor - width if newest else anchor + width
        if far is not None and (bound <= far if newest else bound >= far):
            break  # the window would reach the period's or the trail's other end: read it whole
        window = filters.model_copy(update={"start": bound} if newest else {"end": bound})
        docs = await read(window, need)
        if len(docs) >= need:
            return docs[skip:]
        low, high = SEARCH_WINDOW_GROWTH
        width *= min(high, max(low, 2 * need / len(docs))) if docs else low
    return await read(filters, limit, skip)


async def search_events(
    store: Store,
    filters: AuditFilters,
    *,
    sort: str = "-event_timestamp",
    limit: int = 50,
    page: int = 1,
) -> QueryResult:
    """Events matching the filters, one page of them; `total` as `search_page` says."""
    result, _ = await search_page(store, filters, sort=sort, limit=limit, page=page)
    return result


async def search_page(
    store: Store,
    filters: AuditFilters,
    *,
    sort: str = "-event_timestamp",
    limit: int = 50,
    page: int = 1,
) -> tuple[QueryResult, bool]:
    """One page of the events matching the filters, and whether `total` is exact.

    `total` comes from the rollups when they hold the filters; otherwise the matches are counted
    up to SEARCH_COUNT_BOUND, and beyond it `total` is that bound and not exact. The page is read
    on its own (no `$facet`), in a time window sized from `total` when it is sorted on time
    (`_page_docs`).
    """
    if limit < 1 or page < 1:
        raise AnalyticsError("« limit » et « page » doivent être des entiers positifs.")
    head = match_stages(filters)
    spec = parse_sort(sort)
    pipeline = [*head, {"$sort": spec}, {"$skip": (page - 1) * limit}, {"$limit": limit}]
    exact = True
    total = await _rollup_total(store, filters)
    if total is None:
        counted = await _aggregate(store, [*head, {"$limit": SEARCH_COUNT_BOUND + 1}, {"$count": "n"}])
        total = _first_count(counted)
        if total > SEARCH_COUNT_BOUND:
            total, exact = SEARCH_COUNT_BOUND, False
    docs = await _page_docs(store, filters, spec, (page - 1) * limit, limit, total)
    rows = [[r.get("_id"), *(r.get(f) for f in AUDIT_FIELDS)] for r in docs]
    return QueryResult(columns=EVENT_COLUMNS, rows=rows, total=total, query=_query(store, pipeline)), exact


async def get_event(store: Store, event_id: str) -> dict[str, Any] | None:
    """One event by its id, every stored column included."""
    doc = await store.audit.find_one({"_id": event_id})
    if doc is not None:
        doc["id"] = doc.pop("_id")
    return doc
