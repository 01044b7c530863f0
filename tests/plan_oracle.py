"""A plain-Python reference evaluator of `plan.Plan`, written independently of plan_compiler.py.

Tests run a plan through both this oracle (on a list of event dicts) and the compiled MongoDB
pipeline (on the same events in a store), and compare the figures. Everything here is written for
obviousness, not speed: each rule of the `plan` docstring is one small function.

Decisions where the spec leaves room are marked "DECISION" below.
"""

import re
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from plan import (
    CATEGORIES,
    EVENT_COLUMNS,
    MEASURE_COLUMNS,
    SESSION_COLUMNS,
    TIME_BUCKETS,
    Filters,
    Period,
    Plan,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CALENDAR_BUCKETS = ("day", "week", "month")
DETAIL_LIMIT = 50

WINDOW_COLUMNS = ["count", "windows"]


@dataclass
class Result:
    columns: list[str]
    rows: list[list]
    total: int = 0

    def __iter__(self):
        """`columns, rows = evaluate(...)` works too."""
        yield self.columns
        yield self.rows


# --------------------------------------------------------------------------------------------
# MongoDB query matching (the subset used by CATEGORIES and plain filters)
# --------------------------------------------------------------------------------------------

_MISSING = object()


def _regex_flags(options: str) -> int:
    flags = 0
    for letter, flag in (("i", re.IGNORECASE), ("m", re.MULTILINE), ("s", re.DOTALL), ("x", re.VERBOSE)):
        if letter in options:
            flags |= flag
    return flags


def _same(value: Any, wanted: Any) -> bool:
    """MongoDB equality of a stored value with a query value: null matches null and missing; an
    array matches when one of its elements (or the whole array) is equal; booleans are not numbers."""
    if value is _MISSING:
        value = None
    if wanted is None:
        return value is None
    if isinstance(value, list) and not isinstance(wanted, list):
        return any(_same(v, wanted) for v in value)
    if isinstance(value, bool) != isinstance(wanted, bool):
        return False
    return value == wanted


def _regex_matches(value: Any, pattern: str, options: str) -> bool:
    if isinstance(value, list):
        return any(_regex_matches(v, pattern, options) for v in value)
    return isinstance(value, str) and re.search(pattern, value, _regex_flags(options)) is not None


def _field_matches(value: Any, condition: Any) -> bool:
    """`value` is the stored value (or _MISSING); `condition` is what the query asks of it."""
    if isinstance(condition, re.Pattern):
        return _regex_matches(value, condition.pattern, "i" if condition.flags & re.IGNORECASE else "")
    if not (isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition)):
        return _same(value, condition)
    for op, arg in condition.items():
        if op == "$eq":
            ok = _same(value, arg)
        elif op == "$ne":
            ok = not _same(value, arg)
        elif op == "$in":
            ok = any(_same(value, a) for a in arg)
        elif op == "$nin":
            ok = not any(_same(value, a) for a in arg)
        elif op == "$regex":
            ok = _regex_matches(value, arg, condition.get("$options", ""))
        elif op == "$options":
            ok = True  # read with $regex
        elif op == "$not":
            ok = not _field_matches(value, arg)
        elif op == "$exists":
            ok = (value is not _MISSING) == bool(arg)
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            ok = value not in (_MISSING, None) and _compare(value, op[1:], arg)
        else:
            raise ValueError(f"oracle: unsupported query operator {op}")
        if not ok:
            return False
    return True


def mongo_match(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    """Whether `doc` matches the MongoDB query `query` (every top-level clause holds)."""
    for key, condition in query.items():
        if key == "$or":
            ok = any(mongo_match(doc, q) for q in condition)
        elif key == "$and":
            ok = all(mongo_match(doc, q) for q in condition)
        elif key == "$nor":
            ok = not any(mongo_match(doc, q) for q in condition)
        elif key.startswith("$"):
            raise ValueError(f"oracle: unsupported top-level operator {key}")
        else:
            ok = _field_matches(doc.get(key, _MISSING), condition)
        if not ok:
            return False
    return True


def _compare(value: Any, op: str, limit: Any) -> bool:
    if op == "gt":
        return value > limit
    if op == "gte":
        return value >= limit
    if op == "lt":
        return value < limit
    if op == "lte":
        return value <= limit
    raise ValueError(op)


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------


def _ts(event: dict[str, Any]) -> datetime:
    ts = event["event_timestamp"]
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


def _local(event: dict[str, Any], tz: ZoneInfo) -> datetime:
    return _ts(event).astimezone(tz)


def _bucket_of_local(name: str, local: datetime | date) -> Any:
    if name == "hour":
        return local.hour
    if name == "weekday":
        return local.isoweekday()
    if name == "day":
        return local.strftime("%Y-%m-%d")
    if name == "week":
        return local.strftime("%G-W%V")
    if name == "month":
        return local.strftime("%Y-%m")
    raise ValueError(name)


def _in_period(event: dict[str, Any], period: Period | None) -> bool:
    if period is None:
        return True
    ts = _ts(event)
    if period.start is not None and ts < period.start:
        return False
    return not (period.end is not None and ts >= period.end)


def _in_hours(hour: int, hours: tuple[int, int]) -> bool:
    start, end = hours
    if start <= end:  # DECISION: (h, h) is empty
        return start <= hour < end
    return hour >= start or hour < end


def _off_hours(local: datetime, business_hours: tuple[int, int]) -> bool:
    start, end = business_hours
    return local.hour < start or local.hour >= end or local.isoweekday() >= 6


# --------------------------------------------------------------------------------------------
# Filters and selection
# --------------------------------------------------------------------------------------------


def passes_filters(
    event: dict[str, Any], filters: Filters, tz: ZoneInfo, business_hours: tuple[int, int] = (8, 19)
) -> bool:
    for name, values in filters.include.items():
        if not _field_matches(event.get(name, _MISSING), {"$in": list(values)}):
            return False
    for name, values in filters.exclude.items():
        if not _field_matches(event.get(name, _MISSING), {"$nin": list(values)}):
            return False
    for name in filters.categories:
        if not mongo_match(event, CATEGORIES[name].match):
            return False
    for name in filters.exclude_categories:
        if mongo_match(event, CATEGORIES[name].match):
            return False
    if filters.failed is not None:
        # DECISION: MongoDB semantics, {"$ne": 0} / {"$eq": 0}: a missing return_code counts as failed.
        failed = event.get("return_code") != 0
        if failed != filters.failed:
            return False
    if filters.sql_contains:
        # DECISION: several substrings: any of them (the Filters rule "values of one field: OR").
        sql = event.get("sql_text")
        if not isinstance(sql, str):
            return False
        if not any(s.lower() in sql.lower() for s in filters.sql_contains):
            return False
    if filters.hours is not None and not _in_hours(_local(event, tz).hour, filters.hours):
        return False
    return filters.off_hours is None or _off_hours(_local(event, tz), business_hours) == filters.off_hours


def _group_value(event: dict[str, Any], name: str, tz: ZoneInfo) -> Any:
    if name in TIME_BUCKETS:
        return _bucket_of_local(name, _local(event, tz))
    return _hashable(event.get(name))


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _open_sessions(events: list[dict[str, Any]]) -> set[Any]:
    # a session is open after a successful LOGON (a failed attempt opens nothing) with no LOGOFF
    logon = {
        e.get("session_id") for e in events if e.get("action_name") == "LOGON" and e.get("return_code") == 0
    }
    logoff = {e.get("session_id") for e in events if e.get("action_name") == "LOGOFF"}
    return (logon - logoff) - {None}


def _having(plan: Plan, events: list[dict[str, Any]], tz: ZoneInfo) -> list[dict[str, Any]]:
    having = plan.having
    key = plan.group_by[0]
    seen: dict[Any, set[Any]] = {}
    for e in events:
        g = _group_value(e, key, tz)
        if g is None:
            continue
        s = seen.setdefault(g, set())
        v = _hashable(e.get(having.field))
        if v is not None:  # DECISION: a missing having.field value is not a value of S
            s.add(v)
    wanted = {_hashable(v) for v in having.values}
    kept = set()
    for g, s in seen.items():
        if having.kind == "both":
            ok = wanted <= s
        elif having.kind == "only":
            ok = bool(s) and s <= wanted
        else:
            ok = not (s & wanted)
        if ok:
            kept.add(g)
    return [e for e in events if _group_value(e, key, tz) in kept]


def _sequence(plan: Plan, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`then` events with a `first` event strictly before them, on equal `same` values, at most
    within_minutes before (the latest earlier `first` event is the one to check)."""
    seq = plan.sequence

    def same_key(e: dict[str, Any]) -> tuple:
        # DECISION: missing/None values are equal to each other (MongoDB null equality)
        return tuple(_hashable(e.get(name)) for name in seq.same)

    firsts: dict[tuple, list[datetime]] = {}
    for e in events:
        if e.get("action_name") in seq.first:
            firsts.setdefault(same_key(e), []).append(_ts(e))
    for stamps in firsts.values():
        stamps.sort()
    kept = []
    for e in events:
        if e.get("action_name") not in seq.then:
            continue
        stamps = firsts.get(same_key(e), [])
        i = bisect_left(stamps, _ts(e)) - 1  # the latest `first` strictly earlier
        if i < 0:
            continue
        delay = _ts(e) - stamps[i]
        # DECISION: "within" is inclusive: delay <= within_minutes
        if seq.within_minutes is None or delay <= timedelta(minutes=seq.within_minutes):
            kept.append(e)
    return kept


def select(
    plan: Plan,
    events: list[dict[str, Any]],
    period: Period | None,
    tz: ZoneInfo,
    business_hours: tuple[int, int],
) -> list[dict[str, Any]]:
    """The events the measure applies to, in one period: filters, period, then session_state, then
    having, then sequence (each step works on what the previous one kept)."""
    kept = [
        e for e in events if _in_period(e, period) and passes_filters(e, plan.filters, tz, business_hours)
    ]
    if plan.session_state == "open":
        open_ids = _open_sessions(kept)
        kept = [e for e in kept if e.get("session_id") in open_ids]
    if plan.having is not None:
        kept = _having(plan, kept, tz)
    if plan.sequence is not None:
        kept = _sequence(plan, kept)
    return kept


def _measured(plan: Plan, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """DECISION: events that cannot take part in the measure are dropped before grouping:
    distinct needs a non-null `field`, sessions/duration a non-null session_id. So no group shows
    with 0 distinct values or 0 sessions (time-bucket listings still show every bucket)."""
    if plan.threshold is not None and plan.threshold.window_minutes is not None:
        return events
    if plan.measure == "distinct":
        return [e for e in events if e.get(plan.field) is not None]
    if plan.measure in ("sessions", "duration"):
        return [e for e in events if e.get("session_id") is not None]
    return events


# --------------------------------------------------------------------------------------------
# Measures
# --------------------------------------------------------------------------------------------


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def _session_spans(events: list[dict[str, Any]]) -> dict[Any, tuple[datetime, datetime]]:
    spans: dict[Any, tuple[datetime, datetime]] = {}
    for e in events:
        sid = e.get("session_id")
        if sid is None:
            continue
        ts = _ts(e)
        lo, hi = spans.get(sid, (ts, ts))
        spans[sid] = (min(lo, ts), max(hi, ts))
    return spans


def measure_values(
    plan: Plan, events: list[dict[str, Any]], tz: ZoneInfo, business_hours: tuple[int, int]
) -> list[Any]:
    """The measure columns for one group of events (or for all of them)."""
    if plan.threshold is not None and plan.threshold.window_minutes is not None:
        return _window_values(plan, events)
    m = plan.measure
    if m == "events":
        return [len(events)]
    if m == "distinct":
        return [len({_hashable(e.get(plan.field)) for e in events} - {None})]
    if m == "sessions":
        return [len({e.get("session_id") for e in events} - {None})]
    if m == "duration":
        # DECISION: exact seconds (ms precision) per session; avg/max/min rounded with round()
        # (half to even, like MongoDB $round) at the end; None when there is no session.
        durations = [_seconds(lo, hi) for lo, hi in _session_spans(events).values()]
        if not durations:
            return [0, None, None, None]
        return [
            len(durations),
            round(sum(durations) / len(durations)),
            round(max(durations)),
            round(min(durations)),
        ]
    if m == "first":
        return [min((_ts(e) for e in events), default=None)]
    if m == "last":
        return [max((_ts(e) for e in events), default=None)]
    if m == "share":
        total = len(events)
        part = sum(1 for e in events if passes_filters(e, plan.share_of, tz, business_hours))
        percent = round(100 * part / total, 1) if total else 0.0
        return [part, total, percent]
    if m == "coverage":
        stamps = [_ts(e) for e in events]
        return [min(stamps, default=None), max(stamps, default=None), len(stamps)]
    raise ValueError(m)


def _window_values(plan: Plan, events: list[dict[str, Any]]) -> list[int]:
    """[largest count in one window, number of windows whose count passes the threshold].
    DECISION: windows count events whatever the measure; windows without events never count."""
    th = plan.threshold
    size_ms = th.window_minutes * 60_000
    counts = Counter((_ts(e) - EPOCH) // timedelta(milliseconds=1) // size_ms for e in events)
    best = max(counts.values(), default=0)
    passed = sum(1 for c in counts.values() if _compare(c, th.op, th.value))
    return [best, passed]


def _value_columns(plan: Plan) -> list[str]:
    if plan.threshold is not None and plan.threshold.window_minutes is not None:
        return list(WINDOW_COLUMNS)
    return list(MEASURE_COLUMNS[plan.measure])


def sort_value(plan: Plan, values: list[Any]) -> Any:
    """The one figure a measure is sorted and judged (threshold) on.
    DECISION: duration → avg_s; share → percent; coverage → count; window threshold → max count."""
    if plan.threshold is not None and plan.threshold.window_minutes is not None:
        return values[0]
    index = {"duration": 1, "share": 2, "coverage": 2}.get(plan.measure, 0)
    return values[index]


def _passes(plan: Plan, values: list[Any]) -> bool:
    th = plan.threshold
    if th is None:
        return True
    if plan.measure in ("first", "last") and th.window_minutes is None:
        raise ValueError("oracle: a threshold on a timestamp measure is not defined")
    v = sort_value(plan, values)
    return v is not None and _compare(v, th.op, th.value)


def _order_key(value: Any) -> tuple:
    """MongoDB-like ordering across types: null < numbers < strings < others."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (4, value)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, datetime):
        return (3, value)
    return (5, str(value))


def _descending(plan: Plan) -> bool:
    # DECISION: "asc" and "oldest" sort ascending; None, "desc" and "newest" descending.
    return plan.order not in ("asc", "oldest")


# --------------------------------------------------------------------------------------------
# Time-bucket listings
# --------------------------------------------------------------------------------------------


def _days(first: date, last: date) -> list[date]:
    out = []
    d = first
    while d <= last:
        out.append(d)
        d += timedelta(days=1)
    return out


def _bucket_values(
    name: str, period: Period | None, events: list[dict[str, Any]], tz: ZoneInfo, now: datetime
) -> list[Any] | None:
    """Every bucket of the period, in time order. Open side: the first/last measured event.
    None when a side is open and there is no event to stand for it. A period running on past today
    stops at today (or at its last event, if later): the days to come are not listed as zeros."""
    if name == "hour":
        return list(range(24))
    if name == "weekday":
        return list(range(1, 8))
    stamps = sorted(_ts(e) for e in events)
    start = period.start if period is not None and period.start is not None else None
    end = period.end - timedelta(microseconds=1) if period is not None and period.end is not None else None
    start = start if start is not None else (stamps[0] if stamps else None)
    end = end if end is not None else (stamps[-1] if stamps else None)
    if start is None or end is None or end < start:
        return []
    first, last = start.astimezone(tz).date(), end.astimezone(tz).date()
    today = now.astimezone(tz).date()
    if first <= today < last:
        last = max(today, stamps[-1].astimezone(tz).date() if stamps else today)
    days = _days(first, last)
    return list(dict.fromkeys(_bucket_of_local(name, d) for d in days))


def _grid(
    plan: Plan, period: Period | None, events: list[dict[str, Any]], tz: ZoneInfo, now: datetime
) -> list[tuple]:
    keys: list[tuple] = [()]
    for name in plan.group_by:
        values = _bucket_values(name, period, events, tz, now) or []
        keys = [(*k, v) for k in keys for v in values]
    return keys


# --------------------------------------------------------------------------------------------
# Grouped and ungrouped results
# --------------------------------------------------------------------------------------------


def _groups(plan: Plan, events: list[dict[str, Any]], tz: ZoneInfo) -> dict[tuple, list[dict[str, Any]]]:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for e in events:
        key = tuple(_group_value(e, name, tz) for name in plan.group_by)
        if any(v is None for v in key):
            continue  # a missing group value leaves the event out of groupings
        groups.setdefault(key, []).append(e)
    return groups


def _sorted_keys(plan: Plan, keys: list[tuple], value_of) -> list[tuple]:
    keys = sorted(keys, key=lambda k: tuple(_order_key(v) for v in k))
    return sorted(keys, key=lambda k: _order_key(sort_value(plan, value_of(k))), reverse=_descending(plan))


def _evaluate_grouped(plan, events, periods, tz, bh, now) -> Result:
    columns = [*plan.group_by, *_value_columns(plan)]
    time_only = all(name in TIME_BUCKETS for name in plan.group_by)
    calendar = any(name in CALENDAR_BUCKETS for name in plan.group_by)
    zero = measure_values(plan, [], tz, bh)

    tables: list[dict[tuple, list[Any]]] = []
    listed: list[list[tuple]] = []  # per period, the keys it shows (before threshold)
    for _, period in periods:
        measured = _measured(plan, select(plan, events, period, tz, bh))
        groups = _groups(plan, measured, tz)
        table = {k: measure_values(plan, evs, tz, bh) for k, evs in groups.items()}
        keys = _grid(plan, period, measured, tz, now) if time_only else list(table)
        tables.append(table)
        listed.append(keys)

    def value(i: int, key: tuple) -> list[Any]:
        return tables[i].get(key, zero)

    kept = [[k for k in keys if _passes(plan, value(i, k))] for i, keys in enumerate(listed)]

    if len(periods) > 1 and not calendar:
        # DECISION: each group kept in either period gets a row in every period.
        union = list(dict.fromkeys(k for keys in kept for k in keys))
        if time_only:
            union.sort()
        else:
            # DECISION: compare order follows the first period's figures.
            union = _sorted_keys(plan, union, lambda k: value(0, k))
        ordered = [union for _ in periods]
    elif time_only and not (plan.order or plan.limit):
        # DECISION (compare with day/week/month): each period lists its own buckets.
        ordered = kept
    else:
        ordered = [_sorted_keys(plan, keys, lambda k, i=i: value(i, k)) for i, keys in enumerate(kept)]

    rows: list[list] = []
    total = 0
    for i, (label, _) in enumerate(periods):
        keys = ordered[i]
        total += len(keys)
        if plan.limit is not None:
            keys = keys[: plan.limit]  # DECISION: limit counts groups, per period
        prefix = [label] if len(periods) > 1 else []
        rows += [[*prefix, *k, *value(i, k)] for k in keys]
    if len(periods) > 1:
        columns = ["period", *columns]
    return Result(columns, rows, total)


def _evaluate_ungrouped(plan, events, periods, tz, bh) -> Result:
    columns = _value_columns(plan)
    rows = []
    for label, period in periods:
        values = measure_values(plan, _measured(plan, select(plan, events, period, tz, bh)), tz, bh)
        if _passes(plan, values):  # DECISION: an ungrouped threshold keeps or drops the one row
            rows.append([label, *values] if len(periods) > 1 else values)
    if len(periods) > 1:
        columns = ["period", *columns]
    return Result(columns, rows, len(rows))


# --------------------------------------------------------------------------------------------
# Detail
# --------------------------------------------------------------------------------------------


def session_rows(events: list[dict[str, Any]]) -> list[list]:
    """SESSION_COLUMNS per session_id, in no particular order.
    DECISION: user/host/program from the session's earliest event; duration_s rounded to int."""
    by_session: dict[Any, list[dict[str, Any]]] = {}
    for e in events:
        if e.get("session_id") is not None:
            by_session.setdefault(e["session_id"], []).append(e)
    rows = []
    for sid, evs in by_session.items():
        evs = sorted(evs, key=_ts)
        start, end = _ts(evs[0]), _ts(evs[-1])
        head = evs[0]
        row = {
            "session_id": sid,
            "dbusername": head.get("dbusername"),
            "userhost": head.get("userhost"),
            "client_program_name": head.get("client_program_name"),
            "start": start,
            "end": end,
            "duration_s": round(_seconds(start, end)),
            "events": len(evs),
        }
        rows.append([row[c] for c in SESSION_COLUMNS])
    return rows


def _evaluate_detail(plan, events, periods, tz, bh) -> Result:
    limit = plan.limit or DETAIL_LIMIT
    oldest = plan.order == "oldest"
    sessions = plan.measure in ("sessions", "duration")
    columns = list(SESSION_COLUMNS if sessions else EVENT_COLUMNS)
    rows: list[list] = []
    total = 0
    for label, period in periods:
        kept = select(plan, events, period, tz, bh)
        if sessions:
            found = session_rows(kept)
            if plan.threshold is not None:
                # DECISION: a threshold on a session listing keeps sessions by their exact duration.
                th = plan.threshold
                spans = _session_spans(kept)
                found = [r for r in found if _compare(_seconds(*spans[r[0]]), th.op, th.value)]
            i_start = SESSION_COLUMNS.index("start")
            # newest start first; DECISION: ties by session_id in the same direction
            found.sort(key=lambda r: (r[i_start], _order_key(r[0])), reverse=not oldest)
        else:
            ordered = sorted(kept, key=_ts, reverse=not oldest)  # ties: input order (unspecified)
            found = [[e.get(c) for c in EVENT_COLUMNS] for e in ordered]
        total += len(found)
        prefix = [label] if len(periods) > 1 else []
        rows += [[*prefix, *r] for r in found[:limit]]  # DECISION: with compare, limit per period
    if len(periods) > 1:
        columns = ["period", *columns]
    return Result(columns, rows, total)


# --------------------------------------------------------------------------------------------


def evaluate(
    plan: Plan,
    events: list[dict[str, Any]],
    *,
    tz: ZoneInfo,
    business_hours: tuple[int, int] = (8, 19),
    now: datetime | None = None,
) -> Result:
    """(columns, rows, total) of `plan` on `events`, as the `plan` docstring describes them; `now`
    (default: the clock) ends the time buckets of a period that runs on past it."""
    periods: list[tuple[str, Period | None]] = [("p1", plan.period)]
    if plan.compare is not None:
        periods.append(("p2", plan.compare))
    if plan.detail:
        return _evaluate_detail(plan, events, periods, tz, business_hours)
    if plan.group_by:
        return _evaluate_grouped(plan, events, periods, tz, business_hours, now or datetime.now(tz))
    return _evaluate_ungrouped(plan, events, periods, tz, business_hours)
