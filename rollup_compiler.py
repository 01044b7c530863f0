"""A query `Plan` answered from the rollups (`<audit>_rollups`: counts per hour or local day and key)
or from the session documents (`<audit>_sessions`: one document per session), with the same result
as `plan_compiler.compile_plan` on the events.

`compile_rollup_plan` gives the pipeline on the rollups when one set holds the plan's filters,
grouping and measure; `session_doc_filters` says whether the session documents can answer a plan and
`compile_session_plan` gives that pipeline. `_rollup_docs` and `_session_docs` read them for
`plan_runner.run_plan` when the rollups can be trusted and the period is not too short
(`ROLLUP_MIN_SPAN`); otherwise the plan runs on the events.
"""

from datetime import timedelta
from typing import Any

import rollups
from analytics import _aggregate, local_hour, local_weekday, match_stages, off_hours_expr
from database import Store
from models import AuditFilters
from plan import TIME_BUCKETS, Filters, Period, Plan
from plan_compiler import (
    Stage,
    _aware,
    _bucket,
    _check,
    _descending,
    _expr_of,
    _group_filter,
    _hours_expr,
    _merge,
    _order_key,
    _period_range,
    _rank_facet,
    _ranked,
    _session_facets,
    _session_filter,
    _session_group,
    _session_groups,
    _session_level,
    _sort_field,
    _window,
    plan_match,
)

# --------------------------------------------------------------------------- rollups

# Measures a rollup document (a count `n` per key) can answer.
_ROLLUP_MEASURES = frozenset({"events", "distinct", "share"})


def _query_fields(query: Any) -> set[str] | None:
    """The fields a MongoDB query reads; None when it holds an expression ($expr...)."""
    fields: set[str] = set()
    for key, cond in query.items():
        if key in ("$and", "$or", "$nor"):
            for q in cond:
                inner = _query_fields(q)
                if inner is None:
                    return None
                fields |= inner
        elif key.startswith("$"):
            return None
        else:
            fields.add(key)
    return fields


def _aligned(period: Period | None, grain: str) -> bool:
    """Whether the period's bounds fall on bucket starts of the grain (local midnights, UTC hours)."""
    if period is None:
        return True
    for bound in (period.start, period.end):
        if bound is None:
            continue
        b = _aware(bound)
        start = rollups.day_start(b) if grain == "d" else rollups.hour_start(b)
        if b != start:
            return False
    return True


def _rollup_match(f: Filters, grain: str) -> tuple[dict[str, Any], set[str]] | None:
    """The filters as a query on rollup documents of the grain, with the event fields it reads (the
    set must hold them); None if they need fields no rollup holds.

    Hour windows and off hours at the hour grain are `$expr` on the bucket start `t`: a UTC hour is
    one local hour in a whole-hour zone (checked by the caller), so its local hour is the events'.
    """
    if f.sql_contains:
        return None
    query = plan_match(f.model_copy(update={"hours": None, "off_hours": None}), None)
    fields = _query_fields(query)
    if fields is None or not fields <= rollups.ROLLUP_FIELDS:
        return None
    clauses = [query] if query else []
    if f.hours is not None and (expr := _hours_expr(*f.hours, when="$t")) is not None:
        if grain != "h":
            return None
        clauses.append({"$expr": expr})
    if f.off_hours is not None:
        if grain == "d":
            clauses.append({"off": f.off_hours})
        else:
            off = off_hours_expr(local_hour("$t"), local_weekday("$t"))
            clauses.append({"$expr": off if f.off_hours else {"$not": [off]}})
    return _merge(clauses), fields


def _rollup_set(grain: str, needed: set[str]) -> str | None:
    """The smallest rollup set of the grain that holds the needed fields."""
    sets = rollups.GRAINS[grain].items()
    fits = [(len(dims), name) for name, dims in sets if needed <= {*dims, "return_code"}]
    return min(fits)[1] if fits else None


def compile_rollup_plan(plan: Plan) -> tuple[str, list[Stage]] | None:
    """(grain, pipeline on the rollups collection) computing the same result as `compile_plan`,
    or None when no rollup holds the plan's filters, grouping and measure."""
    _check(plan)
    if (
        plan.measure not in _ROLLUP_MEASURES
        or plan.detail
        or plan.compare is not None
        or plan.having
        or plan.sequence
        or plan.session_state
        or _window(plan)
        or not rollups.whole_hour_zone()
    ):
        return None
    fields = [d for d in plan.group_by if d not in TIME_BUCKETS]
    if plan.measure == "distinct" and plan.field:
        fields.append(plan.field)
    hourly = "hour" in plan.group_by or (plan.filters.hours is not None and _hours_expr(*plan.filters.hours))
    for grain in ("h",) if hourly else ("d", "h"):
        if not _aligned(plan.period, grain):
            continue
        matched = _rollup_match(plan.filters, grain)
        parted = _rollup_match(plan.share_of, grain) if plan.share_of is not None else ({}, set())
        if matched is None or parted is None:
            continue
        (match, match_fields), (part, part_fields) = matched, parted
        # The fields come from the filters themselves, not from the merged query: a query with an
        # hour window holds an `$expr`, and reading its fields from it lost the user of "JDUPONT
        # between 9 and 12 h", which then ran on the set "all" (no user field) and counted 0.
        name = _rollup_set(grain, {*fields, *match_fields, *part_fields})
        if name is None:
            continue
        head: dict[str, Any] = {"g": grain, "r": name}
        rng = _period_range(plan.period)
        if rng:
            head["t"] = rng
        # Two stages: SecantusDB uses the {g, r, t} index only for a `$match` on those fields alone
        # (with any other field it scans the collection: 0.5-1.4 s instead of 5-60 ms at 20k events).
        matches = [{"$match": head}, *([{"$match": match}] if match else [])]
        return grain, [*matches, *_rollup_core(plan, part), *_rollup_tail(plan)]
    return None


def _rollup_core(plan: Plan, part: dict[str, Any]) -> list[Stage]:
    key = {f"g{i}": _bucket(d, "$t") if d in TIME_BUCKETS else f"${d}" for i, d in enumerate(plan.group_by)}
    group_key = key or None
    if plan.measure == "events":
        return [{"$group": {"_id": group_key, "n": {"$sum": "$n"}}}]
    if plan.measure == "distinct":
        has_value = {"$cond": [{"$eq": [{"$ifNull": ["$_id.v", None]}, None]}, 0, 1]}
        return [
            {"$group": {"_id": {"k": group_key, "v": f"${plan.field}"}}},
            {"$group": {"_id": "$_id.k", "n": {"$sum": has_value}}},
        ]
    inside = _expr_of(part)
    return [
        {"$group": {"_id": group_key, "n": {"$sum": "$n"}, "part": {"$sum": {"$cond": [inside, "$n", 0]}}}},
        {"$set": {"ratio": {"$divide": ["$part", "$n"]}}},
    ]


def _rollup_tail(plan: Plan) -> list[Stage]:
    return [*_group_filter(plan), _rank_facet(plan, [_sort_field(plan)])] if _ranked(plan) else []


# A period this short is read faster from the events, through the timestamp indexes (measured at 20k
# events: failed logons yesterday 15 ms from the events, ~0.5 s from the rollups).
ROLLUP_MIN_SPAN = timedelta(days=3)


def _too_short(p: Period | None) -> bool:
    """A period shorter than ROLLUP_MIN_SPAN: its events are few, read them."""
    return p is not None and p.start is not None and p.end is not None and p.end - p.start < ROLLUP_MIN_SPAN


async def _rollup_docs(store: Store, plan: Plan) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """The aggregation's documents and the query, read from the rollups when they can answer."""
    if _too_short(plan.period):
        return None
    compiled = compile_rollup_plan(plan)
    if compiled is None or not await rollups.usable(store):
        return None
    _, pipeline = compiled
    name = rollups.rollups_name(store.audit_name)
    cursor = await store[name].aggregate(pipeline)
    return await cursor.to_list(None), {"collection": name, "pipeline": pipeline}


# --------------------------------------------------------------------------- session documents

# What a plan on the session documents (`<audit>_sessions`) may filter on and group by.
_SESSION_DOC_FIELDS = frozenset(rollups.SESSION_FIELDS)
_SESSION_DOC_DIMS = frozenset({*rollups.SESSION_FIELDS, "session_id", *TIME_BUCKETS})


def session_doc_filters(plan: Plan) -> dict[str, Any] | None:
    """The plan's filters as a query on session documents, when the session documents can answer the
    plan (a per-session measure, filters and grouping on the fields a session document holds, no
    comparison, `having` or sequence); None otherwise."""
    _check(plan)
    f = plan.filters
    if (
        not _session_level(plan)
        or plan.compare is not None
        or plan.having
        or plan.sequence
        or any(d not in _SESSION_DOC_DIMS for d in plan.group_by)
        or f.off_hours is not None
        or (f.hours is not None and _hours_expr(*f.hours) is not None)
    ):
        return None
    query = plan_match(f, None)
    fields = _query_fields(query)
    if fields is None or not fields <= _SESSION_DOC_FIELDS:
        return None
    return query


MAX_CROSSING = 2_000  # sessions crossing a bound, added as literal documents (a command is at most 16 MB)


def _session_head(plan: Plan, query: dict[str, Any]) -> list[Stage]:
    """The `$match` stages of the session documents held whole by the plan's period and its filters."""
    clauses: list[dict[str, Any]] = [query] if query else []
    p = plan.period
    head: dict[str, Any] = {}
    if p is not None and p.start is not None:
        head["start"] = {"$gte": _aware(p.start)}
    if p is not None and p.end is not None:
        clauses.append({"end": {"$lt": _aware(p.end)}})
    # The start alone first: SecantusDB uses an index only for a `$match` on its fields alone.
    return [{"$match": m} for m in (head, _merge(clauses)) if m]


def compile_session_plan(
    plan: Plan, query: dict[str, Any], crossing: list[dict[str, Any]], floor: int | None = None
) -> list[Stage]:
    """The pipeline on the session documents that computes the same result as `compile_plan`.

    A session belongs to the plan's period by the events it holds in the period (plan.py: durations
    run from the first to the last event of the session in the period). A session document whose
    start and end both fall in the period is therefore taken whole; the sessions that cross a bound of
    the period are recomputed from their events within the period (`crossing`, by
    `crossing_pipeline`) and added to them. Each session comes from exactly one side.

    With a `floor` (the longest sessions, see `_duration_floor`), only the documents that last at
    least that long are read, on the `dur` index: the rows are the same, the total is not.
    """
    stages = _session_head(plan, query)
    if floor is not None:
        stages.insert(0, {"$match": {"dur": {"$gte": floor}}})
    if crossing:
        # The few recomputed sessions, as literal documents of a `$unionWith` on the small meta
        # collection: SecantusDB reads a `$unionWith`'s whole collection before its pipeline, so a
        # union with the events read every event (4.5 s of a 4.6 s question at 200k events).
        literal = [{"$limit": 1}, {"$project": {"_id": 0, "s": {"$literal": crossing}}}, {"$unwind": "$s"},
                   {"$replaceRoot": {"newRoot": "$s"}}]  # fmt: skip
        stages.append({"$unionWith": {"coll": "meta", "pipeline": literal}})
    stages += _session_filter(plan)
    if plan.detail:
        return [*stages, {"$facet": _session_facets(plan)}]
    stages.append(_session_group(plan))
    if _ranked(plan):
        stages += [*_group_filter(plan), _rank_facet(plan, [_sort_field(plan)])]
    return stages


def crossing_pipeline(plan: Plan, crossing: list[Any]) -> list[Stage]:
    """The sessions `crossing` (ids) recomputed from their events in the plan's period, as documents
    shaped like the session documents (the session id alone first, on its index)."""
    events = plan_match(plan.filters, plan.period)
    return [{"$match": {"session_id": {"$in": crossing}}}, *match_stages(AuditFilters(), events),
            *_session_groups(plan)]  # fmt: skip


async def _crossing_sessions(store: Store, period: Period | None) -> list[Any]:
    """The ids of the sessions that start before a bound of the period and end at or after it."""
    if period is None:
        return []
    sessions = store[rollups.sessions_name(store.audit_name)]
    found: set[Any] = set()
    for bound in (period.start, period.end):
        if bound is not None:
            b = _aware(bound)
            cursor = sessions.find({"end": {"$gte": b}, "start": {"$lt": b}}, {"_id": 1})
            found.update(d["_id"] for d in await cursor.to_list(None))
    return sorted(found, key=_order_key)


def _longest(plan: Plan) -> int | None:
    """k, when the plan asks for the k longest sessions, one per row."""
    if (
        plan.measure == "duration"
        and plan.group_by == ["session_id"]
        and plan.limit is not None
        and _descending(plan)
        and plan.threshold is None
        and plan.session_state is None
        and not plan.detail
    ):
        return plan.limit
    return None


# SecantusDB sorts every document a pipeline matches before its `$limit`: over 100k sessions, 12 s to
# keep 10. The k longest are among the sessions that last at least a floor that k sessions reach;
# found by halving from FLOOR_START on the `dur` index, each try reads only the sessions above it.
FLOOR_START = 1 << 36  # milliseconds, two years


async def _duration_floor(sessions: Any, head: list[Stage], k: int) -> int | None:
    """A duration (ms) that at least k of the sessions `head` matches reach; None if none does."""
    floor = FLOOR_START
    while floor >= 1:
        found = await rollups._agg(sessions, [{"$match": {"dur": {"$gte": floor}}}, *head, {"$count": "n"}])
        if found and found[0]["n"] >= k:
            return floor
        floor //= 2
    return None


async def _session_count(sessions: Any, head: list[Stage]) -> int:
    if not head:
        return await sessions.estimated_document_count()  # the metadata count, not a scan
    found = await rollups._agg(sessions, [*head, {"$count": "n"}])
    return int(found[0]["n"]) if found else 0


async def _session_docs(store: Store, plan: Plan) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """The aggregation's documents and the query, read from the session documents when they can."""
    if _too_short(plan.period):
        return None
    query = session_doc_filters(plan)
    if query is None or not await rollups.usable(store):
        return None
    crossing = await _crossing_sessions(store, plan.period)
    recomputed = await _aggregate(store, crossing_pipeline(plan, crossing)) if crossing else []
    if len(recomputed) > MAX_CROSSING:
        return None  # a command holds them as literals: past this many, the events path
    sessions = store[rollups.sessions_name(store.audit_name)]
    head = _session_head(plan, query)
    k = _longest(plan)
    floor = await _duration_floor(sessions, head, k) if k is not None else None
    pipeline = compile_session_plan(plan, query, recomputed, floor)
    docs = await rollups._agg(sessions, pipeline)
    if floor is not None and docs:
        docs[0]["total"] = [{"n": await _session_count(sessions, head) + len(recomputed)}]
    return docs, {"collection": sessions.name, "pipeline": pipeline}
