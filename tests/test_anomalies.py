"""Anomaly detection: the planted incidents of the demo trail, routine work, thresholds, merging."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from anomalies import Anomaly, Detection, clear_cache, detect, detect_anomalies
from config import settings
from demo_data import planted_incidents
from ingest import event_id, insert_documents

EXPECTED_TYPES = {
    "failed_logon_burst": {"failed_logon_burst"},
    "off_hours_ddl": {"off_hours_activity", "sensitive_action"},
    "privilege_grant": {"sensitive_action"},
    "mass_delete": {"mass_dml", "volume_spike"},
    "new_host_program": {"new_host_or_program"},
}


@pytest.fixture(scope="module")
async def findings(store, demo) -> list[Anomaly]:
    return await detect_anomalies(store, start=demo.end - timedelta(days=7), end=demo.end)


@pytest.fixture(scope="module", params=[7, 30], ids=["7d", "30d"])
async def detection(request, store, demo) -> Detection:
    """The 7-day window (23 days of history before it) and the 30-day one (the whole trail)."""
    return await detect(store, start=demo.end - timedelta(days=request.param), end=demo.end)


def matches(a: Anomaly, incident: dict) -> bool:
    """Same user, same host and an overlapping window, within an hour of the incident."""
    users = {a.dbusername, *a.evidence.get("users", [])}
    hosts = {a.userhost, *a.evidence.get("hosts", [])}
    return (
        incident["dbusername"] in users
        and incident["userhost"] in hosts
        and a.start <= incident["end"]
        and incident["start"] <= a.end + timedelta(seconds=1)
        and a.start >= incident["start"] - timedelta(hours=1)
        and a.end <= incident["end"] + timedelta(hours=1)
    )


async def test_every_planted_incident_is_reported_high(findings, demo):
    for incident in planted_incidents(demo.end, settings.tz):
        found = [a for a in findings if matches(a, incident) and a.type in EXPECTED_TYPES[incident["kind"]]]
        assert found, incident["kind"]
        assert any(a.severity == "high" for a in found), incident["kind"]
        for a in found:
            assert a.explanation and a.title and a.start.tzinfo is not None


async def test_every_planted_incident_over_7_and_30_days(detection, demo):
    """A window that covers the whole trail learns from its first days: nothing planted is lost, and
    nothing unplanted is high."""
    incidents = planted_incidents(demo.end, settings.tz)
    for incident in incidents:
        found = [
            a
            for a in detection.findings
            if matches(a, incident) and a.type in EXPECTED_TYPES[incident["kind"]]
        ]
        assert any(a.severity == "high" for a in found), incident["kind"]
    unplanted = [
        a for a in detection.findings if a.severity == "high" and not any(matches(a, i) for i in incidents)
    ]
    assert unplanted == [], [(a.type, a.dbusername, a.title) for a in unplanted]


async def test_the_baseline_is_said(detection, demo):
    days = round((detection.end - detection.start).total_seconds() / 86400)
    b = detection.baseline
    if days == 7:  # 23 days of history before the window
        assert b.kind == "history" and b.end == detection.start and b.days >= 22
        assert "historique" in b.explanation
    else:  # the window covers the trail: its first days are the baseline
        first = min(e["event_timestamp"] for e in demo.events)
        assert b.kind == "learning" and b.start <= first < b.start + timedelta(hours=1)
        assert b.end == b.start + timedelta(days=settings.ANOMALY_LEARNING_DAYS)
        assert "premiers jours" in b.explanation
    [new] = [a for a in detection.findings if a.type == "new_host_or_program"]
    assert new.dbusername == "MMARTIN" and new.evidence["known_hosts"] == ["pc-mmartin"]


async def test_wording_has_real_plurals(detection):
    for a in detection.findings:
        for text in (a.title, a.explanation):
            assert "(s)" not in text, text
            assert not re.search(r"entre (\d\d:\d\d) et \1", text), text


async def test_no_history_at_all_reports_no_new_host(store, scratch_audit):
    base = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)
    docs = [_event(base + timedelta(hours=h), "ALICE", "pc-alice") for h in range(48)]
    docs.append(_event(base + timedelta(hours=50), "ALICE", "laptop-x"))
    await insert_documents(store, docs)
    found = await detect(store, start=base, end=base + timedelta(days=3))
    assert found.baseline.kind == "none" and "insuffisant" in found.baseline.explanation
    assert not [a for a in found.findings if a.type == "new_host_or_program"]


async def test_a_burst_within_one_minute_is_said_at_that_minute(store, scratch_audit):
    base = datetime(2025, 3, 4, 9, 0, 5, tzinfo=UTC)
    docs = [
        _event(base + timedelta(seconds=5 * i), "BOB", "pc-bob", "LOGON", 1017, session_id=10 + i)
        for i in range(6)
    ]
    await insert_documents(store, docs)
    found = await detect_anomalies(store, start=base - timedelta(hours=1), end=base + timedelta(hours=1))
    [burst] = [a for a in found if a.type == "failed_logon_burst"]
    assert "le 04/03/2025 à 10:00" in burst.explanation and " et 10:00" not in burst.explanation


async def test_findings_details(findings, demo):
    inc = {i["kind"]: i for i in planted_incidents(demo.end, settings.tz)}
    [burst] = [a for a in findings if a.type == "failed_logon_burst"]  # user and host views merged
    assert (burst.dbusername, burst.userhost, burst.count) == ("SYSTEM", "WS-EXT-4471", 36)
    assert burst.evidence["return_codes"] == [1017]
    assert {v["by"] for v in burst.evidence["views"]} == {"user", "host"}
    assert burst.evidence["samples"][0]["os_username"] == "guest"

    [grant] = [
        a
        for a in findings
        if a.type == "sensitive_action" and a.severity == "high" and a.dbusername == "ADM_GIRARD"
    ]
    assert "GRANT DBA TO PLEGRAND" in grant.explanation
    assert inc["privilege_grant"]["start"] <= grant.start <= inc["privilege_grant"]["end"]

    [dml] = [a for a in findings if a.type == "mass_dml"]
    assert dml.dbusername == "TPETIT" and dml.count >= 450
    assert dml.evidence["by_action_and_object"][0] == {
        "action_name": "DELETE", "object_schema": "SALES", "object_name": "ORDERS", "count": 450,
    }  # fmt: skip

    spike = next(a for a in findings if a.type == "volume_spike" and a.dbusername == "TPETIT")
    assert spike.evidence["robust_score"] >= settings.ANOMALY_MAD_THRESHOLD
    assert spike.evidence["median"] < 50 and "médiane" in spike.explanation

    [new] = [a for a in findings if a.type == "new_host_or_program"]
    assert new.dbusername == "MMARTIN" and new.evidence["new_host"]
    assert new.evidence["new_programs"] == ["python3.11"] and new.count == 17
    assert new.evidence["known_hosts"] == ["pc-mmartin"]

    night = next(a for a in findings if a.type == "off_hours_activity" and a.dbusername == "ADM_MOREAU")
    assert night.severity == "high" and night.start == inc["off_hours_ddl"]["start"]
    assert {c["a"] for c in night.evidence["changes"]} >= {"DROP TABLE", "TRUNCATE TABLE", "ALTER TABLE"}


async def test_routine_night_work_is_low(findings):
    for user in ("ETL_BATCH", "MONITOR"):
        own = [a for a in findings if a.dbusername == user]
        assert own and all(a.severity == "low" for a in own), user
        [night] = [a for a in own if a.type == "off_hours_activity"]
        assert night.evidence["routine"] is True
    routine_grants = [a for a in findings if a.type == "sensitive_action" and a.severity == "low"]
    assert routine_grants and all(a.evidence["session_id"] is None for a in routine_grants)


async def test_thresholds_come_from_settings(store, demo, monkeypatch):
    monkeypatch.setattr(settings, "ANOMALY_FAILED_LOGON_THRESHOLD", 40)
    monkeypatch.setattr(settings, "ANOMALY_MASS_DML_THRESHOLD", 500)
    inc = {i["kind"]: i for i in planted_incidents(demo.end, settings.tz)}
    start = inc["mass_delete"]["start"] - timedelta(hours=2)
    found = await detect_anomalies(
        store, start=start, end=inc["failed_logon_burst"]["end"] + timedelta(hours=1)
    )
    assert not [a for a in found if a.type in ("failed_logon_burst", "mass_dml")]


async def test_bad_window_is_refused(store):
    now = datetime.now(UTC)
    with pytest.raises(ValueError):
        await detect_anomalies(store, start=now, end=now - timedelta(hours=1))


def _event(at: datetime, user: str, host: str, action: str = "SELECT", rc: int = 0, **extra) -> dict:
    doc = {
        "event_timestamp": at, "dbusername": user, "userhost": host, "os_username": user.lower(),
        "client_program_name": "sqlplus", "action_name": action, "return_code": rc,
        "object_schema": "HR", "object_name": "EMPLOYEES", "session_id": extra.pop("session_id", 1),
        "terminal": "t", "sql_text": extra.pop("sql_text", None), **extra,
    }  # fmt: skip
    doc["_id"] = event_id(doc)
    return doc


async def test_spraying_from_one_host_is_one_finding(store, scratch_audit):
    base = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)
    docs = [_event(base - timedelta(days=3, minutes=i), "ALICE", "pc-alice") for i in range(20)]
    docs += [
        _event(base + timedelta(seconds=20 * i), f"USER{i % 4}", "kali", "LOGON", 1017, session_id=100 + i)
        for i in range(12)
    ]
    await insert_documents(store, docs)
    found = await detect_anomalies(store, start=base - timedelta(hours=1), end=base + timedelta(hours=1))
    [burst] = [a for a in found if a.type == "failed_logon_burst"]
    assert burst.userhost == "kali" and burst.dbusername is None and burst.count == 12
    assert burst.evidence["users"] == ["USER0", "USER1", "USER2", "USER3"]
    assert burst.severity == "high"  # several accounts from one origin


async def test_volume_baseline_is_per_user(store, scratch_audit):
    """A busy account at its usual volume is not flagged; a quiet one at the same volume is."""
    day0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    docs = []
    for day in range(10):
        for hour in range(6):
            at = day0 + timedelta(days=day, hours=hour)
            docs += [_event(at + timedelta(seconds=30 * i), "BUSY", "srv1") for i in range(90 + day % 3)]
            docs += [_event(at + timedelta(seconds=60 * i), "QUIET", "pc-quiet") for i in range(3 + hour % 2)]
    spike_at = day0 + timedelta(days=10, hours=2)
    docs += [_event(spike_at + timedelta(seconds=30 * i), "BUSY", "srv1") for i in range(92)]
    docs += [_event(spike_at + timedelta(seconds=30 * i), "QUIET", "pc-quiet") for i in range(92)]
    await insert_documents(store, docs)
    found = await detect_anomalies(store, start=day0 + timedelta(days=10), end=day0 + timedelta(days=11))
    spikes = {a.dbusername: a for a in found if a.type == "volume_spike"}
    assert set(spikes) == {"QUIET"}
    assert spikes["QUIET"].evidence["median"] <= 5
    assert spikes["QUIET"].start == spike_at.replace(minute=0)


def _dump(found: list[Anomaly]) -> list[dict]:
    return [a.model_dump() for a in found]


def _summary_ranges(pipelines: list[list[dict]]) -> list[dict]:
    """Time ranges of the one-pass hourly summaries among the pipelines sent to the store (from the
    events, or from the hourly rollups)."""
    return [
        p[0]["$match"]["event_timestamp"] if "event_timestamp" in p[0]["$match"] else p[0]["$match"]["t"]
        for p in pipelines
        if len(p) > 1
        and (
            {"u", "h", "a", "rc"} <= set(p[1].get("$group", {}).get("_id", {}))
            or p[0]["$match"].get("r") == "user_host_program"
        )
    ]


async def test_cache_until_the_next_import(store, scratch_audit, monkeypatch):
    base = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)
    docs = [
        _event(base - timedelta(days=d, minutes=i), "ALICE", "pc-alice") for d in (1, 2, 3) for i in range(5)
    ]
    await insert_documents(store, docs)
    sent: list[list[dict]] = []
    original = store.aggregate

    async def spy(pipeline, collection=None):
        sent.append(pipeline)
        return await original(pipeline, collection)

    monkeypatch.setattr(store, "aggregate", spy)
    window = {"start": base - timedelta(hours=1), "end": base + timedelta(hours=1)}
    first = await detect_anomalies(store, **window)
    assert _summary_ranges(sent)

    sent.clear()  # the same call again: every result comes from the cache
    assert _dump(await detect_anomalies(store, **window)) == _dump(first)
    assert sent == []

    # A window sliding by 5 minutes reads only those 5 minutes again: whole days and hours are cached.
    await detect_anomalies(
        store, start=window["start"] + timedelta(minutes=5), end=window["end"] + timedelta(minutes=5)
    )
    assert _summary_ranges(sent) == [{"$gte": window["end"], "$lt": window["end"] + timedelta(minutes=5)}]

    sent.clear()  # an import bumps the audit version: nothing cached is used, the new events are seen
    burst = [
        _event(base + timedelta(seconds=30 * i), "ALICE", "pc-alice", "LOGON", 1017, session_id=50 + i)
        for i in range(6)
    ]
    await insert_documents(store, burst)
    found = await detect_anomalies(store, **window)
    assert _summary_ranges(sent) and [a.type for a in found if a.type == "failed_logon_burst"]

    sent.clear()
    await store.bump_audit_version()
    assert _dump(await detect_anomalies(store, **window)) == _dump(found)
    assert _summary_ranges(sent)


async def test_cached_days_give_the_same_findings(store, demo):
    """A 7-day window built on the days cached by a 24-hour call equals the same window computed cold."""
    end = demo.end
    clear_cache()
    await detect_anomalies(store, start=end - timedelta(hours=24), end=end)
    warm = await detect_anomalies(store, start=end - timedelta(days=7), end=end)
    clear_cache()
    cold = await detect_anomalies(store, start=end - timedelta(days=7), end=end)
    assert _dump(warm) == _dump(cold)
