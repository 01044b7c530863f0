"""Rollups: maintained by the insert path without counting duplicates, rebuilt and checked, and giving
the same figures as the events for every plan kind they can serve."""

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import rollups
from config import settings
from demo_data import generate
from ingest import _insert, insert_documents
from plan import Filters, Period, Plan, Threshold
from plan_runner import run_plan
from rollup_compiler import compile_rollup_plan

END = datetime(2025, 3, 20, 16, 37, tzinfo=UTC)  # a Thursday; Paris is UTC+1 then


def local_midnight(days_before: int) -> datetime:
    day = (END.astimezone(settings.tz) - timedelta(days=days_before)).date()
    return datetime(day.year, day.month, day.day, tzinfo=settings.tz).astimezone(UTC)


YESTERDAY = Period(start=local_midnight(1), end=local_midnight(0), label="hier")
WEEK = Period(start=local_midnight(7), end=local_midnight(0), label="7 jours")
MORNING = Period(start=local_midnight(2) + timedelta(hours=7), end=local_midnight(2) + timedelta(hours=11))


async def import_with_duplicates(store, end: datetime) -> list[dict]:
    """3,000 demo events over 30 days, imported, re-imported whole, and re-imported half with 500 new."""
    events = generate(n_events=3500, days=30, seed=11, end=end)
    first, extra = events[:3000], events[3000:]
    assert await insert_documents(store, [dict(e) for e in first], batch_size=700) == (3000, 0)
    assert await insert_documents(store, [dict(e) for e in first], batch_size=900) == (0, 3000)
    mixed = [dict(e) for e in first[1000:2000]] + [dict(e) for e in extra]
    assert await insert_documents(store, mixed, batch_size=400) == (500, 1000)
    return events


@pytest.fixture
async def trail(scratch_audit, store) -> list[dict]:
    return await import_with_duplicates(store, END)


def user(events: list[dict]) -> str:
    return max({e["dbusername"] for e in events}, key=lambda u: sum(e["dbusername"] == u for e in events))


def host(events: list[dict]) -> str:
    return max({e["userhost"] for e in events}, key=lambda h: sum(e["userhost"] == h for e in events))


def plans(events: list[dict]) -> list[Plan]:
    u = user(events)
    return [
        Plan(),
        Plan(group_by=["dbusername"], limit=5),
        Plan(group_by=["action_name"]),
        Plan(group_by=["action_name"], filters=Filters(failed=True), period=YESTERDAY),
        Plan(filters=Filters(include={"action_name": ["LOGON"]}, failed=True), period=YESTERDAY),
        Plan(group_by=["hour"]),
        Plan(group_by=["hour"], filters=Filters(include={"dbusername": [u]}), period=WEEK),
        Plan(group_by=["weekday"]),
        Plan(group_by=["day"], filters=Filters(include={"dbusername": [u]}), period=WEEK),
        Plan(group_by=["week"]),
        Plan(group_by=["month", "action_name"]),
        Plan(group_by=["dbusername", "action_name"], limit=10),
        Plan(group_by=["day", "dbusername"], period=WEEK),
        Plan(group_by=["dbusername"], filters=Filters(off_hours=True)),
        Plan(group_by=["action_name"], filters=Filters(off_hours=False), period=MORNING),
        Plan(measure="distinct", field="userhost", group_by=["dbusername"]),
        Plan(measure="distinct", field="dbusername", period=WEEK),
        Plan(measure="share", share_of=Filters(failed=True), group_by=["dbusername"]),
        Plan(measure="share", share_of=Filters(categories=["dml"]), period=WEEK),
        Plan(group_by=["dbusername"], filters=Filters(categories=["dml"])),
        Plan(group_by=["object_schema"], filters=Filters(exclude={"action_name": ["LOGON", "LOGOFF"]})),
        Plan(group_by=["object_name"], filters=Filters(include={"object_schema": ["HR", "SALES"]})),
        Plan(group_by=["dbusername"], threshold=Threshold(op="gt", value=50)),
        Plan(group_by=["userhost"], order="asc", limit=3),
        Plan(group_by=["client_program_name"], filters=Filters(include={"dbusername": [u]})),
        Plan(group_by=["action_name"], period=MORNING),
        Plan(group_by=["return_code"], period=YESTERDAY),
        # hour windows on hosts and programs: the anomaly detectors' hour set holds them
        Plan(filters=Filters(hours=(20, 6), include={"userhost": [host(events)]})),
        Plan(filters=Filters(hours=(9, 12)), group_by=["client_program_name"]),
        Plan(group_by=["hour"], filters=Filters(include={"userhost": [host(events)]})),
    ]


async def test_duplicates_are_never_counted_and_the_check_agrees(trail, store) -> None:
    assert await store.audit.count_documents({}) == 3500
    assert await rollups.counted(store) == 3500
    assert await rollups.usable(store)
    report = await rollups.check(store)
    assert report.ok, report.mismatches
    sessions = store[rollups.sessions_name(store.audit_name)]
    assert await sessions.count_documents({}) == len({e["session_id"] for e in trail})


async def test_rollups_and_events_give_the_same_figures(trail, store, monkeypatch) -> None:
    import rollup_compiler

    monkeypatch.setattr(rollup_compiler, "ROLLUP_MIN_SPAN", timedelta(0))  # short periods too, here
    filled = 0
    for plan in plans(trail):
        assert compile_rollup_plan(plan) is not None, plan
        fast = await run_plan(store, plan)
        assert fast.query["collection"] == rollups.rollups_name(store.audit_name), plan
        slow = await run_plan(store, plan, use_rollups=False)
        assert slow.query["collection"] == store.audit_name
        assert (fast.columns, fast.rows, fast.total) == (slow.columns, slow.rows, slow.total), plan
        filled += bool(fast.rows and any(r[-1] for r in fast.rows))
    assert filled >= len(plans(trail)) - 3  # the comparisons are on figures, not on empty tables


def test_plans_the_rollups_cannot_hold_read_the_events() -> None:
    odd = Period(start=END - timedelta(minutes=90), end=END)
    for plan in [
        Plan(filters=Filters(hours=(20, 6), include={"object_schema": ["x"]})),  # no hourly schema rollup
        Plan(filters=Filters(hours=(9, 12)), group_by=["os_username"]),  # nor OS user
        Plan(period=odd),  # not on bucket bounds
        Plan(filters=Filters(sql_contains=["salary"])),
        Plan(group_by=["object_name", "dbusername"]),  # no such pair
        Plan(measure="sessions", group_by=["dbusername"]),
        Plan(measure="first", group_by=["dbusername"]),  # a timestamp: the rollups hold buckets
        Plan(measure="last", filters=Filters(hours=(9, 12))),
        Plan(detail=True),
        Plan(group_by=["hour"], filters=Filters(include={"terminal": ["x"]})),  # no hourly terminal rollup
        Plan(threshold=Threshold(value=5, window_minutes=10)),
        Plan(compare=YESTERDAY, period=WEEK),
    ]:
        assert compile_rollup_plan(plan) is None, plan


async def test_a_write_around_the_import_path_falls_back_then_rebuild_restores(trail, store) -> None:
    stray = {**trail[0], "_id": "stray", "dbusername": "STRAY"}
    await store.audit.insert_one(stray)
    await store.bump_audit_version()  # as any writer's change is noticed: at the next version
    assert not await rollups.usable(store)
    plan = Plan(group_by=["dbusername"])
    result = await run_plan(store, plan)
    assert result.query["collection"] == store.audit_name
    assert ["STRAY", 1] in result.rows
    assert await rollups.rebuild(store) == 3501
    assert await rollups.usable(store)
    report = await rollups.check(store)
    assert report.ok, report.mismatches
    fast = await run_plan(store, plan)
    assert fast.query["collection"].endswith("_rollups")
    assert fast.rows == result.rows
    # Imports after a rebuild keep adding to the same keys.
    more = generate(n_events=200, days=2, seed=12, end=END)
    await insert_documents(store, more)
    report = await rollups.check(store)
    assert report.ok, report.mismatches
    for p in plans(trail)[:6]:
        a, b = await run_plan(store, p), await run_plan(store, p, use_rollups=False)
        assert (a.rows, a.total) == (b.rows, b.total), p


async def test_search_total_from_rollups_or_counted_up_to_a_bound(trail, store, monkeypatch) -> None:
    import analytics
    from models import AuditFilters

    monkeypatch.setattr(analytics, "SEARCH_COUNT_BOUND", 100)
    page, exact = await analytics.search_page(store, AuditFilters(), limit=10)
    assert (page.total, exact, len(page.rows)) == (3500, True, 10)  # from the rollups, past the bound
    newest = max(e["event_timestamp"] for e in trail)
    assert page.rows[0][1] == newest
    words = AuditFilters(sql_text_contains=["e"])  # the rollups hold no SQL text: counted, bounded
    page, exact = await analytics.search_page(store, words, limit=10)
    assert (page.total, exact) == (100, False)


# --------------------------------------------------------------------------- every plan kind, both ways

# The 30 days before this end hold the change to summer time (Sunday 30 March 2025, 02:00 -> 03:00 in
# Paris): local hours are read from UTC hour buckets on both sides of it.
DST_END = datetime(2025, 4, 9, 14, 5, tzinfo=UTC)


def local_midnight_before(end: datetime, days_before: int) -> datetime:
    day = (end.astimezone(settings.tz) - timedelta(days=days_before)).date()
    return datetime(day.year, day.month, day.day, tzinfo=settings.tz).astimezone(UTC)


def plan_matrix(events: list[dict], end: datetime) -> list[Plan]:
    """Filters x groupings x measures x periods, many of which the rollups hold, some not."""
    u = user(events)
    today = local_midnight_before(end, 0)
    week = Period(start=local_midnight_before(end, 7), end=today)
    # 14 days: the DST trail's change of offset falls inside
    fortnight = Period(start=local_midnight_before(end, 14), end=today)
    hours_only = Period(
        start=local_midnight_before(end, 7) + timedelta(hours=5), end=today - timedelta(hours=3)
    )
    filters = [
        Filters(),
        Filters(include={"dbusername": [u]}),
        Filters(failed=True),
        Filters(hours=(9, 12)),
        Filters(hours=(9, 12), include={"dbusername": [u]}),  # the plan that once gave 0 (f17)
        Filters(hours=(20, 6)),  # wraps past midnight
        Filters(hours=(20, 6), include={"action_name": ["LOGON"]}, failed=True),
        Filters(hours=(0, 24), exclude={"action_name": ["SELECT"]}),
        Filters(hours=(7, 9), categories=["dml"]),
        Filters(off_hours=True),
        Filters(off_hours=False, include={"dbusername": [u]}),
        Filters(off_hours=True, hours=(6, 10)),
        Filters(include={"return_code": ["1017"]}),
    ]
    groupings: list[list[str]] = [[], ["hour"], ["day"], ["dbusername"], ["action_name"]]
    out: list[Plan] = []
    for i, f in enumerate(filters):
        out += [Plan(filters=f, group_by=g) for g in groupings]
        out.append(Plan(filters=f, period=fortnight, group_by=["hour"]))
        out.append(Plan(filters=f, period=hours_only, group_by=["dbusername"], limit=4))
        out.append(Plan(measure="distinct", field="dbusername", filters=f, group_by=["hour"]))
        if i in (0, 4, 5, 10):  # the other groupings and measures, on a few of the filters
            out.append(Plan(filters=f, group_by=["weekday"]))
            out.append(Plan(filters=f, period=week, group_by=["day", "dbusername"]))
            out.append(Plan(filters=f, group_by=["week"], order="asc"))
            out.append(Plan(filters=f, group_by=["month", "action_name"]))
            out.append(Plan(measure="distinct", field="action_name", filters=f, period=week))
            out.append(Plan(measure="distinct", field="userhost", filters=f, group_by=["dbusername"]))
    for part in (Filters(failed=True), Filters(hours=(20, 6)), Filters(off_hours=True, failed=True)):
        out.append(Plan(measure="share", share_of=part, group_by=["dbusername"]))
        out.append(Plan(measure="share", share_of=part, filters=Filters(hours=(9, 18)), group_by=["hour"]))
        out.append(Plan(measure="share", share_of=part, period=fortnight, group_by=["day"]))
    return out


def hour_bound(plan: Plan) -> bool:
    """Whether the plan reads local hours (the part the change of offset could break)."""
    share = plan.share_of or Filters()
    return bool(
        plan.filters.hours or share.hours or plan.filters.off_hours is not None or "hour" in plan.group_by
    )


# Hour windows, off hours and their groupings: the rollups must hold every one of these.
MUST_HOLD = [
    Plan(filters=Filters(hours=(9, 12), include={"dbusername": ["JDUPONT"]})),
    Plan(filters=Filters(hours=(20, 6)), group_by=["hour"]),
    Plan(filters=Filters(hours=(20, 6)), group_by=["day"]),
    Plan(filters=Filters(hours=(9, 12)), group_by=["dbusername"]),
    Plan(filters=Filters(hours=(9, 12)), group_by=["action_name"]),
    Plan(filters=Filters(off_hours=True, include={"dbusername": ["JDUPONT"]}), group_by=["hour"]),
    Plan(filters=Filters(off_hours=True), group_by=["weekday"]),
    Plan(measure="share", share_of=Filters(hours=(20, 6)), group_by=["dbusername"]),
    Plan(measure="distinct", field="dbusername", filters=Filters(hours=(20, 6))),
]


def test_hour_windows_and_off_hours_are_held_by_the_rollups() -> None:
    for plan in MUST_HOLD:
        assert compile_rollup_plan(plan) is not None, plan
    # the user of an hour window is matched on a set that holds users (it once ran on "all")
    grain, pipeline = compile_rollup_plan(MUST_HOLD[0]) or ("", [])
    assert grain == "h"
    assert pipeline[0]["$match"] == {"g": "h", "r": "dbusername"}  # the index's fields alone
    assert pipeline[1]["$match"]["dbusername"] == "JDUPONT"


@pytest.mark.parametrize("end", [END, DST_END], ids=["winter", "dst-change"])
async def test_every_plan_the_rollups_hold_gives_the_events_figures(scratch_audit, store, monkeypatch, end):
    """On the DST trail, only the plans that read local hours (the rest is the same as in winter)."""
    import rollup_compiler

    monkeypatch.setattr(rollup_compiler, "ROLLUP_MIN_SPAN", timedelta(0))
    events = await import_with_duplicates(store, end)
    matrix = [p for p in plan_matrix(events, end) if end == END or hour_bound(p)]
    held = [p for p in matrix if compile_rollup_plan(p) is not None]
    filled = 0
    for plan in held:
        fast = await run_plan(store, plan)
        assert fast.query["collection"] == rollups.rollups_name(store.audit_name), plan
        slow = await run_plan(store, plan, use_rollups=False)
        assert slow.query["collection"] == store.audit_name
        assert (fast.columns, fast.rows, fast.total) == (slow.columns, slow.rows, slow.total), plan
        filled += bool(fast.rows and any(r[-1] for r in fast.rows))
    assert sum(1 for p in held if p.filters.hours) >= 40
    assert len(held) >= 0.8 * len(matrix) and filled >= 0.8 * len(held), (len(matrix), len(held), filled)


def session_plans(events: list[dict], end: datetime) -> list[Plan]:
    """Every per-session plan kind (count, durations, longest sessions, groupings by session fields and
    time buckets, open sessions, thresholds, listings) x filters on session fields x periods, some of
    whose bounds fall inside sessions."""
    u = user(events)
    host = events[0]["userhost"]
    program = events[0]["client_program_name"]
    today = local_midnight_before(end, 0)
    week = Period(start=local_midnight_before(end, 7), end=today)
    # bounds at 7 h and 11 h, in the middle of the working day: sessions cross them
    morning = Period(
        start=local_midnight_before(end, 2) + timedelta(hours=7), end=today - timedelta(hours=13)
    )
    since = Period(start=local_midnight_before(end, 10) + timedelta(hours=10))
    until = Period(end=local_midnight_before(end, 20) + timedelta(hours=15))
    # bounds in the middle of two sessions (one a third of the way, one two thirds): they cross them
    spans: dict[int, list[datetime]] = {}
    for e in events:
        spans.setdefault(e["session_id"], []).append(e["event_timestamp"])
    long = sorted((min(v), max(v)) for v in spans.values() if max(v) - min(v) > timedelta(minutes=5))
    (a0, a1), (b0, b1) = long[len(long) // 3], long[2 * len(long) // 3]
    cut = Period(start=a0 + (a1 - a0) / 2, end=b0 + (b1 - b0) / 2)
    filters = [
        Filters(),
        Filters(include={"dbusername": [u]}),
        Filters(exclude={"dbusername": [u]}, include={"userhost": [host]}),
        Filters(include={"client_program_name": [program], "os_username": [events[0]["os_username"]]}),
    ]
    out: list[Plan] = []
    for f in filters:
        for period in (None, week, morning, since, until, cut):
            out += [
                Plan(measure="sessions", filters=f, period=period),
                Plan(measure="duration", filters=f, period=period),
                Plan(measure="duration", group_by=["session_id"], limit=10, filters=f, period=period),
                Plan(measure="sessions", group_by=["dbusername"], filters=f, period=period),
                Plan(
                    measure="duration", group_by=["userhost"], order="asc", limit=3, filters=f, period=period
                ),
                Plan(measure="sessions", detail=True, filters=f, period=period),
            ]
        out += [
            Plan(measure="sessions", group_by=["day"], filters=f, period=week),
            Plan(measure="duration", group_by=["hour"], filters=f),
            Plan(measure="sessions", group_by=["weekday", "client_program_name"], filters=f),
            Plan(measure="sessions", group_by=["week"], filters=f, period=since),
            Plan(measure="duration", group_by=["month", "os_username"], filters=f),
            Plan(measure="sessions", session_state="open", filters=f, period=cut),
            Plan(measure="duration", session_state="open", group_by=["dbusername"], filters=f),
            Plan(measure="duration", threshold=Threshold(op="gt", value=600), filters=f, period=week),
            Plan(
                measure="sessions", group_by=["dbusername"], threshold=Threshold(op="gte", value=5), filters=f
            ),
            Plan(measure="duration", detail=True, threshold=Threshold(op="gt", value=60), filters=f),
            Plan(measure="duration", detail=True, order="oldest", limit=7, filters=f, period=cut),
            Plan(measure="sessions", group_by=["day", "dbusername"], filters=f, period=cut),
        ]
    return out


# Session plans the session documents cannot answer: they read the events.
SESSIONS_FROM_EVENTS = [
    Plan(measure="sessions", group_by=["action_name"]),  # an event field: distinct session ids
    Plan(measure="sessions", filters=Filters(failed=True)),
    Plan(measure="duration", filters=Filters(include={"action_name": ["SELECT"]})),
    Plan(measure="duration", filters=Filters(hours=(9, 12))),
    Plan(measure="sessions", filters=Filters(off_hours=True)),
    Plan(measure="sessions", group_by=["terminal"]),  # not held by a session document
    Plan(measure="sessions", compare=YESTERDAY, period=WEEK),
]


def test_session_plans_the_session_documents_cannot_hold_read_the_events() -> None:
    from rollup_compiler import session_doc_filters

    for plan in SESSIONS_FROM_EVENTS:
        assert session_doc_filters(plan) is None, plan
    assert session_doc_filters(Plan(measure="duration", group_by=["session_id"], limit=10)) == {}


@pytest.mark.parametrize("end", [END, DST_END], ids=["winter", "dst-change"])
async def test_every_session_plan_gives_the_events_figures(scratch_audit, store, monkeypatch, end) -> None:
    import rollup_compiler

    monkeypatch.setattr(rollup_compiler, "ROLLUP_MIN_SPAN", timedelta(0))
    events = await import_with_duplicates(store, end)
    assert (await rollups.check(store)).ok
    matrix = session_plans(events, end)
    filled = crossed = floored = 0
    for plan in matrix:
        fast = await run_plan(store, plan)
        assert fast.query["collection"] == rollups.sessions_name(store.audit_name), plan
        slow = await run_plan(store, plan, use_rollups=False)
        assert slow.query["collection"] == store.audit_name
        assert (fast.columns, fast.rows, fast.total) == (slow.columns, slow.rows, slow.total), plan
        filled += bool(fast.rows and any(r[-1] for r in fast.rows))
        crossed += any("$unionWith" in stage for stage in fast.query["pipeline"])
        floored += "dur" in fast.query["pipeline"][0].get("$match", {})  # the longest, from the index
    for plan in SESSIONS_FROM_EVENTS:
        assert (await run_plan(store, plan)).query["collection"] == store.audit_name, plan
    # the comparisons are on figures, and sessions crossing a period's bound are recomputed (`crossed`:
    # plans where some of them hold events that match, and are added to the session documents)
    assert filled >= 0.6 * len(matrix) and crossed >= 15, (len(matrix), filled, crossed)
    assert floored >= 8, floored  # the others match fewer than 10 sessions


async def test_rollups_are_trusted_with_a_batch_in_flight_never_beyond(trail, store) -> None:
    """A batch inserted but not yet rolled up (its lease taken): the rollups answer, lagging by that
    batch and never counting an event twice; an event beyond the leases, or an expired lease, sends
    the questions back to the events."""
    meta = await store.meta.find_one({"_id": f"rollups:{store.audit_name}"})
    assert not meta.get("inflight")  # every batch of the fixture's imports ended its lease
    batch = generate(n_events=200, days=2, seed=12, end=END)
    n = len(batch)
    lease = await rollups.begin(store, len(batch))
    await store.audit.insert_many([dict(e) for e in batch])  # inserted, rollups not yet written
    await rollups.forget(store)
    assert await rollups.usable(store)
    fast, slow = await run_plan(store, Plan()), await run_plan(store, Plan(), use_rollups=False)
    assert fast.query["collection"] == rollups.rollups_name(store.audit_name)
    assert (fast.rows, slow.rows) == ([[3500]], [[3500 + n]])  # lags by the batch in flight, at most
    stray = {**generate(n_events=1, days=1, seed=13, end=END)[0]}
    await store.audit.insert_one(stray)  # a write around the import path: beyond the lease
    await rollups.forget(store)
    assert not await rollups.usable(store)
    assert (await run_plan(store, Plan())).query["collection"] == store.audit_name
    await store.audit.delete_one({"_id": stray["_id"]})
    await rollups.apply(store, [dict(e) for e in batch], lease=lease)  # the batch's rollups, lease ended
    assert not await rollups.usable(store)  # a false verdict stands until the next recount
    assert await rollups.check_trust(store) and await rollups.usable(store)
    meta = await store.meta.find_one({"_id": f"rollups:{store.audit_name}"})
    assert not meta.get("inflight")
    assert (await run_plan(store, Plan())).rows == [[3500 + n]]
    # a crashed batch: its lease expires, then its events are no longer covered
    more = generate(n_events=50, days=1, seed=14, end=END)
    await rollups.begin(store, len(more), seconds=-1)
    await store.audit.insert_many([dict(e) for e in more])
    await rollups.forget(store)
    assert not await rollups.usable(store)
    await rollups.rebuild(store)
    assert await rollups.usable(store) and (await run_plan(store, Plan())).rows == [[3500 + n + len(more)]]


async def test_search_pages_read_in_time_windows_are_the_whole_match_pages(trail, store, monkeypatch) -> None:
    """Same rows, order and tie-breaks as the whole match sorted, for filters x sorts x pages."""
    import analytics
    from models import AuditFilters

    ran: list[list[dict]] = []
    read = analytics._aggregate

    async def spy(store, pipeline):
        ran.append(pipeline)
        return await read(store, pipeline)

    monkeypatch.setattr(analytics, "_aggregate", spy)

    # Ties on the timestamp across a window's bound, and events the rollups do not hold (another
    # writer's), newer and older than everything they know: windows must not lose any of them.
    newest = max(e["event_timestamp"] for e in trail)
    ties = [
        {**trail[-1], "event_timestamp": newest - timedelta(hours=h), "sql_text": f"tie {i}"}
        for h in (1, 2, 5)
        for i in range(30)
    ]
    await insert_documents(store, ties)
    foreign = [
        {**trail[0], "_id": f"foreign-{i}", "event_timestamp": ts, "sql_text": f"foreign {i}"}
        for i, ts in enumerate([newest + timedelta(days=3), END - timedelta(days=400)])
    ]
    await store.audit.insert_many(foreign)
    u = user(trail)
    period = AuditFilters(start=END - timedelta(days=9, hours=5), end=END - timedelta(days=2))
    cases = [
        AuditFilters(),
        AuditFilters(dbusername=[u]),
        AuditFilters(action_name=["SELECT"]),
        AuditFilters(failed=True),
        AuditFilters(dbusername=[u], action_name=["LOGON"]),
        AuditFilters(sql_text_contains=["tie"]),
        AuditFilters(sql_text_contains=["foreign"]),
        AuditFilters(start=END - timedelta(hours=30)),
        AuditFilters(end=END - timedelta(days=20)),
        period,
        period.model_copy(update={"exclude": {"dbusername": [u]}}),
    ]
    for filters in cases:
        for sort in ("-event_timestamp", "event_timestamp", "-dbusername"):
            for limit, page in ((50, 1), (7, 3), (40, 30), (500, 1)):
                spec = analytics.parse_sort(sort)
                skip = (page - 1) * limit
                whole = [
                    *analytics.match_stages(filters),
                    {"$sort": spec},
                    {"$skip": skip},
                    {"$limit": limit},
                ]
                expected = [d["_id"] for d in await analytics._aggregate(store, whole)]
                ran.clear()
                result, _ = await analytics.search_page(store, filters, sort=sort, limit=limit, page=page)
                assert [r[0] for r in result.rows] == expected, (filters, sort, limit, page)
                if filters == AuditFilters() and sort != "-dbusername" and limit == 50:
                    # the page came from a window, not from sorting the whole trail
                    assert any("event_timestamp" in p[0].get("$match", {}) for p in ran if p), ran


async def test_start_up_checks_the_rollups_in_the_background_and_rebuilds_them(trail, store) -> None:
    """`prepare` returns at once when the rollups hold events; the check and rebuild follow."""
    await store.audit.insert_one({**trail[0], "_id": "stray-start-up", "dbusername": "STRAY"})
    task = await rollups.prepare(store)
    assert task is not None
    await task
    await rollups.forget(store)
    assert await rollups.usable(store)
    report = await rollups.check(store)
    assert report.ok, report.mismatches


async def test_counts_written_in_the_background_mid_import_give_the_same_figures(
    scratch_audit, store, monkeypatch
) -> None:
    """Counts summed over a few batches and written while the next batches are inserted (here every
    1,000 events), with duplicates re-imported: the rollups hold exactly the events, no lease is left."""
    import rollup_compiler

    monkeypatch.setattr(rollups, "FLUSH_EVENTS", 1000)
    monkeypatch.setattr(rollup_compiler, "ROLLUP_MIN_SPAN", timedelta(0))
    events = await import_with_duplicates(store, END)
    meta = await store.meta.find_one({"_id": f"rollups:{store.audit_name}"})
    assert meta["events"] == 3500 and not meta.get("inflight")
    report = await rollups.check(store)
    assert report.ok, report.mismatches
    sessions = store[rollups.sessions_name(store.audit_name)]
    assert await sessions.count_documents({}) == len({e["session_id"] for e in events})
    for plan in plans(events):
        fast, slow = await run_plan(store, plan), await run_plan(store, plan, use_rollups=False)
        assert fast.query["collection"] == rollups.rollups_name(store.audit_name), plan
        assert (fast.columns, fast.rows, fast.total) == (slow.columns, slow.rows, slow.total), plan


async def _rebuild_with_the_cli(mongo_uri: str, store) -> str:
    env = {**os.environ, "MONGODB_URI": mongo_uri, "MONGODB_DB": store.db_name}
    # the CLI works on actions_audit: point it at the scratch collection
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "import sys, database; database.AUDIT_COLLECTION = sys.argv[1];"
         "import cli; sys.argv = ['cli', 'rollups', 'rebuild', '--check']; cli.cli()", store.audit_name],
        env=env, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


async def test_an_import_that_dies_before_writing_its_counts_is_distrusted_then_rebuilt(
    trail, store, mongo_uri
) -> None:
    """Batches inserted, their counts summed in memory, the process gone before they are written: the
    leases of those batches cover them (the rollups lag, never count beyond the collection) until they
    expire; then readers use the events, and `cli.py rollups rebuild` repairs the rollups."""
    batches = [generate(n_events=300, days=2, seed=s, end=END) for s in (21, 22)]
    counts = rollups.Accumulator(store)  # never closed: the import dies with its sums
    for batch in batches:
        assert await _insert(store, [dict(e) for e in batch], counts) == (len(batch), 0)
    new = sum(len(b) for b in batches)
    meta = await store.meta.find_one({"_id": f"rollups:{store.audit_name}"})
    assert meta["events"] == 3500 and sum(lease["n"] for lease in meta["inflight"].values()) == new
    await rollups.forget(store)
    assert await rollups.usable(store)
    fast, slow = await run_plan(store, Plan()), await run_plan(store, Plan(), use_rollups=False)
    assert fast.query["collection"] == rollups.rollups_name(store.audit_name)
    assert (fast.rows, slow.rows) == ([[3500]], [[3500 + new]])  # lags by the unwritten batches only
    # the leases expire (as they would 5 minutes after the crash): the rollups are distrusted
    past = datetime.now(UTC) - timedelta(seconds=1)
    expired = {f"inflight.{lease}.until": past for lease in meta["inflight"]}
    await store.meta.update_one({"_id": meta["_id"]}, {"$set": expired})
    await rollups.forget(store)
    assert not await rollups.usable(store)
    assert (await run_plan(store, Plan())).rows == [[3500 + new]]  # from the events
    out = await _rebuild_with_the_cli(mongo_uri, store)
    assert f"rollups rebuilt from {3500 + new} events" in out and "rollups agree with the events" in out
    await rollups.forget(store)
    assert await rollups.usable(store)
    assert (await run_plan(store, Plan())).query["collection"] == rollups.rollups_name(store.audit_name)
    for plan in plans(trail)[:6]:
        a, b = await run_plan(store, plan), await run_plan(store, plan, use_rollups=False)
        assert (a.rows, a.total) == (b.rows, b.total), plan


async def test_counts_that_fail_to_be_written_end_their_leases_at_once(trail, store, monkeypatch) -> None:
    """The import inserted its events but writing their counts failed: the leases end with the
    import, so the rollups are distrusted right away (not 5 minutes later), and a rebuild repairs them."""
    real = rollups._insert_or_add

    async def fails_on_sessions(collection, writes) -> None:
        if collection.name.endswith("_sessions"):
            raise ConnectionError("store gone")
        await real(collection, writes)  # the rollups are written: more than `events` says

    monkeypatch.setattr(rollups, "_insert_or_add", fails_on_sessions)
    more = generate(n_events=500, days=2, seed=23, end=END)
    with pytest.raises(ConnectionError):
        await insert_documents(store, [dict(e) for e in more], batch_size=200)
    monkeypatch.setattr(rollups, "_insert_or_add", real)
    meta = await store.meta.find_one({"_id": f"rollups:{store.audit_name}"})
    assert meta["events"] == 3500 and not meta.get("inflight")
    await rollups.forget(store)
    assert not await rollups.usable(store)
    assert (await run_plan(store, Plan())).rows == [[3500 + len(more)]]
    assert await rollups.rebuild(store) == 3500 + len(more)
    assert (await rollups.check(store)).ok


# --------------------------------------------------------------------------- anomaly baselines


@pytest.mark.parametrize("end", [END, DST_END], ids=["winter", "dst-change"])
async def test_anomalies_from_the_rollups_give_the_events_findings(scratch_audit, store, monkeypatch, end):
    """`anomalies.detect` reads its hourly baseline from the rollups: the same findings and baseline
    as from the events, for windows with history, learning from the trail's start, ending mid-hour or
    on a whole hour, across the change to summer time."""
    import anomalies
    import anomaly_queries

    await import_with_duplicates(store, end)
    assert (await rollups.check(store)).ok
    read = []
    pipeline = anomaly_queries._rollup_summary_pipeline
    monkeypatch.setattr(
        anomaly_queries, "_rollup_summary_pipeline", lambda *a: read.append(a) or pipeline(*a)
    )
    whole_hour = end.replace(minute=0)
    windows = [(end - timedelta(days=7), end), (end - timedelta(days=30), end)]
    windows += [(whole_hour - timedelta(days=3, hours=5), whole_hour), (end - timedelta(days=12), end)]
    kinds, found = set(), 0
    for start, stop in windows:
        anomalies.clear_cache()
        slow = await anomalies.detect(store, start=start, end=stop, use_rollups=False)
        assert not read
        anomalies.clear_cache()
        fast = await anomalies.detect(store, start=start, end=stop)
        assert read, (start, stop)
        read.clear()
        assert fast.model_dump() == slow.model_dump(), (start, stop)
        kinds.add(fast.baseline.kind)
        found += len(fast.findings)
    assert kinds == {"history", "learning"} and found >= 20, (kinds, found)


async def test_rollups_built_with_other_sets_are_rebuilt_at_start_up(trail, store) -> None:
    """A store from before a set was added holds rollups whose counts agree but lack that set: they
    are not trusted, and `prepare` rebuilds them."""
    await store.meta.update_one({"_id": f"rollups:{store.audit_name}"}, {"$unset": {"layout": ""}})
    await store[rollups.rollups_name(store.audit_name)].delete_many({"r": "user_host_program"})
    await rollups.forget(store)
    assert not await rollups.usable(store)
    task = await rollups.prepare(store)
    assert task is not None
    await task
    assert await rollups.usable(store) and (await rollups.check(store)).ok
