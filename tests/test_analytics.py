"""Analytics against the demo trail: every figure checked against the same figure computed in Python."""

import json
from collections import Counter, defaultdict
from datetime import timedelta

import pytest

import analytics
from analytics import CHANGE_ACTIONS, WEEKDAYS_FR
from config import settings
from models import AuditFilters

FIELDS = ("dbusername", "action_name", "object_schema", "userhost", "client_program_name", "return_code")


@pytest.fixture
def window(demo):
    return AuditFilters(start=demo.end - timedelta(days=7), end=demo.end)


def events_in(demo, f: AuditFilters) -> list[dict]:
    """The Python version of the filters (the subset the tests use)."""
    out = []
    for e in demo.events:
        if f.start and e["event_timestamp"] < f.start:
            continue
        if f.end and e["event_timestamp"] >= f.end:
            continue
        if any(getattr(f, name) and e.get(name) not in getattr(f, name) for name in analytics.DIMENSIONS):
            continue
        if f.failed is not None and (e["return_code"] != 0) != f.failed:
            continue
        if any(w.lower() not in (e.get("sql_text") or "").lower() for w in f.sql_text_contains):
            continue
        out.append(e)
    return out


def local(e):
    return e["event_timestamp"].astimezone(settings.tz)


def is_off_hours(e) -> bool:
    t = local(e)
    return (
        t.hour < settings.BUSINESS_HOURS_START or t.hour >= settings.BUSINESS_HOURS_END or t.isoweekday() >= 6
    )


def assert_top(rows, counter: Counter, limit: int):
    """Rows are the `limit` most frequent values with their exact counts, most frequent first."""
    assert len(rows) == min(limit, len(counter))
    for value, n in rows:
        assert counter[value] == n, value
    counts = [n for _, n in rows]
    assert counts == sorted(counts, reverse=True)
    listed = {v for v, _ in rows}
    if len(listed) < len(counter):
        assert min(counts) >= max(n for v, n in counter.items() if v not in listed)


async def test_count_events(store, demo, window):
    for f in (
        window,
        window.model_copy(update={"dbusername": ["TPETIT"]}),
        window.model_copy(update={"failed": True}),
        window.model_copy(update={"userhost": ["pc-tpetit", "appsrv01"], "action_name": ["DELETE"]}),
        window.model_copy(update={"sql_text_contains": ["orders", "where"]}),
        AuditFilters(),
    ):
        result = await analytics.count_events(store, f)
        assert result.rows == [[len(events_in(demo, f))]]
        assert result.total == len(events_in(demo, f))
        assert result.query["collection"] == "actions_audit"


async def test_count_by_each_field(store, demo, window):
    matching = events_in(demo, window)
    for field in FIELDS:
        result = await analytics.count_by(store, window, field, limit=5)
        assert result.columns == [field, "count"]
        assert result.total == len(matching)
        counter = Counter(e[field] for e in matching if e[field] is not None)
        assert_top(result.rows, counter, 5)


async def test_count_by_with_filters(store, demo, window):
    f = window.model_copy(update={"object_schema": ["SALES"], "failed": False})
    result = await analytics.count_by(store, f, "dbusername", limit=50)
    matching = events_in(demo, f)
    assert result.total == len(matching)
    assert dict(result.rows) == Counter(e["dbusername"] for e in matching)


async def test_count_by_time_bucket_delegates(store, demo, window):
    result = await analytics.count_by(store, window, "weekday")
    assert result.columns == ["weekday", "count"]


async def test_unknown_field_is_refused(store, window):
    with pytest.raises(analytics.AnalyticsError, match="Champ inconnu"):
        await analytics.count_by(store, window, "password")


async def test_distinct_values(store, demo, window):
    matching = events_in(demo, window)
    for field in ("dbusername", "object_name", "os_username"):
        result = await analytics.distinct_values(store, window, field, limit=3)
        counter = Counter(e[field] for e in matching if e[field] is not None)
        assert result.total == len(counter)
        assert_top(result.rows, counter, 3)


async def test_time_distribution(store, demo, window):
    matching = events_in(demo, window)
    expected = {
        "hour": Counter(local(e).hour for e in matching),
        "weekday": Counter(WEEKDAYS_FR[local(e).weekday()] for e in matching),
        "day": Counter(local(e).date().isoformat() for e in matching),
        "week": Counter("{}-W{:02d}".format(*local(e).isocalendar()[:2]) for e in matching),
    }
    for bucket, counter in expected.items():
        result = await analytics.time_distribution(store, window, bucket)
        assert result.total == len(matching)
        got = {label: n for label, n in result.rows if n}
        assert got == dict(counter), bucket
    hours = await analytics.time_distribution(store, window, "hour")
    assert [h for h, _ in hours.rows] == list(range(24))


async def test_statistics_one_pass(store, demo, window):
    f = window.model_copy(update={"dbusername": ["HR_APP", "SALES_APP", "TPETIT"]})
    matching = events_in(demo, f)
    out = await analytics.statistics(store, f, fields=FIELDS, buckets=("hour", "day"), limit=4)
    assert out["total"] == len(matching)
    assert len(out["query"]["pipeline"]) == 3  # two $match stages and one $facet
    for field in FIELDS:
        counter = Counter(e[field] for e in matching if e[field] is not None)
        assert out["fields"][field]["distinct"] == len(counter)
        assert_top(out["fields"][field]["top"], counter, 4)
    assert {h: n for h, n in out["buckets"]["hour"] if n} == Counter(local(e).hour for e in matching)
    assert {d: n for d, n in out["buckets"]["day"] if n} == Counter(
        local(e).date().isoformat() for e in matching
    )


async def test_user_activity(store, demo, window):
    matching = events_in(demo, window)
    result = await analytics.user_activity(store, window, limit=5)
    per_user = defaultdict(list)
    for e in matching:
        per_user[e["dbusername"]].append(e)
    assert result.total == len(per_user)
    assert_top([[r[0], r[1]] for r in result.rows], Counter({u: len(es) for u, es in per_user.items()}), 5)
    for row in result.rows:
        item = dict(zip(result.columns, row, strict=True))
        es = per_user[item["dbusername"]]
        assert item["failed"] == sum(e["return_code"] != 0 for e in es)
        assert item["actions"] == Counter(e["action_name"] for e in es)
        assert item["distinct_objects"] == len(
            {(e["object_schema"], e["object_name"]) for e in es if e["object_name"]}
        )
        assert item["first_activity"] == min(e["event_timestamp"] for e in es)
        assert item["last_activity"] == max(e["event_timestamp"] for e in es)
        assert item["hosts"] == sorted({e["userhost"] for e in es})
        assert item["programs"] == sorted({e["client_program_name"] for e in es})
        assert item["first_activity"].tzinfo is not None


async def test_top_objects(store, demo, window):
    f = window.model_copy(update={"object_schema": ["SALES"]})
    matching = [e for e in events_in(demo, f) if e["object_name"]]
    result = await analytics.top_objects(store, f, limit=3)
    counter = Counter((e["object_schema"], e["object_name"]) for e in matching)
    assert result.total == len(counter)
    assert_top([[(r[0], r[1]), r[2]] for r in result.rows], counter, 3)
    for schema, name, _, users, last in result.rows:
        on_it = [e for e in matching if (e["object_schema"], e["object_name"]) == (schema, name)]
        by_user = Counter(e["dbusername"] for e in on_it)
        assert set(users) == set(by_user)
        assert by_user[users[0]] == max(by_user.values())
        assert last == max(e["event_timestamp"] for e in on_it)


async def test_object_changes(store, demo, window):
    matching = [e for e in events_in(demo, window) if e["action_name"] in CHANGE_ACTIONS]
    result = await analytics.object_changes(store, window, limit=10)
    assert result.total == len(matching) > 0
    latest = sorted(matching, key=lambda e: e["event_timestamp"], reverse=True)[:10]
    assert [r[0] for r in result.rows] == [e["event_timestamp"] for e in latest]
    assert {"DROP TABLE", "TRUNCATE TABLE"} <= {e["action_name"] for e in matching}
    dropped = await analytics.object_changes(store, window.model_copy(update={"action_name": ["DROP TABLE"]}))
    assert dropped.total == sum(e["action_name"] == "DROP TABLE" for e in matching)


async def test_sessions(store, demo, window):
    matching = events_in(demo, window)
    by_session = defaultdict(list)
    for e in matching:
        by_session[e["session_id"]].append(e)
    result = await analytics.sessions(store, window, limit=5, sort="-statements")
    assert result.total == len(by_session)
    statements = Counter(
        {s: sum(e["action_name"] not in ("LOGON", "LOGOFF") for e in es) for s, es in by_session.items()}
    )
    assert result.rows[0][8] == max(statements.values())
    for row in result.rows:
        item = dict(zip(result.columns, row, strict=True))
        es = by_session[item["session_id"]]
        assert item["statements"] == statements[item["session_id"]]
        assert item["events"] == len(es)
        assert item["dbusername"] == es[0]["dbusername"]
        assert item["start"] == min(e["event_timestamp"] for e in es)
        assert item["end"] == max(e["event_timestamp"] for e in es)
    latest = await analytics.sessions(store, window, limit=3)
    starts = sorted((min(e["event_timestamp"] for e in es) for es in by_session.values()), reverse=True)
    assert [r[5] for r in latest.rows] == starts[:3]


async def test_off_hours(store, demo, window):
    matching = [e for e in events_in(demo, window) if is_off_hours(e)]
    result = await analytics.off_hours(store, window, limit=50)
    assert result.total == len(matching)
    per_user = defaultdict(list)
    for e in matching:
        per_user[e["dbusername"]].append(e)
    assert {r[0]: r[1] for r in result.rows} == {u: len(es) for u, es in per_user.items()}
    for row in result.rows:
        item = dict(zip(result.columns, row, strict=True))
        es = per_user[item["dbusername"]]
        assert item["weekend_events"] == sum(local(e).isoweekday() >= 6 for e in es)
        assert item["days"] == len({local(e).date() for e in es})
        assert item["first"] == min(e["event_timestamp"] for e in es)
    assert result.rows[0][0] in ("ETL_BATCH", "MONITOR")


async def test_search_pages_and_total(store, demo, window):
    f = window.model_copy(update={"dbusername": ["TPETIT"], "action_name": ["DELETE"]})
    matching = sorted(events_in(demo, f), key=lambda e: (e["event_timestamp"], e["_id"]), reverse=True)
    page2 = await analytics.search_events(store, f, limit=20, page=2)
    assert page2.total == len(matching) > 40
    assert [r[0] for r in page2.rows] == [e["_id"] for e in matching[20:40]]
    assert page2.columns[:2] == ["id", "event_timestamp"]
    by_user = await analytics.search_events(store, window, sort="dbusername", limit=5)
    assert [r[5] for r in by_user.rows] == sorted(e["dbusername"] for e in events_in(demo, window))[:5]
    words = window.model_copy(update={"sql_text_contains": ["sales.orders", "delete"]})
    found = await analytics.search_events(store, words, limit=500)
    assert found.total == len(events_in(demo, words)) == len(found.rows)
    with pytest.raises(analytics.AnalyticsError):
        await analytics.search_events(store, window, sort="-password")


def _plan_stages(explain: dict) -> str:
    return json.dumps(explain, default=str)


async def _explain(store, pipeline) -> str:
    out = await store.db.command(
        "explain",
        {"aggregate": store.audit_name, "pipeline": pipeline, "cursor": {}},
        verbosity="queryPlanner",
    )
    return _plan_stages(out)


async def test_time_bounded_queries_use_an_index(store, demo, window):
    cases = [
        (await analytics.search_events(store, window)).query,
        (await analytics.search_events(store, window.model_copy(update={"userhost": ["pc-tpetit"]}))).query,
        (await analytics.count_by(store, window, "dbusername")).query,
        (await analytics.time_distribution(store, window, "hour")).query,
        (await analytics.user_activity(store, window.model_copy(update={"failed": True}))).query,
        (await analytics.sessions(store, window)).query,
        (await analytics.off_hours(store, window)).query,
        (await analytics.top_objects(store, window)).query,
        (await analytics.object_changes(store, window)).query,
        {"pipeline": (await analytics.statistics(store, window))["query"]["pipeline"]},
    ]
    for query in cases:
        plan = await _explain(store, query["pipeline"])
        assert "IXSCAN" in plan and "COLLSCAN" not in plan, query["pipeline"][0]
    by_user = await analytics.count_by(
        store, window.model_copy(update={"dbusername": ["SCOTT"]}), "action_name"
    )
    assert "dbusername_1_event_timestamp_-1" in await _explain(store, by_user.query["pipeline"])


def test_match_stages_split_what_one_index_serves():
    f = AuditFilters(dbusername=["A"], action_name=["SELECT"], userhost=["h"], failed=True)
    first, rest = analytics.match_stages(f)
    assert first == {"$match": {"dbusername": "A"}}
    assert rest == {"$match": {"action_name": "SELECT", "userhost": "h", "return_code": {"$ne": 0}}}
    [only] = analytics.match_stages(AuditFilters(session_id=[42], dbusername=["A"]))[:1]
    assert only == {"$match": {"session_id": 42}}
