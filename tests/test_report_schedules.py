"""Scheduled reports: claimed once per period, sent as an attachment to a real SMTP server (aiosmtpd)."""

import asyncio
import csv
import email
import io
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest

import notify
import report_schedules
from config import settings
from database import free_port
from tests.receivers import SmtpReceiver

RECIPIENTS = ["dpo@example.com", "rssi@example.com"]


@pytest.fixture
async def smtp(store, monkeypatch):
    server = SmtpReceiver().start()
    monkeypatch.setattr(settings, "SMTP_HOST", "127.0.0.1")
    monkeypatch.setattr(settings, "SMTP_PORT", server.port)
    for name in (report_schedules.SCHEDULES, report_schedules.RUNS):
        await store[name].delete_many({})
    yield server
    server.stop()
    for name in (report_schedules.SCHEDULES, report_schedules.RUNS):
        await store[name].delete_many({})


def _schedule(**extra) -> dict:
    today = datetime.now(settings.tz)
    body = {
        "name": "Échecs de connexion de SYSTEM",
        "kind": "failed_logins",
        "format": "csv",
        "frequency": "weekly",
        "weekday": today.weekday(),
        "hour": 6,
        "recipients": RECIPIENTS,
        "dbusername": ["system"],
    }
    return {**body, **extra}


async def _create(client, headers, **extra) -> dict:
    r = await client.post("/api/report-schedules", json=_schedule(**extra), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def _attachment(message: dict) -> tuple[EmailMessage, EmailMessage]:
    parsed = email.message_from_string(message["data"], policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    [attachment] = list(parsed.iter_attachments())
    assert isinstance(attachment, EmailMessage)
    return parsed, attachment


async def test_a_due_weekly_schedule_sends_one_email_per_period(client, admin_headers, store, demo, smtp):
    # due tomorrow at midnight, so that its week holds the demo trail's last six days whatever the hour
    # the test runs at (due a week later, the period would be the week to come, with no event)
    tomorrow = datetime.now(settings.tz) + timedelta(days=1)
    created = await _create(client, admin_headers, weekday=tomorrow.weekday(), hour=0)
    assert created["dbusername"] == ["SYSTEM"] and created["enabled"] is True
    assert created["description"].startswith("Chaque ") and created["last_status"] is None
    due = datetime.fromisoformat(created["next_run_at"])  # the first instant after its creation
    assert due > datetime.now(settings.tz)

    # Before the instant: nothing to send.
    before = await report_schedules.run_due(store, now=due - timedelta(minutes=1))
    assert (before.claimed, before.sent) == (0, 0) and smtp.messages == []

    now = due + timedelta(minutes=1)
    run = await report_schedules.run_due(store, now=now)
    assert (run.claimed, run.sent, run.retried, run.failed) == (1, 1, 0, 0)
    [message] = smtp.messages
    assert sorted(message["to"]) == sorted(RECIPIENTS)
    parsed, attachment = _attachment(message)
    assert "Échecs de connexion" in parsed["Subject"] and "hebdomadaire" in parsed["Subject"]
    assert "Comptes : SYSTEM" in parsed.get_body(preferencelist=("plain",)).get_content()
    assert attachment.get_content_type() == "text/csv"
    content = attachment.get_payload(decode=True)
    start, end = due - timedelta(days=7), due
    assert attachment.get_filename() == f"rapport-failed_logins-{start:%Y%m%d}-{end:%Y%m%d}.csv"

    # The figures are those of the report endpoint over the same window, byte for byte.
    params = {"start": start.isoformat(), "end": end.isoformat(), "format": "csv", "dbusername": "SYSTEM"}
    r = await client.get("/api/reports/failed_logins", params=params, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert content == r.content
    # ...and those of Python over the demo events.
    failed = [
        e
        for e in demo.events
        if start <= e["event_timestamp"] < end
        and e["dbusername"] == "SYSTEM"
        and e["action_name"] == "LOGON"
        and e["return_code"] != 0
    ]
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig")), delimiter=";"))
    assert rows[2] == ["Échecs de connexion"] and rows[4] == [str(len(failed))] and failed

    # A second run in the same period, at once or a day later, sends nothing.
    for later in (now, now + timedelta(days=1)):
        again = await report_schedules.run_due(store, now=later)
        assert (again.claimed, again.sent) == (0, 0)
    assert len(smtp.messages) == 1

    # The next period, run by two workers at the same moment: one claims it, one e-mail.
    next_week = due + timedelta(days=7, minutes=1)
    both = await asyncio.gather(*(report_schedules.run_due(store, now=next_week) for _ in range(2)))
    assert sum(s.claimed for s in both) == 1 and sum(s.sent for s in both) == 1
    assert len(smtp.messages) == 2

    detail = (await client.get(f"/api/report-schedules/{created['id']}", headers=admin_headers)).json()
    assert detail["last_status"] == "sent" and detail["last_error"] is None
    assert [(x["status"], x["attempts"]) for x in detail["runs"]] == [("sent", 1), ("sent", 1)]
    assert sorted(detail["runs"][1]["recipients"]) == sorted(RECIPIENTS)
    assert detail["runs"][0]["period"] != detail["runs"][1]["period"]


async def test_send_now_a_monthly_pdf(client, admin_headers, demo, smtp):
    created = await _create(
        client, admin_headers, kind="activity", format="pdf", frequency="monthly", day=1, weekday=None
    )
    assert created["weekday"] is None and created["day"] == 1
    r = await client.post(f"/api/report-schedules/{created['id']}/send", headers=admin_headers)
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["status"] == "sent" and run["period"].startswith("manual-") and run["size"] > 1000
    [message] = smtp.messages
    parsed, attachment = _attachment(message)
    assert "mensuel" in parsed["Subject"] and "Synthèse de l'activité" in parsed["Subject"]
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_payload(decode=True).startswith(b"%PDF")
    assert attachment.get_filename().endswith(".pdf")


async def test_an_undeliverable_report_is_retried_then_shown_as_failed(
    client, admin_headers, store, demo, smtp, monkeypatch
):
    monkeypatch.setattr(settings, "SMTP_PORT", free_port())  # nothing listens there
    monkeypatch.setattr(settings, "NOTIFY_MAX_ATTEMPTS", 2)
    created = await _create(client, admin_headers, format="json")
    now = datetime.fromisoformat(created["next_run_at"]) + timedelta(minutes=1)
    first = await report_schedules.run_due(store, now=now)
    assert (first.claimed, first.sent, first.retried) == (1, 0, 1)
    assert (await report_schedules.run_due(store, now=now)).retried == 0  # not before its backoff
    last = await report_schedules.run_due(store, now=now + notify.backoff(1) + timedelta(seconds=1))
    assert last.failed == 1
    detail = (await client.get(f"/api/report-schedules/{created['id']}", headers=admin_headers)).json()
    assert detail["last_status"] == "failed" and detail["last_error"]
    [run] = detail["runs"]
    assert (run["status"], run["attempts"]) == ("failed", 2) and run["last_error"] == detail["last_error"]
    listed = (await client.get("/api/report-schedules", headers=admin_headers)).json()
    assert [s["last_status"] for s in listed["schedules"]] == ["failed"]
    # failed for good: no further attempt
    later = await report_schedules.run_due(store, now=now + timedelta(days=1))
    assert (later.claimed, later.sent, later.retried, later.failed) == (0, 0, 0, 0)
    assert smtp.messages == []


async def test_admin_only_and_french_422s(client, admin_headers, auditor_headers, smtp):
    r = await client.get("/api/report-schedules", headers=auditor_headers)
    assert r.status_code == 403 and "administrateurs" in r.json()["detail"]
    r = await client.post("/api/report-schedules", json=_schedule(), headers=auditor_headers)
    assert r.status_code == 403
    assert (await client.get("/api/report-schedules")).status_code == 401

    bad = {
        "recipients": (["pas-une-adresse"], "adresse(s) e-mail invalide(s)"),
        "weekday": (None, "« weekday »"),
        "kind": ("tout", "rapport inconnu"),
        "format": ("doc", "valeur attendue"),
        "hour": (24, "inférieur ou égal à 23"),
        "frequency": ("daily", "valeur attendue"),
    }
    for field, (value, message) in bad.items():
        r = await client.post(
            "/api/report-schedules", json=_schedule(**{field: value}), headers=admin_headers
        )
        assert r.status_code == 422, (field, r.text)
        body = r.json()
        assert body["code"] == "validation_error"
        assert any(message in e["msg"] for e in body["errors"]), (field, body)
    r = await client.post("/api/report-schedules", json=_schedule(recipients=[]), headers=admin_headers)
    assert r.status_code == 422
    r = await client.post("/api/report-schedules", json=_schedule(dayOfWeek=1), headers=admin_headers)
    assert r.status_code == 422 and r.json()["errors"][0]["msg"] == "champ inconnu"
    r = await client.post(
        "/api/report-schedules", json=_schedule(kind="watched_objects"), headers=admin_headers
    )
    assert r.status_code == 422 and "surveillé" in r.json()["detail"]

    for method, path in (
        ("GET", "/api/report-schedules/nope"),
        ("DELETE", "/api/report-schedules/nope"),
        ("POST", "/api/report-schedules/nope/send"),
    ):
        r = await client.request(method, path, headers=admin_headers)
        assert r.status_code == 404 and "introuvable" in r.json()["detail"], (method, path)
    r = await client.put("/api/report-schedules/nope", json=_schedule(), headers=admin_headers)
    assert r.status_code == 404

    # update, disable, delete
    created = await _create(client, admin_headers)
    r = await client.put(
        f"/api/report-schedules/{created['id']}", json=_schedule(enabled=False), headers=admin_headers
    )
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["next_run_at"] is None
    r = await client.delete(f"/api/report-schedules/{created['id']}", headers=admin_headers)
    assert r.status_code == 204
    assert (
        await client.get(f"/api/report-schedules/{created['id']}", headers=admin_headers)
    ).status_code == 404


async def test_periods_windows_and_the_schedule_job(app):
    tz = settings.tz
    monthly = report_schedules.ScheduleCreate(
        name="m", kind="activity", frequency="monthly", day=31, hour=6, recipients=["a@example.com"]
    )
    at = report_schedules.latest_instant(monthly, datetime(2025, 5, 1, tzinfo=tz))
    assert at == datetime(2025, 4, 30, 6, tzinfo=tz)  # April has no 31st: its last day
    assert report_schedules.period_key(monthly, at) == "2025-04"
    assert report_schedules.window(monthly, at) == (datetime(2025, 3, 31, 6, tzinfo=tz), at)
    assert report_schedules.next_instant(monthly, at) == datetime(2025, 5, 31, 6, tzinfo=tz)
    weekly = report_schedules.ScheduleCreate(
        name="w", kind="activity", frequency="weekly", weekday=0, hour=6, recipients=["a@example.com"]
    )
    sunday = datetime(2025, 3, 30, 12, tzinfo=tz)  # the change to summer time was that night
    at = report_schedules.latest_instant(weekly, sunday)
    assert at == datetime(2025, 3, 24, 6, tzinfo=tz) and report_schedules.period_key(weekly, at) == "2025-W13"
    assert report_schedules.next_instant(weekly, sunday) == datetime(2025, 3, 31, 6, tzinfo=tz)
    start, end = report_schedules.window(weekly, datetime(2025, 3, 31, 6, tzinfo=tz))
    assert end - start == timedelta(days=7, hours=-1)  # local 6:00 to 6:00 across the change
    # the runner is a job of the alerts' schedule, under its lease
    assert "report-schedules" in app.state.alert_scheduler.jobs


async def test_a_failed_run_is_retried_once_by_an_admin(
    client, admin_headers, auditor_headers, store, demo, smtp, monkeypatch
):
    created = await _create(client, admin_headers, format="json")
    sid = created["id"]
    now = datetime.fromisoformat(created["next_run_at"]) + timedelta(minutes=1)
    port = smtp.port
    monkeypatch.setattr(settings, "SMTP_PORT", free_port())  # nothing listens there
    monkeypatch.setattr(settings, "NOTIFY_MAX_ATTEMPTS", 1)
    assert (await report_schedules.run_due(store, now=now)).failed == 1
    [failed] = (await client.get(f"/api/report-schedules/{sid}", headers=admin_headers)).json()["runs"]
    assert failed["status"] == "failed" and failed["last_error"] and failed["retried_by"] is None
    path = f"/api/report-schedules/{sid}/runs/{failed['id']}/retry"

    r = await client.post(path, headers=auditor_headers)
    assert r.status_code == 403
    for bad in (
        f"/api/report-schedules/{sid}/runs/nope/retry",
        f"/api/report-schedules/nope/runs/{failed['id']}/retry",
    ):
        r = await client.post(bad, headers=admin_headers)
        assert r.status_code == 404 and "introuvable" in r.json()["detail"], bad

    # the server is back: the retry sends it at once, once
    monkeypatch.setattr(settings, "SMTP_PORT", port)
    r = await client.post(path, headers=admin_headers)
    assert r.status_code == 200, r.text
    run = r.json()
    assert (run["id"], run["status"], run["attempts"]) == (failed["id"], "sent", 1)
    assert run["period"] == failed["period"] and run["start"] == failed["start"]
    assert run["retried_by"] == "admin" and run["last_error"] is None
    [message] = smtp.messages
    assert sorted(message["to"]) == sorted(RECIPIENTS)
    _, attachment = _attachment(message)
    assert attachment.get_filename().endswith(".json")
    # the runner does not send it again, and a sent run cannot be retried
    later = await report_schedules.run_due(store, now=now + timedelta(days=1))
    assert (later.claimed, later.sent, later.retried, later.failed) == (0, 0, 0, 0)
    r = await client.post(path, headers=admin_headers)
    assert r.status_code == 409 and r.json()["code"] == "run_not_failed"
    assert r.json()["detail"] == "Seul un envoi en échec peut être relancé : celui-ci a déjà été envoyé."
    assert len(smtp.messages) == 1
    detail = (await client.get(f"/api/report-schedules/{sid}", headers=admin_headers)).json()
    assert detail["last_status"] == "sent" and [x["status"] for x in detail["runs"]] == ["sent"]


async def test_a_retry_that_fails_again_is_queued_and_two_retries_at_once_send_once(
    client, admin_headers, store, demo, smtp, monkeypatch
):
    created = await _create(client, admin_headers, format="json")
    sid = created["id"]
    now = datetime.fromisoformat(created["next_run_at"]) + timedelta(minutes=1)
    port = smtp.port
    monkeypatch.setattr(settings, "SMTP_PORT", free_port())
    monkeypatch.setattr(settings, "NOTIFY_MAX_ATTEMPTS", 2)
    await report_schedules.run_due(store, now=now)
    await report_schedules.run_due(store, now=now + notify.backoff(1) + timedelta(seconds=1))
    [failed] = (await client.get(f"/api/report-schedules/{sid}", headers=admin_headers)).json()["runs"]
    assert (failed["status"], failed["attempts"]) == ("failed", 2)
    path = f"/api/report-schedules/{sid}/runs/{failed['id']}/retry"

    # still unreachable: the retry is pending again, with a fresh count of attempts and its backoff
    r = await client.post(path, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["attempts"]) == ("pending", 1) and r.json()["last_error"]
    r = await client.post(path, headers=admin_headers)
    assert r.status_code == 409 and "en attente" in r.json()["detail"]

    # fails for good again, then two retries at once: one is taken, the other refused
    run = await store[report_schedules.RUNS].find_one({"_id": failed["id"]})
    due = report_schedules._utc(run["next_attempt_at"]) + timedelta(seconds=1)
    assert (await report_schedules.run_due(store, now=due)).failed == 1
    run = await store[report_schedules.RUNS].find_one({"_id": failed["id"]})
    assert (run["status"], run["attempts"]) == ("failed", 2)
    monkeypatch.setattr(settings, "SMTP_PORT", port)
    both = await asyncio.gather(*(client.post(path, headers=admin_headers) for _ in range(2)))
    assert sorted(r.status_code for r in both) == [200, 409]
    assert len(smtp.messages) == 1
