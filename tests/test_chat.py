"""The chat without LLM: figures checked against the demo events, conversations, cache, SSE, /chatbot."""

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import analytics
import chat_service
from config import settings
from models import Analysis, AuditFilters, ChatRequest, Intent

QUESTIONS = Path(__file__).parent / "data" / "questions_fr.jsonl"
SKIPPED = {"anomalies", "help", "small_talk", "unknown"}  # no table computed from the events
WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")


def pick_questions(n: int = 40) -> list[str]:
    """n stand-alone questions of the NLP test set, spread over the intents (round robin)."""
    rows = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    per_intent: dict[str, list[str]] = {}
    for row in rows:
        if not row.get("follow_up") and row["intent"] not in SKIPPED:
            per_intent.setdefault(row["intent"], []).append(row["question"])
    picked: list[str] = []
    while len(picked) < n:
        for questions in per_intent.values():
            if questions and len(picked) < n:
                picked.append(questions.pop(0))
    return picked


# ---------------------------------------------------------------------------- a Python oracle


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def matches(event: dict[str, Any], f: AuditFilters) -> bool:
    ts = _utc(event["event_timestamp"])
    if (f.start and ts < f.start) or (f.end and ts >= f.end):
        return False
    for name in AuditFilters.model_fields:
        values = getattr(f, name)
        if (
            isinstance(values, list)
            and values
            and name != "sql_text_contains"
            and event.get(name) not in values
        ):
            return False
    for name, excluded in (getattr(f, "exclude", None) or {}).items():
        if excluded and event.get(name) in excluded:
            return False
    if f.failed is not None and not f.return_code and (event.get("return_code", 0) != 0) != f.failed:
        return False
    text = (event.get("sql_text") or "").lower()
    return all(word.lower() in text for word in f.sql_text_contains)


def local(ts: datetime) -> datetime:
    return _utc(ts).astimezone(settings.tz)


def off_hours(ts: datetime) -> bool:
    t = local(ts)
    return t.weekday() >= 5 or not settings.BUSINESS_HOURS_START <= t.hour < settings.BUSINESS_HOURS_END


def bucket(ts: datetime, name: str) -> Any:
    t = local(ts)
    return {"hour": t.hour, "weekday": WEEKDAYS[t.weekday()], "day": t.date().isoformat()}[name]


def _sort_key(value: Any) -> Any:
    # MongoDB's order: null first, then numbers and strings; compound keys field by field
    if isinstance(value, tuple):
        return tuple(_sort_key(v) for v in value)
    return (0, "") if value is None else (1, value)


def ranked(counter: Counter, n: int) -> list[list[Any]]:
    return [[k, v] for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], _sort_key(kv[0])))[:n]]


def check_figures(events: list[dict[str, Any]], analysis: Analysis, data: dict[str, Any]) -> None:
    """The table the chat returned equals what the events give for the same filters."""
    f = chat_service.effective_filters(analysis)
    hit = [e for e in events if matches(e, f)]
    cols, rows, total = data["columns"], data["rows"], data["total"]
    if cols == ["count"]:
        assert rows == [[len(hit)]] and total == len(hit)
    elif len(cols) == 2 and cols[1] == "count" and cols[0] in ("hour", "weekday", "day"):
        expected = Counter(bucket(e["event_timestamp"], cols[0]) for e in hit)
        assert {k: v for k, v in rows if v} == dict(expected)
        assert total == len(hit)
    elif len(cols) == 2 and cols[1] == "count":
        counts = Counter(e.get(cols[0]) for e in hit if e.get(cols[0]) is not None)
        assert rows == ranked(counts, len(rows))
        assert total == (len(counts) if analysis.intent == Intent.LIST_USERS else len(hit))
    elif cols[0] == "id":  # events, newest first
        expected = sorted(hit, key=lambda e: (_utc(e["event_timestamp"]), e["_id"]), reverse=True)
        assert [r[0] for r in rows] == [e["_id"] for e in expected[: len(rows)]]
        assert total == len(hit)
    elif cols[:3] == ["object_schema", "object_name", "count"]:
        counts = Counter((e["object_schema"], e["object_name"]) for e in hit if e.get("object_name"))
        assert [[s, o, n] for s, o, n, *_ in rows] == [[*k, v] for k, v in ranked(counts, len(rows))]
    elif cols[0] == "event_timestamp":  # object changes
        changes = [e for e in hit if e["action_name"] in analytics.CHANGE_ACTIONS]
        assert total == len(changes)
        assert (
            sorted(r[0] for r in rows)
            == sorted(local(e["event_timestamp"]).isoformat(timespec="seconds") for e in changes)[
                -len(rows) :
            ]
        )
    elif cols[:2] == ["dbusername", "events"] and "weekend_events" in cols:
        late = [e for e in hit if off_hours(e["event_timestamp"])]
        assert total == len(late)
        per_user = Counter(e["dbusername"] for e in late)
        assert {r[0]: r[1] for r in rows} == dict(ranked(per_user, len(rows)))
    elif cols[:2] == ["dbusername", "events"]:
        per_user = Counter(e["dbusername"] for e in hit)
        failed = Counter(e["dbusername"] for e in hit if e["return_code"] != 0)
        assert total == len(per_user)
        assert [[r[0], r[1], r[2]] for r in rows] == [
            [u, n, failed[u]] for u, n in ranked(per_user, len(rows))
        ]
    elif cols[0] == "session_id":
        per_session = Counter(e["session_id"] for e in hit if e.get("session_id") is not None)
        assert total == len(per_session)
        assert all(per_session[r[0]] == r[9] for r in rows)
    else:
        raise AssertionError(f"no check for the columns {cols}")


async def ask(client, headers, message: str, **extra) -> dict[str, Any]:
    r = await client.post("/api/chat/message", json={"message": message, **extra}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


# ---------------------------------------------------------------------------- tests


async def test_figures_of_40_questions_match_the_events(client, auditor_headers, demo):
    questions = pick_questions(40)
    assert len(set(questions)) == 40
    intents = Counter()
    answers = []
    for i in range(0, len(questions), 4):  # a few at a time: the store works beside the app
        batch = questions[i : i + 4]
        answers += await asyncio.gather(*(ask(client, auditor_headers, q) for q in batch))
    for question, body in zip(questions, answers, strict=True):
        assert body["source"] == "template" and body["answer"]
        assert len(body["suggestions"]) == 3
        if body["intent"] in SKIPPED:
            continue
        analysis = Analysis.model_validate(body["analysis"])
        assert body["data"] is not None, question
        assert body["query"], question
        check_figures(demo.events, analysis, body["data"])
        json.dumps(body["data"])  # JSON as is
        intents[body["intent"]] += 1
    assert sum(intents.values()) >= 36 and len(intents) >= 12


async def test_figures_in_the_answer_come_from_the_table(client, auditor_headers, demo):
    body = await ask(client, auditor_headers, "Combien de connexions échouées cette semaine ?")
    assert body["intent"] == "failed_logins"
    count = body["data"]["rows"][0][0]
    assert body["data"]["columns"] == ["count"]
    assert f"{count:,}".replace(",", "\u202f") in body["answer"]
    body = await ask(client, auditor_headers, "Quels sont les utilisateurs les plus actifs ?")
    first_user, first_count = body["data"]["rows"][0]
    assert f"{first_user} ({first_count:,})".replace(",", "\u202f") in body["answer"]


async def test_five_turn_conversation_keeps_context(client, auditor_headers, demo):
    tz = settings.tz
    today = datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    monday = today - timedelta(days=today.weekday())
    turns = [
        ("Quels sont les utilisateurs les plus actifs cette semaine ?", "top_users",
         {"start": monday, "end": monday + timedelta(days=7)}),
        ("et la semaine dernière ?", "top_users",
         {"start": monday - timedelta(days=7), "end": monday}),
        ("seulement les DELETE", "top_users",
         {"action_name": ["DELETE"], "start": monday - timedelta(days=7), "end": monday}),
        ("et pour TPETIT ?", None,
         {"action_name": ["DELETE"], "dbusername": ["TPETIT"], "start": monday - timedelta(days=7)}),
        ("et hier ?", None,
         {"action_name": ["DELETE"], "dbusername": ["TPETIT"], "start": today - timedelta(days=1),
          "end": today}),
    ]  # fmt: skip
    conversation_id = None
    for i, (question, intent, expected) in enumerate(turns):
        body = await ask(client, auditor_headers, question, conversation_id=conversation_id)
        conversation_id = body["conversation_id"]
        analysis = Analysis.model_validate(body["analysis"])
        assert analysis.follow_up == (i > 0), question
        if intent:
            assert body["intent"] == intent, question
        for name, value in expected.items():
            assert getattr(analysis.filters, name) == value, (question, name)
        check_figures(demo.events, analysis, body["data"])
    r = await client.get(f"/api/chat/conversations/{conversation_id}", headers=auditor_headers)
    assert r.status_code == 200
    stored = r.json()
    assert [t["question"] for t in stored["turns"]] == [t[0] for t in turns]
    assert stored["turns"][-1]["analysis"]["filters"]["dbusername"] == ["TPETIT"]


async def test_conversations_belong_to_their_owner(client, auditor_headers, admin_headers, demo):
    body = await ask(client, auditor_headers, "Combien d'événements aujourd'hui ?")
    cid = body["conversation_id"]
    listed = (await client.get("/api/chat/conversations", headers=auditor_headers)).json()["conversations"]
    assert any(c["id"] == cid and c["turn_count"] == 1 for c in listed)
    assert (await client.get(f"/api/chat/conversations/{cid}", headers=admin_headers)).status_code == 404
    assert (await client.delete(f"/api/chat/conversations/{cid}", headers=admin_headers)).status_code == 404
    r = await client.post("/api/chat/message", json={"message": "et hier ?", "conversation_id": cid},
                          headers=admin_headers)  # fmt: skip
    assert r.status_code == 404 and r.json()["code"] == "conversation_not_found"
    assert (await client.delete(f"/api/chat/conversations/{cid}", headers=auditor_headers)).status_code == 204
    assert (await client.get(f"/api/chat/conversations/{cid}", headers=auditor_headers)).status_code == 404
    assert (await client.get("/api/chat/conversations")).status_code == 401


async def test_answers_are_cached_until_an_import(client, auditor_headers, store, demo):
    question = "Quelles sont les actions les plus fréquentes hier ?"
    first = await ask(client, auditor_headers, question)
    second = await ask(client, auditor_headers, question)
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["data"] == first["data"] and second["answer"] == first["answer"]
    assert second["conversation_id"] != first["conversation_id"]
    await store.bump_audit_version()  # what every import does
    third = await ask(client, auditor_headers, question)
    assert third["cached"] is False and third["data"] == first["data"]
    stats = (await client.get("/api/cache/stats", headers=auditor_headers)).json()
    assert stats["hits"] >= 1 and stats["entries"] >= 2
    frequent = (await client.get("/api/chat/frequent-questions", headers=auditor_headers)).json()
    assert any(q["question"] == question and q["count"] >= 3 for q in frequent["questions"])


async def test_not_understood_gets_help_not_an_error(client, auditor_headers, demo):
    body = await ask(client, auditor_headers, "zorglub frobnique les quuxes")
    assert body["intent"] == "unknown" and body["data"] is None
    assert "compris" in body["answer"] and len(body["suggestions"]) == 3
    assert all(s in body["answer"] for s in body["suggestions"])
    body = await ask(client, auditor_headers, "bonjour")
    assert body["intent"] == "small_talk" and body["answer"]
    body = await ask(client, auditor_headers, "aide")
    assert body["intent"] == "help" and "Par exemple" in body["answer"]
    r = await client.post("/api/chat/message", json={"message": "   "}, headers=auditor_headers)
    assert r.status_code == 422
    assert (await client.post("/api/chat/message", json={"message": "x"})).status_code == 401


async def test_anomalies_default_to_the_last_seven_days(client, auditor_headers, demo):
    body = await ask(client, auditor_headers, "Y a-t-il des activités suspectes ?")
    assert body["intent"] == "anomalies"
    assert body["data"]["total"] == len(body["data"]["rows"]) > 0
    assert "7 derniers jours" in body["answer"]
    assert any("SYSTEM" in row[2] for row in body["data"]["rows"])  # the planted failed-logon burst


def parse_sse(text: str) -> list[tuple[str, str]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if name:
            events.append((name, "\n".join(data)))
    return events


async def test_stream_without_llm(client, auditor_headers, demo):
    r = await client.post(
        "/api/chat/stream", json={"message": "Quelles sessions ont eu lieu hier ?"}, headers=auditor_headers
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    names = [e[0] for e in events]
    assert names[0] == "meta" and names[-1] == "done" and names.count("token") > 2
    meta, done = json.loads(events[0][1]), json.loads(events[-1][1])
    assert "answer" not in meta and meta["intent"] == "sessions" and meta["data"] == done["data"]
    assert "".join(data for name, data in events if name == "token") == done["answer"]
    assert done["source"] == "template"
    r = await client.post("/api/chat/stream", json={"message": "x", "conversation_id": "nope" * 3},
                          headers=auditor_headers)  # fmt: skip
    assert r.status_code == 200  # a new conversation with the client's id


async def test_stream_stops_when_the_client_leaves(store, app, demo):
    cache = app.state.answer_cache
    request = ChatRequest(message="Quels sont les utilisateurs les plus actifs hier ?")
    prepared = await chat_service.prepare(store, cache=cache, owner="leaver", request=request)
    events = chat_service.stream(store, cache=cache, owner="leaver", request=request, prepared=prepared)
    assert (await anext(events))[0] == "meta"
    assert (await anext(events))[0] == "token"
    await events.aclose()  # what a disconnect does to the generator
    assert await store["conversations"].count_documents({"owner": "leaver"}) == 0


async def test_chatbot_shape_for_the_spa(client, auditor_headers, demo):
    r = await client.post("/api/chatbot", json={"question": "top 5 des utilisateurs les plus actifs"},
                          headers=auditor_headers)  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"type", "data", "summary", "explanation", "columns"}
    assert body["type"] == "top_users" and body["columns"] == ["dbusername", "count"]
    assert len(body["data"]) == 5 and set(body["data"][0]) == {"dbusername", "count"}
    assert body["summary"] and "top_users" in body["explanation"]
    assert (await client.post("/api/chatbot", json={}, headers=auditor_headers)).status_code == 422


@pytest.mark.parametrize("partial", ["qui s'est conn", "activites suspectes", "conexions echouees"])
async def test_suggestions_complete_and_correct(client, auditor_headers, partial):
    r = await client.get(
        "/api/chat/suggestions", params={"partial_message": partial}, headers=auditor_headers
    )
    assert r.status_code == 200 and r.json()["suggestions"]


async def test_questions_about_attached_files(client, auditor_headers, admin_headers):
    text = (
        "Rapport d'audit interne.\n\n"
        "Le compte ADM_MOREAU a supprimé la table LEDGER un soir, hors heures.\n\n"
        "Les sauvegardes sont faites chaque nuit par ETL_BATCH.\n\nAucun incident réseau n'est signalé."
    )
    r = await client.post(
        "/api/files", headers=auditor_headers, files={"file": ("rapport.txt", text.encode(), "text/plain")}
    )
    assert r.status_code == 201, r.text
    file_id = r.json()["id"]
    body = await ask(client, auditor_headers, "Qui a supprimé la table LEDGER ?", file_ids=[file_id])
    assert body["intent"] == "files" and body["source"] == "template"
    assert "ADM_MOREAU" in body["answer"] and body["data"]["rows"][0][0] == "rapport.txt"
    r = await client.post("/api/chat/message", json={"message": "Résume", "file_ids": [file_id]},
                          headers=admin_headers)  # fmt: skip
    assert r.status_code == 404 and r.json()["code"] == "file_not_found"
