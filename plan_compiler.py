"""Compile a query `Plan` (plan.py) into ONE MongoDB aggregation on the events, and shape its result.

`plan_match` turns filters and a period into a MongoDB query; `compile_plan` builds the pipeline
(`$facet` only when a plan needs several branches: `compare`, or the rows and total of `detail`);
`_read` and `_columns` shape its documents into the rows of the `QueryResult` described in plan.py.
`plan_runner.run_plan` runs a plan, on the events or, when they hold what it needs, on the rollups
or the session documents (rollup_compiler.py, whose pipelines give the same documents).
Everything is counted in the store; Python only formats the few result rows, lists the empty time
buckets and orders the rows of time-bucket groupings.

Choices where plan.py leaves room (smallest sensible reading):

- `total` is always the number of rows before `limit` (1 for an ungrouped measure, the number of
  matching events or sessions for `detail`).
- Time-bucket groupings are listed in time order, every bucket of the period, zeros included;
  when `order` or `limit` is set they are ranked by the measure like other groupings (so "the
  3 busiest hours" works). With two dimensions the rows are every combination of the buckets and
  of the field values seen, in dimension order (field values ascending). A threshold applies to
  the filled rows (so "lt" keeps empty buckets); with `having` on a time bucket only the kept
  buckets are listed. Past MAX_ROWS buckets or combinations, only the non-empty groups are listed.
- Empty buckets and groups absent from a compared period hold 0 for counts, None for times and
  durations, and 0.0 for `percent`.
- `compare`: groups are ranked by the measure in the first period, then in the second, then by
  value; `limit` keeps that many groups and each is listed once per period (p1 rows, then p2 rows,
  in the same order). Time-bucket groupings and `detail` are listed per period (limit per period).
- Sessions: `duration`, `session_state`, a `detail` of sessions, and `sessions` grouped only by
  session fields (user, OS user, host, terminal, program, authentication, instance, session id) or
  time buckets are computed per session: a session's field values are those of one of its events
  and its time bucket is that of its start. `sessions` grouped by an event field (action_name,
  object_name...) counts the distinct session ids per group instead. An "open" session has a
  successful LOGON (return_code 0) and no LOGOFF among the matching events.
- A threshold with `duration` keeps the sessions whose duration passes it (seconds); with `share`
  it applies to `percent`; a threshold on `first`, `last` or `coverage`, or on a `detail` other
  than sessions by duration, is a PlanError. `window_minutes` needs the measure `events`; without a
  grouping the row is [count, windows].
- `hours` with from == to means the whole day. `failed=True` needs a return_code other than 0
  (a missing one does not count as a failure).
- Durations are int seconds rounded to the nearest (half to even); `avg_s` is the rounded average
  of the sessions' durations in milliseconds.
- Events whose `event_timestamp` is not a date count in the totals but fall in no time bucket,
  hour, window or session time.

`having` re-reads the kept groups' events with `$lookup` (localField + pipeline) and `sequence`
uses `$setWindowFields` with `$locf`/`$shift`: on MongoDB this needs 5.2 or later. Unbounded
windows are avoided on purpose: SecantusDB evaluates them in quadratic time.
"""

import itertools
import math
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from analytics import local_day, local_hour, local_weekday, match_stages, off_hours_expr
from config import settings
from database import AUDIT_COLLECTION
from models import AuditFilters
from plan import (
    CATEGORIES,
    EVENT_COLUMNS,
    INT_FIELDS,
    MEASURE_COLUMNS,
    SESSION_COLUMNS,
    TIME_BUCKETS,
    Filters,
    Having,
    Period,
    Plan,
    Sequence,
    Threshold,
)

Stage = dict[str, Any]


class PlanError(ValueError):
    """A plan that cannot be compiled (the message is French, for the user)."""


TS = "$event_timestamp"
IS_DATE: dict[str, Any] = {"$eq": [{"$type": TS}, "date"]}
SAFE_TS: dict[str, Any] = {"$cond": [IS_DATE, TS, None]}
DETAIL_LIMIT = 50
MAX_ROWS = 100_000  # beyond this many buckets (or combinations), only the non-empty groups are listed
# Fields that hold one value per session: sessions can be grouped by them.
SESSION_FIELDS: tuple[str, ...] = (
    "dbusername",
    "os_username",
    "userhost",
    "terminal",
    "client_program_name",
    "authentication_type",
    "instance_id",
)
_SESSION_DIMS = frozenset({*SESSION_FIELDS, "session_id", *TIME_BUCKETS})
_OPS = {"gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte"}
# The field of a group document the groups are ranked on.
_SORT_FIELD = {
    "events": "n",
    "distinct": "n",
    "sessions": "n",
    "duration": "avg",
    "first": "t",
    "last": "t",
    "share": "ratio",
    "coverage": "n",
}
_EMPTY: dict[str, Any] = {"n": 0, "windows": 0, "part": 0, "ratio": 0}


# --------------------------------------------------------------------------- filters


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _coerce(field: str, values: list[Any]) -> list[Any]:
    """Values as stored: the int fields compare as ints ("1017" -> 1017).

    A value is always data: anything but a string, a number or None (a dict such as {"$where": ...})
    is refused here too, whatever built the plan, so it can never reach the store as an operator.
    """
    for v in values:
        if not (v is None or isinstance(v, str | int | float | bool)):
            raise PlanError(f"Valeur non prise en charge pour le champ {field} : texte ou nombre attendu.")
    if field not in INT_FIELDS:
        return list(values)
    out: list[Any] = []
    for v in values:
        if v is None or (isinstance(v, int) and not isinstance(v, bool)):
            out.append(v)
        elif (isinstance(v, float) and v.is_integer()) or (
            isinstance(v, str) and re.fullmatch(r"\s*[+-]?\d+\s*", v)
        ):
            out.append(int(v))
        else:
            raise PlanError(f"« {v} » n'est pas un nombre entier : le champ {field} attend des entiers.")
    return out


def _period_range(period: Period | None) -> dict[str, datetime] | None:
    if period is None or (period.start is None and period.end is None):
        return None
    rng: dict[str, datetime] = {}
    if period.start is not None:
        rng["$gte"] = _aware(period.start)
    if period.end is not None:
        rng["$lt"] = _aware(period.end)
    return rng


def _hours_expr(start: int, end: int, when: str = TS) -> dict[str, Any] | None:
    if start == end:
        return None
    hour = local_hour(when)
    if start < end:
        window: dict[str, Any] = {"$and": [{"$gte": [hour, start]}, {"$lt": [hour, end]}]}
    else:
        window = {"$or": [{"$gte": [hour, start]}, {"$lt": [hour, end]}]}
    return {"$cond": [{"$eq": [{"$type": when}, "date"]}, window, False]}


def _merge(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    """AND the clauses into one query, each field once at the top (the rest under $and)."""
    query: dict[str, Any] = {}
    for clause in clauses:
        for key, value in clause.items():
            if key in query or key == "$and":
                query.setdefault("$and", []).extend(value if key == "$and" else [{key: value}])
            else:
                query[key] = value
    return query


def plan_match(plan_filters: Filters, period: Period | None) -> dict[str, Any]:
    """The MongoDB query for the filters within the period."""
    f = plan_filters
    clauses: list[dict[str, Any]] = []
    rng = _period_range(period)
    if rng:
        clauses.append({"event_timestamp": rng})
    for field, values in f.include.items():
        vals = _coerce(field, values)
        clauses.append({field: vals[0] if len(vals) == 1 else {"$in": vals}})
    for field, values in f.exclude.items():
        clauses.append({field: {"$nin": _coerce(field, values)}})
    if f.failed is not None:
        clauses.append({"return_code": {"$nin": [0, None]} if f.failed else 0})
    clauses.extend(dict(CATEGORIES[name].match) for name in f.categories)
    if f.exclude_categories:
        clauses.append({"$nor": [dict(CATEGORIES[name].match) for name in f.exclude_categories]})
    clauses.extend({"sql_text": {"$regex": re.escape(w), "$options": "i"}} for w in f.sql_contains)
    if f.hours is not None and (expr := _hours_expr(*f.hours)) is not None:
        clauses.append({"$expr": expr})
    if f.off_hours is not None:
        off = off_hours_expr(local_hour(), local_weekday())
        clauses.append({"$expr": {"$cond": [IS_DATE, off if f.off_hours else {"$not": [off]}, False]}})
    return _merge(clauses)


def _expr_of(query: dict[str, Any]) -> Any:
    """An aggregation expression true for the events the query matches (the operators plans use)."""
    parts: list[Any] = []
    for key, cond in query.items():
        if key == "$and":
            parts.append({"$and": [_expr_of(q) for q in cond]})
        elif key in ("$or", "$nor"):
            either = {"$or": [_expr_of(q) for q in cond]}
            parts.append(either if key == "$or" else {"$not": [either]})
        elif key == "$expr":
            parts.append(cond)
        elif key.startswith("$"):
            raise PlanError(f"Condition non prise en charge : {key}.")
        else:
            parts.extend(_field_expr(key, cond))
    if not parts:
        return True
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _field_expr(field: str, cond: Any) -> list[Any]:
    value = {"$ifNull": [f"${field}", None]}
    if not (isinstance(cond, dict) and cond and all(str(k).startswith("$") for k in cond)):
        return [{"$eq": [value, {"$literal": cond}]}]
    out: list[Any] = []
    for op, arg in cond.items():
        if op == "$options":
            continue
        if op in ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte"):
            out.append({op: [value, {"$literal": arg}]})
        elif op == "$in":
            out.append({"$in": [value, {"$literal": list(arg)}]})
        elif op == "$nin":
            out.append({"$not": [{"$in": [value, {"$literal": list(arg)}]}]})
        elif op == "$regex":
            rx: dict[str, Any] = {"input": f"${field}", "regex": arg}
            if cond.get("$options"):
                rx["options"] = cond["$options"]
            out.append({"$cond": [{"$eq": [{"$type": f"${field}"}, "string"]}, {"$regexMatch": rx}, False]})
        elif op == "$not" and isinstance(arg, dict):
            inner = _field_expr(field, arg)
            out.append({"$not": [inner[0] if len(inner) == 1 else {"$and": inner}]})
        else:
            raise PlanError(f"Condition non prise en charge : {op}.")
    return out


# --------------------------------------------------------------------------- plan shape


def _window(plan: Plan) -> int | None:
    return plan.threshold.window_minutes if plan.threshold else None


def _session_level(plan: Plan) -> bool:
    """Whether the measure is computed on sessions (grouped by session_id) rather than events."""
    if plan.detail:
        return plan.measure in ("sessions", "duration")
    if plan.measure == "duration" or plan.session_state:
        return True
    return plan.measure == "sessions" and all(d in _SESSION_DIMS for d in plan.group_by)


def _time_grouped(plan: Plan) -> bool:
    """Grouped by time buckets only: every bucket listed in time order (a mixed grouping is ranked)."""
    return bool(plan.group_by) and all(d in TIME_BUCKETS for d in plan.group_by)


def _ranked(plan: Plan) -> bool:
    """Grouped by fields only: ranked and limited in the store."""
    return not plan.detail and bool(plan.group_by) and not _time_grouped(plan)


def _descending(plan: Plan) -> bool:
    if plan.order in ("desc", "newest"):
        return True
    if plan.order in ("asc", "oldest"):
        return False
    return plan.measure != "first"


def _check(plan: Plan) -> None:
    m = plan.measure
    if plan.session_state and m not in ("sessions", "duration"):
        raise PlanError("L'état « ouverte » ne s'applique qu'au nombre ou à la durée des sessions.")
    if _session_level(plan) and not plan.detail:
        for dim in plan.group_by:
            if dim not in _SESSION_DIMS:
                raise PlanError(f"Les sessions ne peuvent pas être regroupées par « {dim} ».")
    t = plan.threshold
    if t is None:
        return
    if t.window_minutes and m != "events":
        raise PlanError("Un seuil par fenêtre de temps ne s'applique qu'à un nombre d'événements.")
    if m in ("first", "last", "coverage"):
        raise PlanError("Un seuil ne s'applique pas à une date ni à une couverture.")
    if plan.detail and m != "duration":
        raise PlanError("Un seuil ne s'applique pas à une liste d'événements.")


# --------------------------------------------------------------------------- stages


def _bucket(name: str, when: str) -> dict[str, Any]:
    tz = settings.APP_TIMEZONE
    if name == "hour":
        expr = local_hour(when)
    elif name == "weekday":
        expr = local_weekday(when)
    elif name == "day":
        expr = local_day(when)
    elif name == "week":
        expr = {"$dateToString": {"date": when, "format": "%G-W%V", "timezone": tz}}
    elif name == "month":
        expr = {"$dateToString": {"date": when, "format": "%Y-%m", "timezone": tz}}
    else:
        raise PlanError(f"Découpage inconnu « {name} ».")
    return {"$cond": [{"$eq": [{"$type": when}, "date"]}, expr, None]}


def _dim_expr(dim: str, *, sessions: bool) -> Any:
    if dim in TIME_BUCKETS:
        return _bucket(dim, "$start" if sessions else TS)
    if sessions and dim == "session_id":
        return "$_id"
    return f"${dim}"


def _key(dims: list[str], *, sessions: bool) -> dict[str, Any] | None:
    if not dims:
        return None
    return {f"g{i}": _dim_expr(d, sessions=sessions) for i, d in enumerate(dims)}


def _all(*conds: Any) -> Any:
    """AND evaluated in order: a later condition never runs on a document an earlier one refused."""
    expr = conds[-1]
    for cond in reversed(conds[:-1]):
        expr = {"$cond": [cond, expr, False]}
    return expr


def _having_stages(having: Having, dim: str, collection: str, events: list[Stage]) -> list[Stage]:
    """Keep the events of the groups (values of `dim`) whose set of `having.field` values passes.

    The sets are computed per group, then the kept groups' events are read again with `$lookup`
    (`events`: the stages that select the plan's events), on the index of `dim` when it is a field.
    """
    group = _dim_expr(dim, sessions=False)
    wanted = {"$literal": _coerce(having.field, having.values)}
    seen = {"$setDifference": ["$_having", [None]]}
    if having.kind == "both":
        keep: dict[str, Any] = {"$setIsSubset": [wanted, seen]}
    elif having.kind == "only":
        keep = {"$and": [{"$gt": [{"$size": seen}, 0]}, {"$setIsSubset": [seen, wanted]}]}
    else:
        keep = {"$eq": [{"$size": {"$setIntersection": [seen, wanted]}}, 0]}
    if dim in TIME_BUCKETS:
        lookup: dict[str, Any] = {
            "from": collection,
            "let": {"g": "$_id"},
            "pipeline": [*events, {"$match": {"$expr": {"$eq": [group, "$$g"]}}}],
        }
    else:
        lookup = {"from": collection, "localField": "_id", "foreignField": dim}
        if events:
            lookup["pipeline"] = events
    stages: list[Stage] = [
        {"$group": {"_id": group, "_having": {"$addToSet": f"${having.field}"}}},
        {"$match": {"_id": {"$ne": None}, "$expr": keep}},
        {"$lookup": {**lookup, "as": "_event"}},
        {"$unwind": "$_event"},
    ]
    if dim not in TIME_BUCKETS:  # localField also matches array elements: keep exact values only
        stages.append({"$match": {"$expr": {"$eq": [f"$_event.{dim}", "$_id"]}}})
    return [*stages, {"$replaceRoot": {"newRoot": "$_event"}}]


def _sequence_stages(seq: Sequence) -> list[Stage]:
    """Keep the `then` events that follow a `first` event on the same `same` fields (within)."""
    actions = list(dict.fromkeys([*seq.first, *seq.then]))
    match = _merge([{"action_name": {"$in": actions}}, *({f: {"$ne": None}} for f in seq.same)])
    window: dict[str, Any] = {"sortBy": {"event_timestamp": 1, "_id": 1}}
    if seq.same:
        window["partitionBy"] = {f"s{i}": f"${f}" for i, f in enumerate(seq.same)}
    is_first = _all(IS_DATE, {"$in": ["$action_name", {"$literal": seq.first}]})
    conds: list[Any] = [
        {"$in": ["$action_name", {"$literal": seq.then}]},
        IS_DATE,
        {"$ne": [{"$ifNull": ["$_after", None]}, None]},
    ]
    if seq.within_minutes is not None:
        conds.append({"$lte": [{"$subtract": [TS, "$_after"]}, seq.within_minutes * 60_000]})
    return [
        {"$match": match},
        # _first: the time of the latest `first` event up to this one; _after: up to the one before.
        {"$setWindowFields": {**window, "output": {"_first": {"$locf": {"$cond": [is_first, TS, None]}}}}},
        {"$setWindowFields": {**window, "output": {"_after": {"$shift": {"output": "$_first", "by": -1}}}}},
        {"$match": {"$expr": _all(*conds)}},
        {"$unset": ["_first", "_after"]},
    ]


def _pre_stages(plan: Plan, collection: str, events: list[Stage]) -> list[Stage]:
    stages: list[Stage] = []
    if plan.having:
        stages += _having_stages(plan.having, plan.group_by[0], collection, events)
    if plan.sequence:
        stages += _sequence_stages(plan.sequence)
    return stages


def _session_stages(plan: Plan) -> list[Stage]:
    """One document per session: start, end, dur (ms), events, its user, host, program and dims."""
    return [*_session_groups(plan), *_session_filter(plan)]


def _session_groups(plan: Plan) -> list[Stage]:
    """The matching events grouped per session: start, end, events, logon, logoff and its fields."""
    fields = dict.fromkeys(["dbusername", "userhost", "client_program_name"])
    fields.update(dict.fromkeys(d for d in plan.group_by if d in SESSION_FIELDS))
    return [
        {"$match": {"session_id": {"$ne": None}}},
        {
            "$group": {
                "_id": "$session_id",
                "start": {"$min": SAFE_TS},
                "end": {"$max": SAFE_TS},
                "events": {"$sum": 1},
                "logon": {
                    "$max": {"$and": [{"$eq": ["$action_name", "LOGON"]}, {"$eq": ["$return_code", 0]}]}
                },
                "logoff": {"$max": {"$eq": ["$action_name", "LOGOFF"]}},
                **{f: {"$first": f"${f}"} for f in fields},
            }
        },
    ]


def _session_filter(plan: Plan) -> list[Stage]:
    """On per-session documents: keep the open ones (if asked), add `dur`, apply a duration threshold."""
    stages: list[Stage] = []
    if plan.session_state == "open":
        stages.append({"$match": {"logon": True, "logoff": False}})
    stages.append({"$set": {"dur": {"$subtract": ["$end", "$start"]}}})
    t = plan.threshold
    if t is not None and plan.measure == "duration":
        stages.append({"$match": {"dur": {_OPS[t.op]: t.value * 1000}}})
    return stages


def _core_stages(plan: Plan) -> list[Stage]:
    """Stages that end with one document per group: `_id` (the key, or None) and the measure."""
    m = plan.measure
    if _session_level(plan):
        return [*_session_stages(plan), _session_group(plan)]
    key = _key(plan.group_by, sessions=False)
    minutes = _window(plan)
    if minutes and plan.threshold is not None:
        t = plan.threshold
        size = minutes * 60_000
        return [
            {"$match": {"event_timestamp": {"$type": "date"}}},
            {
                "$group": {
                    "_id": {"k": key, "w": {"$floor": {"$divide": [{"$toLong": TS}, size]}}},
                    "n": {"$sum": 1},
                }
            },
            {"$match": {"n": {_OPS[t.op]: t.value}}},
            {"$group": {"_id": "$_id.k", "n": {"$max": "$n"}, "windows": {"$sum": 1}}},
        ]
    if m == "events":
        return [{"$group": {"_id": key, "n": {"$sum": 1}}}]
    if m in ("distinct", "sessions"):
        field = plan.field if m == "distinct" and plan.field else "session_id"
        # A group whose events all lack the field is kept, with 0.
        has_value = {"$cond": [{"$eq": [{"$ifNull": ["$_id.v", None]}, None]}, 0, 1]}
        return [
            {"$group": {"_id": {"k": key, "v": f"${field}"}}},
            {"$group": {"_id": "$_id.k", "n": {"$sum": has_value}}},
        ]
    if m in ("first", "last"):
        return [{"$group": {"_id": key, "t": {"$min" if m == "first" else "$max": SAFE_TS}}}]
    if m == "share":
        part = _expr_of(plan_match(plan.share_of or Filters(), None))
        return [
            {"$group": {"_id": key, "n": {"$sum": 1}, "part": {"$sum": {"$cond": [part, 1, 0]}}}},
            {"$set": {"ratio": {"$divide": ["$part", "$n"]}}},
        ]
    return [
        {"$group": {"_id": None, "first": {"$min": SAFE_TS}, "last": {"$max": SAFE_TS}, "n": {"$sum": 1}}}
    ]


def _session_group(plan: Plan) -> Stage:
    """Per-session documents to one document per group with the measure."""
    group: dict[str, Any] = {"_id": _key(plan.group_by, sessions=True), "n": {"$sum": 1}}
    if plan.measure == "duration":
        group.update(avg={"$avg": "$dur"}, max={"$max": "$dur"}, min={"$min": "$dur"})
    return {"$group": group}


def _threshold_expr(measure: str, t: Threshold) -> dict[str, Any]:
    if measure == "share":  # percent, compared without rounding: 100 * part vs value * total
        return {_OPS[t.op]: [{"$multiply": ["$part", 100]}, {"$multiply": [t.value, "$n"]}]}
    return {_OPS[t.op]: ["$n", t.value]}


def _group_filter(plan: Plan) -> list[Stage]:
    """Drop the groups with a null value and those the threshold refuses."""
    stages: list[Stage] = [{"$match": {f"_id.g{i}": {"$ne": None} for i in range(len(plan.group_by))}}]
    t = plan.threshold
    if t is not None and not t.window_minutes and plan.measure != "duration":
        stages.append({"$match": {"$expr": _threshold_expr(plan.measure, t)}})
    return stages


def _sort_field(plan: Plan) -> str:
    return "n" if _window(plan) else _SORT_FIELD[plan.measure]


def _rank_facet(plan: Plan, measures: list[str]) -> Stage:
    """The groups sorted by the measure(s) then by value, limited; with their number before the limit."""
    direction = -1 if _descending(plan) else 1
    sort: dict[str, int] = {m: direction for m in measures}
    sort.update({f"_id.g{i}": 1 for i in range(len(plan.group_by))})
    rows: list[Stage] = [{"$sort": sort}]
    if plan.limit:
        rows.append({"$limit": plan.limit})
    return {"$facet": {"total": [{"$count": "n"}], "rows": rows}}


def _detail_stages(plan: Plan) -> tuple[list[Stage], dict[str, list[Stage]]]:
    """The stages before the detail's `$facet`, and its branches: rows and total."""
    direction = 1 if plan.order in ("asc", "oldest") else -1
    limit = plan.limit or DETAIL_LIMIT
    if _session_level(plan):
        return _session_stages(plan), _session_facets(plan)
    return [], {
        "rows": [
            {"$sort": {"event_timestamp": direction, "_id": direction}},
            {"$limit": limit},
            {"$project": {"_id": 0, **{c: 1 for c in EVENT_COLUMNS}}},
        ],
        "total": [{"$count": "n"}],
    }


def _session_facets(plan: Plan) -> dict[str, list[Stage]]:
    """The branches of a detail of sessions: the page of sessions by start, and their number."""
    direction = 1 if plan.order in ("asc", "oldest") else -1
    return {
        "rows": [{"$sort": {"start": direction, "_id": direction}}, {"$limit": plan.limit or DETAIL_LIMIT}],
        "total": [{"$count": "n"}],
    }


def _enclosing(a: Period | None, b: Period | None) -> Period | None:
    """The smallest period holding both (None on a side when either is open there)."""
    if a is None or b is None:
        return None
    starts = [p.start for p in (a, b)]
    ends = [p.end for p in (a, b)]
    start = min(_aware(s) for s in starts if s is not None) if None not in starts else None
    end = max(_aware(e) for e in ends if e is not None) if None not in ends else None
    return Period(start=start, end=end)


def _periods(plan: Plan) -> list[tuple[str, Period | None]]:
    return [("p1", plan.period), ("p2", plan.compare)]


def compile_plan(plan: Plan, collection: str = AUDIT_COLLECTION) -> list[Stage]:
    """The one aggregation pipeline on `collection` that computes the plan's result."""
    _check(plan)
    if plan.compare is None:
        head = match_stages(AuditFilters(), plan_match(plan.filters, plan.period))
        pre = _pre_stages(plan, collection, head)
        if plan.detail:
            before, facets = _detail_stages(plan)
            return [*head, *pre, *before, {"$facet": facets}]
        body = [*head, *pre, *_core_stages(plan)]
        if _ranked(plan):
            body += [*_group_filter(plan), _rank_facet(plan, [_sort_field(plan)])]
        return body
    head = match_stages(AuditFilters(), plan_match(plan.filters, _enclosing(plan.period, plan.compare)))
    branches: dict[str, list[Stage]] = {}
    for label, period in _periods(plan):
        rng = _period_range(period)
        start = [{"$match": {"event_timestamp": rng}}] if rng else []
        start += _pre_stages(plan, collection, [*head, *start])
        if plan.detail:
            before, facets = _detail_stages(plan)
            for name, stages in facets.items():
                branches[f"{label}_{name}"] = [*start, *before, *stages]
        else:
            branches[label] = [*start, *_core_stages(plan), *(_group_filter(plan) if _ranked(plan) else [])]
    pipeline = [*head, {"$facet": branches}]
    if _ranked(plan):
        # One document per group holding its measure in each period: a (p1) and b (p2).
        tagged = [
            {"$map": {"input": f"${label}", "in": {"k": "$$this._id", side: "$$this"}}}
            for label, side in (("p1", "a"), ("p2", "b"))
        ]
        field = _sort_field(plan)
        pipeline += [
            {"$project": {"_id": 0, "x": {"$concatArrays": tagged}}},
            {"$unwind": "$x"},
            {"$group": {"_id": "$x.k", "a": {"$max": "$x.a"}, "b": {"$max": "$x.b"}}},
            _rank_facet(plan, [f"a.{field}", f"b.{field}"]),
        ]
    return pipeline


# --------------------------------------------------------------------------- result rows


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _secs(ms: Any) -> int | None:
    if not isinstance(ms, int | float) or isinstance(ms, bool):
        return None
    return round(ms / 1000)


def _date(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _values(plan: Plan, doc: dict[str, Any]) -> list[Any]:
    """The measure columns of one group document."""
    if _window(plan):
        return [_int(doc.get("n")), _int(doc.get("windows"))]
    m = plan.measure
    n = _int(doc.get("n"))
    if m == "duration":
        return [n, _secs(doc.get("avg")), _secs(doc.get("max")), _secs(doc.get("min"))]
    if m in ("first", "last"):
        return [_date(doc.get("t"))]
    if m == "share":
        part = _int(doc.get("part"))
        return [part, n, round(100 * part / n, 1) if n else 0.0]
    if m == "coverage":
        return [_date(doc.get("first")), _date(doc.get("last")), n]
    return [n]


def _passes(plan: Plan, doc: dict[str, Any]) -> bool:
    """The threshold (without window) on one group document, for rows assembled here."""
    t = plan.threshold
    if t is None or t.window_minutes or plan.measure == "duration":
        return True
    n = _int(doc.get("n"))
    left, right = (100 * _int(doc.get("part")), t.value * n) if plan.measure == "share" else (n, t.value)
    return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[t.op]


def _order_key(value: Any) -> tuple[int, Any]:
    """Values of any type in MongoDB's order (null, numbers, strings, ..., dates)."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (7, value)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, datetime):
        return (8, _aware(value).timestamp())
    return (9, str(value))


def _freeze(value: Any) -> Any:
    """A hashable stand-in for a group value (a strange document may group by a list)."""
    if isinstance(value, list):
        return ("list", tuple(_freeze(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, _freeze(v)) for k, v in value.items()))
    return value


def _bucket_date(name: str, key: Any) -> date | None:
    if not isinstance(key, str):
        return None
    try:
        if name == "day":
            return date.fromisoformat(key)
        if name == "week":
            return datetime.strptime(f"{key}-1", "%G-W%V-%u").date()
        return date(int(key[:4]), int(key[5:7]), 1)
    except ValueError:
        return None


def _bucket_axis(name: str, period: Period | None, seen: list[Any]) -> list[Any] | None:
    """Every bucket of the period (or from the first to the last seen) in time order; None if too many.
    A period running on past today stops at today (or its last event, if later): the days to come are
    not listed as zeros."""
    if name == "hour":
        return list(range(24))
    if name == "weekday":
        return list(range(1, 8))
    dates = sorted(d for d in (_bucket_date(name, k) for k in seen) if d is not None)
    tz = settings.tz
    lo = _aware(period.start).astimezone(tz).date() if period and period.start else None
    hi = (
        (_aware(period.end) - timedelta(microseconds=1)).astimezone(tz).date()
        if period and period.end
        else None
    )
    lo = lo or (dates[0] if dates else hi)
    hi = hi or (dates[-1] if dates else lo)
    if lo is None or hi is None or lo > hi:
        return []
    today = datetime.now(tz).date()
    if lo <= today < hi:
        hi = max(today, dates[-1] if dates else today)
    if name == "day":
        count = (hi - lo).days + 1
        if count > MAX_ROWS:
            return None
        return [(lo + timedelta(days=i)).isoformat() for i in range(count)]
    if name == "week":
        monday = lo - timedelta(days=lo.weekday())
        count = (hi - monday).days // 7 + 1
        if count > MAX_ROWS:
            return None
        weeks = (monday + timedelta(weeks=i) for i in range(count))
        return [f"{w.isocalendar()[0]}-W{w.isocalendar()[1]:02d}" for w in weeks]
    first, last = lo.year * 12 + lo.month - 1, hi.year * 12 + hi.month - 1
    if last - first >= MAX_ROWS:
        return None
    return [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in range(first, last + 1)]


def _rank_rows(plan: Plan, rows: list[tuple[list[Any], Any]]) -> list[list[Any]]:
    """Rows (in group order) ranked by their measure; ties keep the group order."""
    ranked = sorted(rows, key=lambda r: _order_key(r[1]), reverse=_descending(plan))
    return [row for row, _ in ranked]


def _assemble(plan: Plan, docs: list[dict[str, Any]], period: Period | None) -> tuple[list[list[Any]], int]:
    """Rows of an ungrouped or time-bucket-grouped plan from its group documents; (rows, total)."""
    dims = plan.group_by
    window = bool(_window(plan))
    if not dims:
        doc = docs[0] if docs else None
        if (window and doc is None) or not _passes(plan, doc or _EMPTY):
            return [], 0
        return [_values(plan, doc or _EMPTY)], 1
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    seen: list[dict[Any, Any]] = [{} for _ in dims]
    for doc in docs:
        ident = doc.get("_id")
        key = tuple(ident.get(f"g{i}") for i in range(len(dims))) if isinstance(ident, dict) else (None,)
        if any(v is None for v in key):
            continue
        groups[tuple(_freeze(v) for v in key)] = doc
        for i, v in enumerate(key):
            seen[i].setdefault(_freeze(v), v)
    axes: list[list[Any] | None] = []
    for i, dim in enumerate(dims):
        values = list(seen[i].values())
        # With `having`, the groups are the kept values of dims[0] only: no empty bucket there.
        if dim in TIME_BUCKETS and not (i == 0 and plan.having):
            axes.append(_bucket_axis(dim, period, values))
        else:
            axes.append(sorted(values, key=_order_key))
    combos: Iterable[tuple[Any, ...]]
    full = [a for a in axes if a is not None]
    if len(full) == len(axes) and math.prod(len(a) for a in full) <= MAX_ROWS:
        combos = itertools.product(*full)
    else:
        keys = (tuple(seen[i][v] for i, v in enumerate(k)) for k in groups)
        combos = sorted(keys, key=lambda k: tuple(_order_key(v) for v in k))
    field = _sort_field(plan)
    rows: list[tuple[list[Any], Any]] = []
    for combo in combos:
        found = groups.get(tuple(_freeze(v) for v in combo))
        if window and found is None:
            continue
        doc = found or _EMPTY
        if _passes(plan, doc):
            rows.append(([*combo, *_values(plan, doc)], doc.get(field)))
    total = len(rows)
    listed = _rank_rows(plan, rows) if plan.order or plan.limit else [row for row, _ in rows]
    return listed[: plan.limit] if plan.limit else listed, total


def _group_key(doc: dict[str, Any], dims: int) -> list[Any]:
    ident = doc.get("_id")
    return [ident.get(f"g{i}") if isinstance(ident, dict) else None for i in range(dims)]


def _detail_rows(plan: Plan, docs: list[dict[str, Any]]) -> list[list[Any]]:
    if _session_level(plan):
        return [
            [
                d.get("_id"),
                d.get("dbusername"),
                d.get("userhost"),
                d.get("client_program_name"),
                _date(d.get("start")),
                _date(d.get("end")),
                _secs(d.get("dur")),
                _int(d.get("events")),
            ]
            for d in docs
        ]
    return [[d.get(c) for c in EVENT_COLUMNS] for d in docs]


def _count(facet: Any) -> int:
    return _int(facet[0].get("n")) if isinstance(facet, list) and facet else 0


def _columns(plan: Plan) -> list[str]:
    lead = ["period"] if plan.compare is not None else []
    if plan.detail:
        return [*lead, *(SESSION_COLUMNS if _session_level(plan) else EVENT_COLUMNS)]
    measure = ["count", "windows"] if _window(plan) else list(MEASURE_COLUMNS[plan.measure])
    return [*lead, *plan.group_by, *measure]


def _read(plan: Plan, docs: list[dict[str, Any]]) -> tuple[list[list[Any]], int]:
    """The result rows and total from the aggregation's documents."""
    dims = len(plan.group_by)
    doc = docs[0] if docs else {}
    rows: list[list[Any]] = []
    if plan.compare is None:
        if plan.detail:
            return _detail_rows(plan, doc.get("rows", [])), _count(doc.get("total"))
        if _ranked(plan):
            rows = [[*_group_key(d, dims), *_values(plan, d)] for d in doc.get("rows", [])]
            return rows, _count(doc.get("total"))
        return _assemble(plan, docs, plan.period)
    if _ranked(plan):
        groups = doc.get("rows", [])
        rows = [
            [label, *_group_key(d, dims), *_values(plan, d.get(side) or _EMPTY)]
            for label, side in (("p1", "a"), ("p2", "b"))
            for d in groups
        ]
        return rows, 2 * _count(doc.get("total"))
    total = 0
    for label, period in _periods(plan):
        if plan.detail:
            part = _detail_rows(plan, doc.get(f"{label}_rows", []))
            total += _count(doc.get(f"{label}_total"))
        else:
            part, n = _assemble(plan, doc.get(label, []), period)
            total += n
        rows += [[label, *row] for row in part]
    return rows, total
