"""The plan compiler against the demo trail: every table checked against the same table computed in Python."""

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from config import settings
from plan import CATEGORIES, EVENT_COLUMNS, Filters, Having, Period, Plan, Sequence, Threshold
from plan_compiler import PlanError, compile_plan, plan_match
from plan_runner import run_plan

TZ = settings.tz
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)


# --------------------------------------------------------------------------- Python versions


def local(e: dict) -> datetime:
    return e["event_timestamp"].astimezone(TZ)


def is_off_hours(e: dict) -> bool:
    t = local(e)
    return (
        t.hour < settings.BUSINESS_HOURS_START or t.hour >= settings.BUSINESS_HOURS_END or t.isoweekday() >= 6
    )


def field_matches(value: Any, cond: Any) -> bool:
    if not isinstance(cond, dict):
        return value == cond
    flags = re.I if "i" in cond.get("$options", "") else 0
    for op, arg in cond.items():
        if op == "$in" and value not in arg:
            return False
        if op == "$nin" and value in arg:
            return False
        if op == "$regex" and not (isinstance(value, str) and re.search(arg, value, flags)):
            return False
        if op == "$not" and field_matches(value, arg):
            return False
    return True


def query_matches(e: dict, query: dict) -> bool:
    """The Python version of the category conditions."""
    for key, cond in query.items():
        if key == "$or":
            ok = any(query_matches(e, q) for q in cond)
        elif key == "$and":
            ok = all(query_matches(e, q) for q in cond)
        else:
            ok = field_matches(e.get(key), cond)
        if not ok:
            return False
    return True


def keep(e: dict, f: Filters, period: Period | None = None) -> bool:
    ts = e["event_timestamp"]
    if period and ((period.start and ts < period.start) or (period.end and ts >= period.end)):
        return False
    if any(e.get(k) not in [int(x) if k == "return_code" else x for x in v] for k, v in f.include.items()):
        return False
    if any(e.get(k) in v for k, v in f.exclude.items()):
        return False
    if f.failed is not None and (e.get("return_code") not in (0, None)) != f.failed:
        return False
    if not all(query_matches(e, CATEGORIES[c].match) for c in f.categories):
        return False
    if any(query_matches(e, CATEGORIES[c].match) for c in f.exclude_categories):
        return False
    if any(w.lower() not in (e.get("sql_text") or "").lower() for w in f.sql_contains):
        return False
    if f.hours:
        a, b = f.hours
        h = local(e).hour
        if not ((a <= h < b) if a < b else (h >= a or h < b)):
            return False
    return f.off_hours is None or is_off_hours(e) == f.off_hours


def events(demo, f: Filters | None = None, period: Period | None = None) -> list[dict]:
    return [e for e in demo.events if keep(e, f or Filters(), period)]


def bucket(e: dict, name: str) -> Any:
    t = local(e)
    if name == "hour":
        return t.hour
    if name == "weekday":
        return t.isoweekday()
    if name == "day":
        return t.date().isoformat()
    if name == "week":
        year, week, _ = t.isocalendar()
        return f"{year}-W{week:02d}"
    return t.strftime("%Y-%m")


def value(e: dict, dim: str) -> Any:
    return bucket(e, dim) if dim in ("hour", "weekday", "day", "week", "month") else e.get(dim)


def group(evs: Iterable[dict], dims: list[str]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = defaultdict(list)
    for e in evs:
        key = tuple(value(e, d) for d in dims)
        if None not in key:
            out[key].append(e)
    return out


def ranked(measures: dict[tuple, Any], desc: bool = True) -> list[list[Any]]:
    """Rows [*key, measure] sorted by the measure (desc or asc), then by the key."""
    rows = sorted(measures.items(), key=lambda kv: kv[0])
    rows.sort(key=lambda kv: kv[1], reverse=desc)
    return [[*k, v] for k, v in rows]


def days(period: Period) -> list[str]:
    assert period.start and period.end
    lo = period.start.astimezone(TZ).date()
    hi = (period.end - timedelta(microseconds=1)).astimezone(TZ).date()
    return [(lo + timedelta(days=i)).isoformat() for i in range((hi - lo).days + 1)]


def ms(td: timedelta) -> int:
    return td // MS


def sessions_of(evs: list[dict]) -> dict[Any, list[dict]]:
    out: dict[Any, list[dict]] = defaultdict(list)
    for e in evs:
        if e.get("session_id") is not None:
            out[e["session_id"]].append(e)
    return out


def duration_ms(session: list[dict]) -> int:
    stamps = [e["event_timestamp"] for e in session]
    return ms(max(stamps) - min(stamps))


def secs(x: float) -> int:
    return round(x / 1000)


async def rows_of(store, **kwargs) -> list[list[Any]]:
    return (await run_plan(store, Plan(**kwargs))).rows


@pytest.fixture
def week(demo) -> Period:
    return Period(start=demo.end - timedelta(days=7), end=demo.end)


# --------------------------------------------------------------------------- filters


def test_plan_match_shapes():
    q = plan_match(
        Filters(
            include={"return_code": ["1017"], "dbusername": ["A", "B"]},
            exclude={"session_id": [5.0]},
            categories=["dml"],
            exclude_categories=["read", "logon"],
            sql_contains=["a.b(c"],
            hours=(20, 6),
        ),
        Period(start=datetime(2025, 1, 1, tzinfo=UTC)),
    )
    assert q["event_timestamp"] == {"$gte": datetime(2025, 1, 1, tzinfo=UTC)}
    assert q["return_code"] == 1017
    assert q["dbusername"] == {"$in": ["A", "B"]}
    assert q["session_id"] == {"$nin": [5]}
    assert q["action_name"] == CATEGORIES["dml"].match["action_name"]
    assert q["$nor"] == [CATEGORIES["read"].match, CATEGORIES["logon"].match]
    assert q["sql_text"] == {"$regex": re.escape("a.b(c"), "$options": "i"}
    assert "$expr" in q
    assert plan_match(Filters(), None) == {}
    with pytest.raises(PlanError):
        plan_match(Filters(include={"return_code": ["abc"]}), None)


FILTER_CASES = [
    Filters(),
    Filters(include={"dbusername": ["TPETIT", "SCOTT"]}, exclude={"action_name": ["SELECT"]}),
    Filters(include={"return_code": ["1017"]}),
    Filters(include={"instance_id": [1], "action_name": ["DELETE"]}),
    Filters(failed=True),
    Filters(failed=False, include={"dbusername": ["MMARTIN"]}),
    Filters(categories=["dml"]),
    Filters(categories=["ddl"]),
    Filters(categories=["destructive"]),
    Filters(categories=["temporary", "ddl"]),
    Filters(categories=["dictionary"]),
    Filters(categories=["no_where"]),
    Filters(categories=["system_privilege"]),
    Filters(exclude_categories=["read", "logon", "logoff"]),
    Filters(sql_contains=["orders", "where"]),
    Filters(sql_contains=["VALUES (:1"]),
    Filters(hours=(20, 6)),
    Filters(hours=(9, 12), include={"dbusername": ["JDUPONT"]}),
    Filters(hours=(0, 24)),
    Filters(off_hours=True),
    Filters(off_hours=False, failed=True),
]


@pytest.mark.parametrize("f", FILTER_CASES)
async def test_counts_match_the_filters(store, demo, week, f):
    for period in (week, None):
        result = await run_plan(store, Plan(filters=f, period=period))
        assert result.columns == ["count"]
        assert result.rows == [[len(events(demo, f, period))]]
        assert result.total == 1
        # read from the events, or from the rollups when they hold the filters (tests/test_rollups.py)
        assert result.query["collection"] in (store.audit_name, store.audit_name + "_rollups")


async def test_one_aggregation_leads_with_the_time_range(store, demo, week):
    result = await run_plan(store, Plan(filters=Filters(include={"dbusername": ["SCOTT"]}), period=week))
    first = result.query["pipeline"][0]["$match"]
    assert set(first) == {"event_timestamp", "dbusername"}


async def test_hours_window_wraps_and_off_hours(store, demo, week):
    for f in (Filters(hours=(20, 6)), Filters(hours=(9, 12)), Filters(off_hours=True)):
        result = await run_plan(store, Plan(filters=f, period=week, group_by=["hour"]))
        counts = Counter(bucket(e, "hour") for e in events(demo, f, week))
        assert result.rows == [[h, counts.get(h, 0)] for h in range(24)]
    night = (await run_plan(store, Plan(filters=Filters(hours=(20, 6)), group_by=["hour"]))).rows
    assert all(n == 0 for h, n in night if 6 <= h < 20)
    assert sum(n for h, n in night if h >= 20 or h < 6) > 0
    weekend = await rows_of(store, filters=Filters(off_hours=False), period=week, group_by=["weekday"])
    assert weekend[5][1] == weekend[6][1] == 0


# --------------------------------------------------------------------------- measures and groupings


async def test_distinct(store, demo, week):
    evs = events(demo, None, week)
    assert await rows_of(store, measure="distinct", field="object_name", period=week) == [
        [len({e["object_name"] for e in evs if e["object_name"] is not None})]
    ]
    result = await run_plan(
        store, Plan(measure="distinct", field="object_name", group_by=["dbusername"], period=week)
    )
    expected = {
        k: len({e["object_name"] for e in g if e["object_name"] is not None})
        for k, g in group(evs, ["dbusername"]).items()
    }
    assert result.columns == ["dbusername", "distinct"]
    assert result.rows == ranked(expected)


async def test_grouped_by_one_and_two_fields(store, demo, week):
    evs = events(demo, None, week)
    result = await run_plan(store, Plan(group_by=["action_name"], period=week))
    assert result.columns == ["action_name", "count"]
    assert result.rows == ranked({k: len(g) for k, g in group(evs, ["action_name"]).items()})
    assert result.total == len(result.rows)

    pairs = {k: len(g) for k, g in group(evs, ["dbusername", "action_name"]).items()}
    result = await run_plan(store, Plan(group_by=["dbusername", "action_name"], period=week, limit=10))
    assert result.columns == ["dbusername", "action_name", "count"]
    assert result.rows == ranked(pairs)[:10]
    assert result.total == len(pairs)

    result = await run_plan(store, Plan(group_by=["object_name"], period=week, order="asc", limit=5))
    objects = {k: len(g) for k, g in group(evs, ["object_name"]).items()}
    assert result.rows == ranked(objects, desc=False)[:5]
    assert result.total == len(objects)  # events without an object are not a group

    codes = await rows_of(store, group_by=["return_code"])
    assert codes == ranked({k: len(g) for k, g in group(demo.events, ["return_code"]).items()})
    assert all(isinstance(c, int) for c, _ in codes)


async def test_time_buckets_list_every_bucket(store, demo, week):
    evs = events(demo, None, week)
    for name, labels in (("hour", range(24)), ("weekday", range(1, 8))):
        counts = Counter(bucket(e, name) for e in evs)
        assert await rows_of(store, group_by=[name], period=week) == [[b, counts.get(b, 0)] for b in labels]

    ten = Period(start=demo.end - timedelta(days=10), end=demo.end)
    f = Filters(include={"dbusername": ["ADM_MOREAU"]}, categories=["ddl"])
    counts = Counter(bucket(e, "day") for e in events(demo, f, ten))
    result = await run_plan(store, Plan(group_by=["day"], period=ten, filters=f))
    assert result.rows == [[d, counts.get(d, 0)] for d in days(ten)]
    assert 0 in [n for _, n in result.rows]

    for name in ("week", "month", "day"):  # open period: from the first to the last event
        counts = Counter(bucket(e, name) for e in demo.events)
        rows = await rows_of(store, group_by=[name])
        labels = [b for b, _ in rows]
        assert labels == sorted(set(labels)) and set(counts) <= set(labels)
        assert labels[0] == min(counts) and labels[-1] == max(counts)
        assert dict(rows) == {b: counts.get(b, 0) for b in labels}
    lo, hi = (local(e).date() for e in (demo.events[0], demo.events[-1]))
    assert len(await rows_of(store, group_by=["day"])) == (hi - lo).days + 1

    empty = Period(start=datetime(2001, 3, 1, 12, tzinfo=UTC), end=datetime(2001, 3, 4, 12, tzinfo=UTC))
    assert await rows_of(store, group_by=["day"], period=empty) == [
        ["2001-03-01", 0],
        ["2001-03-02", 0],
        ["2001-03-03", 0],
        ["2001-03-04", 0],
    ]

    today = datetime.now(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    running = Period(start=today - timedelta(days=2), end=today + timedelta(days=5))  # "cette semaine"
    labels = [b for b, _ in await rows_of(store, group_by=["day"], period=running)]
    assert labels == [(today - timedelta(days=i)).date().isoformat() for i in (2, 1, 0)]  # no days to come

    counts = Counter((bucket(e, "weekday"), bucket(e, "hour")) for e in evs)
    rows = await rows_of(store, group_by=["weekday", "hour"], period=week)
    assert rows == [[w, h, counts.get((w, h), 0)] for w in range(1, 8) for h in range(24)]

    users = ["TPETIT", "SCOTT"]
    f = Filters(include={"dbusername": users})
    counts = Counter((e["dbusername"], bucket(e, "day")) for e in events(demo, f, week))
    rows = await rows_of(store, group_by=["dbusername", "day"], period=week, filters=f)
    # a grouping that mixes a field and a time bucket is ranked like a field grouping, without empty buckets
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    assert rows == [[u, d, n] for (u, d), n in expected]

    counts = Counter(bucket(e, "day") for e in evs)
    result = await run_plan(store, Plan(group_by=["day"], period=week, limit=3))
    assert result.rows == ranked({(d,): counts.get(d, 0) for d in days(week)})[:3]
    assert result.total == len(days(week))


async def test_share(store, demo, week):
    evs = events(demo, None, week)
    failed = Filters(failed=True)
    result = await run_plan(
        store, Plan(measure="share", share_of=failed, group_by=["dbusername"], period=week)
    )
    assert result.columns == ["dbusername", "part", "total", "percent"]
    shares = {}
    for k, g in group(evs, ["dbusername"]).items():
        part = sum(keep(e, failed) for e in g)
        shares[k] = (part / len(g), part, len(g))
    order = sorted(shares, key=lambda k: k)
    order.sort(key=lambda k: shares[k][0], reverse=True)
    assert result.rows == [
        [*k, shares[k][1], shares[k][2], round(100 * shares[k][1] / shares[k][2], 1)] for k in order
    ]
    assert all(isinstance(r[3], float) for r in result.rows)

    dml = Filters(categories=["dml"], hours=(8, 12))
    part = len(events(demo, dml, week))
    assert await rows_of(store, measure="share", share_of=dml, period=week) == [
        [part, len(evs), round(100 * part / len(evs), 1)]
    ]

    rows = await rows_of(
        store,
        measure="share",
        share_of=failed,
        group_by=["dbusername"],
        period=week,
        threshold=Threshold(value=1.5),
    )
    assert rows == [r for r in result.rows if 100 * r[1] > 1.5 * r[2]]
    assert rows


async def test_first_and_last(store, demo, week):
    evs = events(demo, None, week)
    groups = group(evs, ["dbusername"])
    firsts = {k: min(e["event_timestamp"] for e in g) for k, g in groups.items()}
    lasts = {k: max(e["event_timestamp"] for e in g) for k, g in groups.items()}
    result = await run_plan(store, Plan(measure="first", group_by=["dbusername"], period=week))
    assert result.columns == ["dbusername", "first"]
    assert result.rows == ranked(firsts, desc=False)
    assert await rows_of(
        store, measure="first", group_by=["dbusername"], period=week, order="newest"
    ) == ranked(firsts)
    assert await rows_of(store, measure="last", group_by=["dbusername"], period=week) == ranked(lasts)
    assert (
        await rows_of(store, measure="last", group_by=["dbusername"], period=week, order="oldest", limit=3)
        == (ranked(lasts, desc=False)[:3])
    )
    [[first]] = await rows_of(store, measure="first", period=week)
    assert first == min(firsts.values()) and first.tzinfo is not None
    assert await rows_of(store, measure="last", period=week) == [[max(lasts.values())]]


async def test_coverage(store, demo):
    stamps = [e["event_timestamp"] for e in demo.events]
    result = await run_plan(store, Plan(measure="coverage"))
    assert result.columns == ["first", "last", "count"]
    assert result.rows == [[min(stamps), max(stamps), len(stamps)]]
    f = Filters(include={"dbusername": ["SCOTT"]})
    scott = [e["event_timestamp"] for e in events(demo, f)]
    assert await rows_of(store, measure="coverage", filters=f) == [[min(scott), max(scott), len(scott)]]
    assert await rows_of(store, measure="coverage", filters=Filters(include={"dbusername": ["NOBODY"]})) == [
        [None, None, 0]
    ]


async def test_sessions_count_duration_and_open(store, demo, week):
    evs = events(demo, None, week)
    sessions = sessions_of(evs)
    assert await rows_of(store, measure="sessions", period=week) == [[len(sessions)]]

    by_user: dict[tuple, list[list[dict]]] = defaultdict(list)
    for s in sessions.values():
        by_user[(s[0]["dbusername"],)].append(s)
    result = await run_plan(store, Plan(measure="sessions", group_by=["dbusername"], period=week))
    assert result.columns == ["dbusername", "sessions"]
    assert result.rows == ranked({k: len(v) for k, v in by_user.items()})

    by_day = Counter(bucket(min(s, key=lambda e: e["event_timestamp"]), "day") for s in sessions.values())
    assert await rows_of(store, measure="sessions", group_by=["day"], period=week) == [
        [d, by_day.get(d, 0)] for d in days(week)
    ]

    per_action = {k: len({e["session_id"] for e in g}) for k, g in group(evs, ["action_name"]).items()}
    assert await rows_of(store, measure="sessions", group_by=["action_name"], period=week) == ranked(
        per_action
    )

    result = await run_plan(store, Plan(measure="duration", group_by=["dbusername"], period=week))
    assert result.columns == ["dbusername", "sessions", "avg_s", "max_s", "min_s"]
    stats = {}
    for k, ss in by_user.items():
        durs = [duration_ms(s) for s in ss]
        stats[k] = (
            sum(durs) / len(durs),
            [len(durs), secs(sum(durs) / len(durs)), secs(max(durs)), secs(min(durs))],
        )
    order = sorted(stats)
    order.sort(key=lambda k: stats[k][0], reverse=True)
    assert result.rows == [[*k, *stats[k][1]] for k in order]
    durs = [duration_ms(s) for s in sessions.values()]
    assert await rows_of(store, measure="duration", period=week) == [
        [len(durs), secs(sum(durs) / len(durs)), secs(max(durs)), secs(min(durs))]
    ]

    def is_open(s: list[dict]) -> bool:
        acts = {(e["action_name"], e["return_code"]) for e in s}
        return ("LOGON", 0) in acts and not any(a == "LOGOFF" for a, _ in acts)

    # A period that ends in the middle of a session: that one, at least, is open.
    longest = max(sessions.values(), key=len)
    cut = Period(start=week.start, end=longest[len(longest) // 2]["event_timestamp"])
    opened = {sid: s for sid, s in sessions_of(events(demo, None, cut)).items() if is_open(s)}
    assert longest[0]["session_id"] in opened
    assert await rows_of(store, measure="sessions", session_state="open", period=cut) == [[len(opened)]]
    per_user = Counter(s[0]["dbusername"] for s in opened.values())
    assert await rows_of(
        store, measure="sessions", session_state="open", period=cut, group_by=["dbusername"]
    ) == ranked({(u,): n for u, n in per_user.items()})
    durs = [duration_ms(s) for s in opened.values()]
    assert await rows_of(store, measure="duration", session_state="open", period=cut) == [
        [len(durs), secs(sum(durs) / len(durs)), secs(max(durs)), secs(min(durs))]
    ]


async def test_threshold_without_window(store, demo, week):
    evs = events(demo, None, week)
    counts = {k: len(g) for k, g in group(evs, ["dbusername"]).items()}
    result = await run_plan(
        store, Plan(group_by=["dbusername"], period=week, threshold=Threshold(op="gte", value=500))
    )
    assert result.rows == ranked({k: n for k, n in counts.items() if n >= 500})
    assert 0 < result.total < len(counts)
    assert await rows_of(store, period=week, threshold=Threshold(value=len(evs))) == []
    assert await rows_of(store, period=week, threshold=Threshold(op="lte", value=len(evs))) == [[len(evs)]]
    objects = {
        k: len({e["object_name"] for e in g if e["object_name"]})
        for k, g in group(evs, ["dbusername"]).items()
    }
    rows = await rows_of(
        store, measure="distinct", field="object_name", group_by=["dbusername"], period=week,
        threshold=Threshold(op="lt", value=3),
    )  # fmt: skip
    assert rows == ranked({k: n for k, n in objects.items() if n < 3})
    per_day = Counter(
        bucket(e, "day") for e in events(demo, Filters(include={"dbusername": ["SCOTT"]}), week)
    )
    rows = await rows_of(
        store, group_by=["day"], period=week, filters=Filters(include={"dbusername": ["SCOTT"]}),
        threshold=Threshold(op="lt", value=20),
    )  # fmt: skip
    assert rows == [[d, per_day.get(d, 0)] for d in days(week) if per_day.get(d, 0) < 20]


def windows(
    evs: list[dict], dims: list[str], minutes: int, passes: Callable[[int], bool]
) -> dict[tuple, list]:
    per: dict[tuple, Counter] = defaultdict(Counter)
    for k, g in group(evs, dims).items():
        for e in g:
            per[k][ms(e["event_timestamp"] - EPOCH) // (minutes * 60_000)] += 1
    out = {}
    for k, c in per.items():
        ok = [n for n in c.values() if passes(n)]
        if ok:
            out[k] = [max(ok), len(ok)]
    return out


async def test_threshold_with_window(store, demo):
    f = Filters(failed=True, include={"action_name": ["LOGON"]})
    evs = events(demo, f)
    expected = windows(evs, ["userhost"], 10, lambda n: n > 5)
    assert ("WS-EXT-4471",) in expected
    result = await run_plan(
        store, Plan(filters=f, group_by=["userhost"], threshold=Threshold(value=5, window_minutes=10))
    )
    assert result.columns == ["userhost", "count", "windows"]
    rows = sorted(expected.items(), key=lambda kv: kv[0])
    rows.sort(key=lambda kv: kv[1][0], reverse=True)
    assert result.rows == [[*k, *v] for k, v in rows]

    deletes = Filters(include={"action_name": ["DELETE"]})
    evs = events(demo, deletes)
    expected = windows(evs, ["dbusername"], 7, lambda n: n >= 30)
    result = await run_plan(
        store,
        Plan(
            filters=deletes,
            group_by=["dbusername"],
            threshold=Threshold(op="gte", value=30, window_minutes=7),
        ),
    )
    assert result.rows == [[*k, *v] for k, v in sorted(expected.items(), key=lambda kv: (-kv[1][0], kv[0]))]
    [overall] = windows(evs, [], 7, lambda n: n >= 30).values()
    assert await rows_of(
        store, filters=deletes, threshold=Threshold(op="gte", value=30, window_minutes=7)
    ) == [overall]
    assert await rows_of(store, filters=deletes, threshold=Threshold(value=10_000, window_minutes=7)) == []


async def test_having(store, demo, week):
    evs = events(demo, None, week)
    groups = group(evs, ["dbusername"])
    actions = {k: {e["action_name"] for e in g} for k, g in groups.items()}

    def expect(kind: str, values: set[str]) -> list[list[Any]]:
        if kind == "both":
            kept = [k for k in groups if values <= actions[k]]
        elif kind == "only":
            kept = [k for k in groups if actions[k] <= values]
        else:
            kept = [k for k in groups if not actions[k] & values]
        assert kept, (kind, values)
        return ranked({k: len(groups[k]) for k in kept})

    for kind, values in (
        ("both", {"SELECT", "DELETE"}),
        ("both", {"GRANT", "ALTER USER"}),
        ("only", {"SELECT", "LOGON", "LOGOFF"}),
        ("never", {"DELETE"}),
        ("never", {"GRANT", "ALTER USER"}),
    ):
        having = Having(kind=kind, values=sorted(values))
        assert await rows_of(store, group_by=["dbusername"], period=week, having=having) == expect(
            kind, values
        )

    never = Having(kind="never", values=["DELETE", "UPDATE"])
    kept = [k for k in groups if not actions[k] & {"DELETE", "UPDATE"}]
    hosts = await rows_of(
        store, measure="distinct", field="userhost", group_by=["dbusername"], having=never, period=week
    )
    assert hosts == ranked({k: len({e["userhost"] for e in groups[k]}) for k in kept})
    # Grouped by day: only the days kept are listed (no empty day).
    f = Filters(include={"dbusername": ["TPETIT"]})
    per_day = group(events(demo, f, week), ["day"])
    quiet = {k: len(g) for k, g in per_day.items() if not any(e["action_name"] == "DELETE" for e in g)}
    assert quiet and len(quiet) < len(per_day)
    rows = await rows_of(
        store, group_by=["day"], filters=f, period=week, having=Having(kind="never", values=["DELETE"])
    )
    assert rows == [[*k, n] for k, n in sorted(quiet.items())]

    codes = Having(kind="both", field="return_code", values=["0", 942])
    kept = [k for k, g in groups.items() if {0, 942} <= {e["return_code"] for e in g}]
    assert await rows_of(store, group_by=["dbusername"], having=codes, period=week) == ranked(
        {k: len(groups[k]) for k in kept}
    )


def sequence_events(evs: list[dict], first: set[str], then: set[str], within: int | None) -> list[dict]:
    same = ("object_schema", "object_name")
    starts: dict[tuple, list[datetime]] = defaultdict(list)
    for e in evs:
        key = tuple(e.get(f) for f in same)
        if e["action_name"] in first and None not in key:
            starts[key].append(e["event_timestamp"])
    out = []
    for e in evs:
        key = tuple(e.get(f) for f in same)
        if e["action_name"] not in then or None in key:
            continue
        before = [t for t in starts[key] if t < e["event_timestamp"]]
        if before and (within is None or e["event_timestamp"] - max(before) <= timedelta(minutes=within)):
            out.append(e)
    return out


async def test_sequence(store, demo):
    for first, then, within in (
        ({"SELECT"}, {"DELETE"}, 10),
        ({"SELECT"}, {"DELETE"}, None),
        ({"CREATE TABLE"}, {"DROP TABLE"}, 1440),
        ({"CREATE TABLE", "CREATE INDEX"}, {"DROP TABLE", "ALTER TABLE"}, None),
    ):
        if within == 1440:  # the demo trail ends now: widen the window until the day's trail holds a pair
            windows = (1440, 2880, 10080, 43200)
            within = next(w for w in windows if sequence_events(demo.events, first, then, w))
        seq = Sequence(first=sorted(first), then=sorted(then), within_minutes=within)
        found = sequence_events(demo.events, first, then, within)
        assert found, (first, then, within)
        assert await rows_of(store, sequence=seq) == [[len(found)]]
        expected = ranked({k: len(g) for k, g in group(found, ["dbusername"]).items()})
        assert await rows_of(store, sequence=seq, group_by=["dbusername"]) == expected
    seq = Sequence(first=["CREATE TABLE"], then=["DROP TABLE"])
    found = sequence_events(demo.events, {"CREATE TABLE"}, {"DROP TABLE"}, None)
    latest = sorted(found, key=lambda e: (e["event_timestamp"], e["_id"]), reverse=True)[:3]
    result = await run_plan(store, Plan(sequence=seq, detail=True, limit=3))
    assert result.rows == [[e.get(c) for c in EVENT_COLUMNS] for e in latest]
    assert result.total == len(found)
    # The same action first and then: an event follows the previous one, not itself.
    seq = Sequence(first=["DELETE"], then=["DELETE"], same=["dbusername", "object_name"], within_minutes=1)
    deletes = [e for e in demo.events if e["action_name"] == "DELETE"]
    last: dict[tuple, datetime] = {}
    n = 0
    for e in deletes:
        key = (e["dbusername"], e["object_name"])
        if key in last and e["event_timestamp"] - last[key] <= timedelta(minutes=1):
            n += 1
        last[key] = e["event_timestamp"]
    assert n >= 449  # the planted mass delete
    assert await rows_of(store, sequence=seq) == [[n]]


async def test_compare(store, demo, week):
    before = Period(start=week.start - timedelta(days=7), end=week.start)
    p1 = {k: len(g) for k, g in group(events(demo, None, week), ["userhost"]).items()}
    p2 = {k: len(g) for k, g in group(events(demo, None, before), ["userhost"]).items()}
    assert set(p1) - set(p2)  # hosts of the planted incidents are new this week
    keys = sorted(set(p1) | set(p2))
    keys.sort(key=lambda k: (p1.get(k, 0), p2.get(k, 0)), reverse=True)
    result = await run_plan(store, Plan(group_by=["userhost"], period=week, compare=before))
    assert result.columns == ["period", "userhost", "count"]
    assert result.rows == [["p1", *k, p1.get(k, 0)] for k in keys] + [["p2", *k, p2.get(k, 0)] for k in keys]
    assert result.total == 2 * len(keys)
    limited = await run_plan(store, Plan(group_by=["userhost"], period=week, compare=before, limit=4))
    assert limited.rows == [["p1", *k, p1.get(k, 0)] for k in keys[:4]] + [
        ["p2", *k, p2.get(k, 0)] for k in keys[:4]
    ]
    assert limited.total == result.total

    assert await rows_of(store, period=week, compare=before) == [
        ["p1", len(events(demo, None, week))],
        ["p2", len(events(demo, None, before))],
    ]
    hours = await rows_of(store, period=week, compare=before, group_by=["hour"], filters=Filters(failed=True))
    c1 = Counter(bucket(e, "hour") for e in events(demo, Filters(failed=True), week))
    c2 = Counter(bucket(e, "hour") for e in events(demo, Filters(failed=True), before))
    assert hours == [["p1", h, c1.get(h, 0)] for h in range(24)] + [
        ["p2", h, c2.get(h, 0)] for h in range(24)
    ]

    result = await run_plan(store, Plan(detail=True, period=week, compare=before, limit=2))
    assert [r[0] for r in result.rows] == ["p1", "p1", "p2", "p2"]
    assert result.total == len(events(demo, None, week)) + len(events(demo, None, before))


async def test_detail_events(store, demo, week):
    f = Filters(include={"dbusername": ["TPETIT"], "action_name": ["DELETE"]})
    evs = sorted(events(demo, f, week), key=lambda e: (e["event_timestamp"], e["_id"]))
    result = await run_plan(store, Plan(detail=True, filters=f, period=week, limit=5))
    assert result.columns == list(EVENT_COLUMNS)
    assert result.rows == [[e.get(c) for c in EVENT_COLUMNS] for e in evs[::-1][:5]]
    assert result.total == len(evs)
    oldest = await rows_of(store, detail=True, filters=f, period=week, order="oldest", limit=3)
    assert oldest == [[e.get(c) for c in EVENT_COLUMNS] for e in evs[:3]]
    default = await run_plan(store, Plan(detail=True, filters=f, period=week))
    assert len(default.rows) == min(50, len(evs)) and default.total == len(evs)
    nulls = await rows_of(store, detail=True, filters=Filters(include={"action_name": ["LOGON"]}), limit=1)
    assert nulls[0][EVENT_COLUMNS.index("object_name")] is None


async def test_detail_sessions(store, demo, week):
    sessions = sessions_of(events(demo, None, week))
    long = [(sid, s) for sid, s in sessions.items() if duration_ms(s) > 600_000]
    long.sort(key=lambda kv: (min(e["event_timestamp"] for e in kv[1]), kv[0]), reverse=True)
    result = await run_plan(
        store, Plan(measure="duration", detail=True, period=week, threshold=Threshold(value=600), limit=10)
    )
    assert result.columns == [
        "session_id", "dbusername", "userhost", "client_program_name", "start", "end", "duration_s", "events",
    ]  # fmt: skip
    assert result.total == len(long)
    assert result.rows == [
        [
            sid,
            s[0]["dbusername"],
            s[0]["userhost"],
            s[0]["client_program_name"],
            min(e["event_timestamp"] for e in s),
            max(e["event_timestamp"] for e in s),
            secs(duration_ms(s)),
            len(s),
        ]
        for sid, s in long[:10]
    ]
    longest = max(sessions.values(), key=len)
    cut = Period(start=week.start, end=longest[len(longest) // 2]["event_timestamp"])
    rows = await rows_of(store, measure="sessions", detail=True, session_state="open", period=cut, limit=500)
    assert longest[0]["session_id"] in [r[0] for r in rows]
    assert [r[4] for r in rows] == sorted((r[4] for r in rows), reverse=True)


async def test_plans_that_cannot_be_compiled():
    for kwargs in (
        {"measure": "first", "threshold": Threshold(value=1)},
        {"measure": "distinct", "field": "userhost", "threshold": Threshold(value=1, window_minutes=5)},
        {"measure": "events", "session_state": "open"},
        {"measure": "duration", "group_by": ["action_name"]},
        {"detail": True, "threshold": Threshold(value=3)},
        {"filters": Filters(include={"session_id": ["x1"]})},
    ):
        with pytest.raises(PlanError):
            compile_plan(Plan(**kwargs))


ODD_PLANS: list[dict[str, Any]] = [
    {},
    {"group_by": ["dbusername"]},
    {"group_by": ["action_name", "return_code"]},
    {"group_by": ["hour"]},
    {"group_by": ["day", "dbusername"]},
    {"group_by": ["week"]},
    {"group_by": ["month"], "order": "asc"},
    {"measure": "distinct", "field": "session_id", "group_by": ["weekday"]},
    {"measure": "sessions", "group_by": ["day"]},
    {"measure": "sessions", "group_by": ["object_name"]},
    {"measure": "duration", "group_by": ["dbusername"]},
    {"measure": "duration", "detail": True},
    {"measure": "sessions", "session_state": "open"},
    {"measure": "first", "group_by": ["dbusername"]},
    {"measure": "last"},
    {"measure": "coverage"},
    {
        "measure": "share",
        "share_of": Filters(categories=["temporary", "ddl"], sql_contains=["x"]),
        "group_by": ["userhost"],
    },
    {"measure": "share", "share_of": Filters(failed=True, hours=(22, 5), off_hours=True)},
    {"filters": Filters(hours=(22, 5))},
    {"filters": Filters(off_hours=False, categories=["no_where", "view"], exclude_categories=["dictionary"])},
    {"filters": Filters(failed=True, sql_contains=["select"])},
    {"threshold": Threshold(value=0, window_minutes=5), "group_by": ["dbusername"]},
    {"threshold": Threshold(op="lt", value=5), "group_by": ["hour"]},
    {"having": Having(kind="both", values=["SELECT", "x"]), "group_by": ["dbusername"]},
    {"having": Having(kind="never", values=["DELETE"]), "group_by": ["day"]},
    {"sequence": Sequence(first=["SELECT"], then=["DELETE", "x"], within_minutes=60)},
    {"sequence": Sequence(first=["SELECT"], then=["DELETE"], same=[])},
    {"detail": True},
    {"detail": True, "order": "oldest"},
    {"compare": Period(start=datetime(2025, 1, 1, tzinfo=UTC)), "group_by": ["dbusername"]},
    {"compare": Period(end=datetime(2025, 1, 1, tzinfo=UTC)), "group_by": ["hour"]},
    {"compare": Period(), "measure": "duration"},
    {
        "compare": Period(),
        "having": Having(kind="only", values=["SELECT"]),
        "group_by": ["dbusername", "hour"],
    },
    {"compare": Period(), "sequence": Sequence(first=["SELECT"], then=["DELETE"]), "detail": True},
]


async def test_strange_documents_do_not_break_anything(store, scratch_audit):
    at = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
    base = {
        "action_name": "SELECT",
        "return_code": 0,
        "dbusername": "ALICE",
        "session_id": 1,
        "userhost": "h",
    }
    obj = {"object_schema": "S", "object_name": "T"}
    docs = [
        {**base, **obj, "_id": "a1", "event_timestamp": at, "action_name": "LOGON"},
        {**base, **obj, "_id": "a2", "event_timestamp": at + timedelta(minutes=3)},
        {**base, **obj, "_id": "a3", "event_timestamp": at + timedelta(minutes=4), "action_name": "DELETE"},
        {"_id": "b1", "event_timestamp": "2025-03-04T10:00:00", "action_name": 42, "return_code": "abc",
         "dbusername": ["x", "y"], "session_id": "s", "sql_text": 7, "object_name": {"a": 1}},
        {**obj, "_id": "b2", "event_timestamp": 1741080000000, "action_name": "DELETE",
         "dbusername": {"n": 1}, "session_id": 1, "sql_text": None, "return_code": None},
        {"_id": "b3", "action_name": None, "userhost": 5, "session_id": None},
        {"_id": "b4", "event_timestamp": None, "action_name": "LOGOFF", "session_id": 2, "dbusername": 3.5},
        {"_id": "b5", "event_timestamp": at, "action_name": ["DELETE"], "dbusername": True, "session_id": 2.0,
         "userhost": None, "return_code": 1.5, "sql_text": "DELETE FROM X"},
    ]  # fmt: skip
    # Written by another tool before the store's validator was set (audit_shape), or bypassing it.
    await scratch_audit.insert_many(docs, bypass_document_validation=True)
    for kwargs in ODD_PLANS:
        result = await run_plan(store, Plan(**kwargs))
        assert result.query["collection"] == scratch_audit.name
        assert isinstance(result.rows, list), kwargs
    assert await rows_of(store) == [[len(docs)]]
    assert await rows_of(store, measure="coverage") == [[at, at + timedelta(minutes=4), len(docs)]]
    hours = dict(await rows_of(store, group_by=["hour"]))
    assert sum(hours.values()) == 4 and hours[at.astimezone(TZ).hour] == 4
    users = await rows_of(store, group_by=["dbusername"])
    assert users[0] == ["ALICE", 3] and len(users) == 5
    period = Period(start=at - timedelta(hours=1), end=at + timedelta(hours=1))
    actions = await rows_of(store, period=period, group_by=["action_name"])
    assert sorted(map(repr, actions)) == sorted(
        map(repr, [["DELETE", 1], ["LOGON", 1], ["SELECT", 1], [["DELETE"], 1]])
    )
