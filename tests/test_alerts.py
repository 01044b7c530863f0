"""Continuous detection, alerts, policies and notifications, against real loopback receivers."""

import asyncio
import json
from datetime import UTC, datetime, time, timedelta

import pytest

import alerts
import notify
from config import settings
from ingest import event_id, insert_documents
from tests.receivers import HttpReceiver, SmtpReceiver

SECRET = "webhook-secret-for-tests"


def _day(days_ago: int) -> datetime:
    """A weekday `days_ago` or a little more before today, at midnight local time."""
    d = datetime.now(settings.tz).date() - timedelta(days=days_ago)
    while d.weekday() >= 5:
        d -= timedelta(days=1)
    return datetime.combine(d, time(0), tzinfo=settings.tz)


def _event(at: datetime, user: str, host: str, action: str = "SELECT", rc: int = 0, **extra) -> dict:
    doc = {
        "event_timestamp": at.astimezone(UTC), "dbusername": user, "userhost": host,
        "os_username": user.lower(), "client_program_name": "sqlplus", "action_name": action,
        "return_code": rc, "object_schema": "HR", "object_name": "EMPLOYEES", "terminal": "t",
        "session_id": extra.pop("session_id", 1), "sql_text": extra.pop("sql_text", None), **extra,
    }  # fmt: skip
    doc["_id"] = event_id(doc)
    return doc


def _history() -> list[dict]:
    """Ten weekdays of quiet, business-hours work by ALICE and BOB."""
    docs = []
    for n in range(3, 17):
        day = _day(n)
        if day.weekday() >= 5:
            continue
        for i in range(5):
            docs.append(_event(day + timedelta(hours=10, minutes=7 * i), "ALICE", "pc-alice", session_id=n))
            docs.append(_event(day + timedelta(hours=14, minutes=5 * i), "BOB", "pc-bob", session_id=100 + n))
    return docs


def _jsonl(docs: list[dict]) -> bytes:
    rows = []
    for d in docs:
        row = {k: v for k, v in d.items() if k != "_id"}
        row["event_timestamp"] = row["event_timestamp"].isoformat()
        rows.append(json.dumps(row))
    return ("\n".join(rows) + "\n").encode()


def _burst(day: datetime, n: int = 8, host: str = "ws-unknown-9") -> list[dict]:
    start = day + timedelta(hours=11, minutes=3)
    return [
        _event(start + timedelta(seconds=10 * i), "BOB", host, "LOGON", 1017, session_id=500 + i)
        for i in range(n)
    ]


@pytest.fixture
def receiver():
    server = HttpReceiver().start()
    yield server
    server.stop()


@pytest.fixture
async def clean_alerts(store, scratch_audit, monkeypatch):
    """An empty scratch trail with its quiet history already seen by a detection run."""
    for name in (alerts.ALERTS, alerts.DELIVERIES, alerts.POLICIES, alerts.HOURS, alerts.LEASES):
        await store[name].delete_many({})
    monkeypatch.setattr(settings, "ALERT_WEBHOOK_URLS", [])
    monkeypatch.setattr(settings, "ALERT_EMAIL_TO", [])
    monkeypatch.setattr(settings, "ALERT_WEBHOOK_SECRET", SECRET)
    await insert_documents(store, _history())
    first = await alerts.run_detection(store)
    assert first.changed_hours > 0 and first.alerts_created == 0, first
    yield store
    for name in (alerts.ALERTS, alerts.DELIVERIES, alerts.POLICIES, alerts.HOURS):
        await store[name].delete_many({})


async def _until(predicate, seconds: float = 15.0) -> None:
    for _ in range(int(seconds * 20)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def _import(client, headers, body: bytes):
    r = await client.post("/api/audit/import", headers=headers, files={"file": ("export.jsonl", body)})
    assert r.status_code == 200, r.text
    return r.json()


async def test_an_imported_burst_is_one_alert_and_one_signed_webhook(
    client, admin_headers, clean_alerts, receiver, monkeypatch
):
    monkeypatch.setattr(settings, "ALERT_WEBHOOK_URLS", [receiver.url])
    body = _jsonl(_burst(_day(1)))
    assert (await _import(client, admin_headers, body))["inserted"] == 8

    r = await client.get("/api/alerts", headers=admin_headers)
    assert r.status_code == 200, r.text
    listed = r.json()
    assert listed["total"] == 1
    [alert] = listed["alerts"]
    assert alert["type"] == "failed_logon_burst" and alert["status"] == "new"
    assert alert["users"] == ["BOB"] and alert["hosts"] == ["ws-unknown-9"]

    await _until(lambda: len(receiver.requests) == 1)
    [request] = receiver.requests
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert notify.verify(request["body"], SECRET, headers["x-signature-256"])
    assert not notify.verify(request["body"], "another-secret", headers["x-signature-256"])
    payload = json.loads(request["body"])
    assert payload["alert"]["id"] == alert["id"] and "BOB" in payload["text"]
    assert "8 échecs de connexion" in payload["text"]

    full = (await client.get(f"/api/alerts/{alert['id']}", headers=admin_headers)).json()
    assert full["event_count"] == 8 and len(full["event_ids"]) == 8
    stored = {
        d["_id"] for d in await clean_alerts.audit.find({"_id": {"$in": full["event_ids"]}}).to_list(None)
    }
    assert stored == set(full["event_ids"])
    for _ in range(40):  # the delivery is marked sent right after the POST returns
        full = (await client.get(f"/api/alerts/{alert['id']}", headers=admin_headers)).json()
        if full["deliveries"] and full["deliveries"][0]["status"] == "sent":
            break
        await asyncio.sleep(0.05)
    assert [(d["channel"], d["status"], d["attempts"]) for d in full["deliveries"]] == [
        ("webhook", "sent", 1)
    ]

    # The same file again: nothing new, no alert, no delivery.
    again = await _import(client, admin_headers, body)
    assert (again["inserted"], again["duplicates"]) == (0, 8)
    assert (await client.get("/api/alerts", headers=admin_headers)).json()["total"] == 1
    await notify.deliver_due(clean_alerts)
    await asyncio.sleep(0.2)
    assert len(receiver.requests) == 1


async def test_acknowledge_close_and_comment(client, admin_headers, auditor_headers, clean_alerts):
    await insert_documents(clean_alerts, _burst(_day(1)))
    run = await alerts.run_detection(clean_alerts)
    [alert_id] = run.alert_ids
    r = await client.post(f"/api/alerts/{alert_id}/acknowledge", headers=auditor_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "acknowledged" and body["status_by"] == "auditor1" and body["status_at"]
    r = await client.post(
        f"/api/alerts/{alert_id}/comments",
        json={"text": "Poste inconnu, vérifié avec BOB."},
        headers=auditor_headers,
    )
    assert r.json()["comments"][0]["text"] == "Poste inconnu, vérifié avec BOB."
    r = await client.patch(
        f"/api/alerts/{alert_id}",
        json={"status": "closed", "comment": "Faux positif."},
        headers=admin_headers,
    )
    body = r.json()
    assert body["status"] == "closed" and body["status_by"] == "admin"
    assert [h["status"] for h in body["history"]] == ["acknowledged", "closed"]
    assert [c["by"] for c in body["comments"]] == ["auditor1", "admin"]

    listed = (await client.get("/api/alerts", params={"status": "new"}, headers=auditor_headers)).json()
    assert listed["total"] == 0
    listed = (
        await client.get(
            "/api/alerts", params={"status": "closed", "dbusername": "bob"}, headers=auditor_headers
        )
    ).json()
    assert listed["total"] == 1

    for params in ({"status": "ouvert"}, {"severity": "critique"}, {"type": "nope"}, {"start": "hier"}):
        r = await client.get("/api/alerts", params=params, headers=auditor_headers)
        assert r.status_code == 422 and r.json()["code"] and r.json()["detail"], params
    r = await client.get("/api/alerts/doesnotexist", headers=auditor_headers)
    assert r.status_code == 404 and "introuvable" in r.json()["detail"]
    r = await client.patch(f"/api/alerts/{alert_id}", json={"status": "perdu"}, headers=auditor_headers)
    assert r.status_code == 422
    r = await client.patch(f"/api/alerts/{alert_id}", json={}, headers=auditor_headers)
    assert r.status_code == 422


async def test_policies_choose_and_tune_the_detectors(client, admin_headers, auditor_headers, clean_alerts):
    r = await client.get("/api/alert-policies", headers=auditor_headers)
    assert r.status_code == 403
    bad = {"name": "x", "detectors": ["nope"]}
    r = await client.post("/api/alert-policies", json=bad, headers=admin_headers)
    assert r.status_code == 422 and "inconnu" in r.text
    r = await client.post(
        "/api/alert-policies", json={"name": "x", "parameters": {"nope": 1}}, headers=admin_headers
    )
    assert r.status_code == 422
    # A policy that watches ALICE only, with a lower failed-logon threshold than the settings' 5.
    policy = {
        "name": "Comptes sensibles",
        "detectors": ["failed_logon_burst"],
        "min_severity": "low",
        "watch_users": ["alice"],
        "parameters": {"failed_logon_threshold": 3},
    }
    r = await client.post("/api/alert-policies", json=policy, headers=admin_headers)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["watch_users"] == ["ALICE"] and created["parameters"] == {"failed_logon_threshold": 3}

    day = _day(1) + timedelta(hours=9)
    docs = [
        _event(day + timedelta(seconds=20 * i), "ALICE", "pc-x", "LOGON", 1017, session_id=900 + i)
        for i in range(3)
    ]
    docs += _burst(_day(1))  # BOB: not watched by the policy
    await insert_documents(clean_alerts, docs)
    run = await alerts.run_detection(clean_alerts)
    assert run.alerts_created == 1, run
    [alert] = (await client.get("/api/alerts", headers=admin_headers)).json()["alerts"]
    assert alert["users"] == ["ALICE"] and alert["policies"] == [created["id"]]

    r = await client.put(
        f"/api/alert-policies/{created['id']}", json={**policy, "enabled": False}, headers=admin_headers
    )
    assert r.status_code == 200 and r.json()["enabled"] is False
    r = await client.delete(f"/api/alert-policies/{created['id']}", headers=admin_headers)
    assert r.status_code == 204
    assert (
        await client.get(f"/api/alert-policies/{created['id']}", headers=admin_headers)
    ).status_code == 404


async def test_quiet_hours_hold_the_notification():
    quiet = alerts.QuietHours(start=22, end=7)
    late = datetime(2025, 3, 4, 23, 30, tzinfo=settings.tz)
    assert quiet.holds(late) and not quiet.holds(late.replace(hour=12))
    assert quiet.ends_after(late) == datetime(2025, 3, 5, 7, 0, tzinfo=settings.tz)


async def test_an_undeliverable_webhook_is_retried_then_failed(clean_alerts, receiver, monkeypatch):
    monkeypatch.setattr(settings, "ALERT_WEBHOOK_URLS", [receiver.url])
    monkeypatch.setattr(settings, "NOTIFY_MAX_ATTEMPTS", 3)
    receiver.default_status = 500
    await insert_documents(clean_alerts, _burst(_day(1)))
    [alert_id] = (await alerts.run_detection(clean_alerts)).alert_ids
    now = datetime.now(UTC)
    first = await notify.deliver_due(clean_alerts, now=now)
    assert (first.sent, first.retried, first.failed) == (0, 1, 0)
    assert (await notify.deliver_due(clean_alerts, now=now)).retried == 0  # not due before its backoff
    later = now + notify.backoff(1) + timedelta(seconds=1)
    assert (await notify.deliver_due(clean_alerts, now=later)).retried == 1
    last = await notify.deliver_due(clean_alerts, now=later + notify.backoff(2) + timedelta(seconds=1))
    assert last.failed == 1
    alert = await alerts.get_alert(clean_alerts, alert_id)
    [delivery] = alert.deliveries
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("failed", 3, "HTTP 500")
    assert len(receiver.requests) == 3

    receiver.default_status = 200  # the target is fixed: an admin retries
    assert await notify.retry(clean_alerts, delivery.id)
    assert (await notify.deliver_due(clean_alerts)).sent == 1


async def test_email_through_a_real_smtp_server(clean_alerts, monkeypatch):
    smtp = SmtpReceiver().start()
    try:
        monkeypatch.setattr(settings, "SMTP_HOST", "127.0.0.1")
        monkeypatch.setattr(settings, "SMTP_PORT", smtp.port)
        monkeypatch.setattr(settings, "ALERT_EMAIL_TO", ["soc@example.com"])
        await insert_documents(clean_alerts, _burst(_day(1)))
        run = await alerts.run_detection(clean_alerts)
        assert run.deliveries == 1
        assert (await notify.deliver_due(clean_alerts)).sent == 1
        [message] = smtp.messages
        assert message["to"] == ["soc@example.com"]
        assert "Alerte" in message["data"] and "BOB" in message["data"]
    finally:
        smtp.stop()


async def test_the_lease_is_held_by_one_process_at_a_time(store):
    await store[alerts.LEASES].delete_many({"_id": "test-lease"})
    a = alerts.Lease(store, "test-lease", ttl_seconds=60, holder="a")
    b = alerts.Lease(store, "test-lease", ttl_seconds=60, holder="b")
    results = await asyncio.gather(a.acquire(), b.acquire())
    assert sorted(results) == [False, True]
    holder, other = (a, b) if results[0] else (b, a)
    assert await holder.acquire()  # renewing its own lease
    assert not await other.acquire()
    assert await other.acquire(now=datetime.now(UTC) + timedelta(seconds=61))  # expired: taken over
    assert not await holder.acquire()
    await other.release()
    assert await holder.acquire()
