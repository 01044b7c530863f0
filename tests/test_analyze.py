"""`/api/audit/analyze`: the chat's own reading of a question (one reader), without running it."""

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import chat_service
import understand
from ingest import event_id


async def _analyze(client, headers, query: str, previous: dict | None = None):
    body: dict = {"query": query} | ({"previous": previous} if previous is not None else {})
    return await client.post("/api/audit/analyze", json=body, headers=headers)


async def test_a_question_becomes_the_plan_the_chat_answers(client, auditor_headers, demo) -> None:
    question = "Combien de DELETE par TPETIT la semaine dernière ?"
    r = await _analyze(client, auditor_headers, question)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["understood"] and body["kind"] == "plan" and body["intent"] == "count_events"
    assert body["plan"]["spec"]["filters"]["include"] == {"dbusername": ["TPETIT"], "action_name": ["DELETE"]}
    assert body["entities"]["users"] == ["TPETIT"] and body["entities"]["time"] == ["la semaine dernière"]
    chat = await client.post("/api/chat/message", json={"message": question}, headers=auditor_headers)
    assert chat.json()["plan"]["spec"] == body["plan"]["spec"]


async def test_a_follow_up_reads_from_the_previous_plan(client, auditor_headers, demo) -> None:
    first = (await _analyze(client, auditor_headers, "Combien de DELETE hier ?")).json()
    r = await _analyze(client, auditor_headers, "et pour TPETIT ?", previous=first["plan"]["spec"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["follow_up"] and body["understood"]
    include = body["plan"]["spec"]["filters"]["include"]
    assert include == {"action_name": ["DELETE"], "dbusername": ["TPETIT"]}
    assert body["plan"]["spec"]["period"] == first["plan"]["spec"]["period"]


async def test_words_not_understood_are_named_and_no_plan_is_offered_as_the_answer(
    client, auditor_headers, demo
) -> None:
    body = (await _analyze(client, auditor_headers, "combien de patates hier ?")).json()
    assert body["kind"] == "not_understood" and not body["understood"]
    assert body["intent"] == "unknown" and body["confidence"] < 0.5
    assert body["unknown"] == ["patates"] and body["entities"]["unknown_terms"] == ["patates"]


async def test_help_small_talk_and_out_of_scope(client, auditor_headers) -> None:
    kinds = {}
    for q in ("que sais-tu faire ?", "bonjour", "quelle est la table la plus volumineuse ?"):
        body = (await _analyze(client, auditor_headers, q)).json()
        kinds[q] = (body["kind"], body["intent"], body["understood"])
    assert kinds["que sais-tu faire ?"] == ("help", "help", False)
    assert kinds["bonjour"] == ("small_talk", "small_talk", False)
    assert kinds["quelle est la table la plus volumineuse ?"] == ("out_of_scope", "out_of_scope", False)


async def test_a_named_value_absent_from_the_trail_is_reported(
    client, auditor_headers, store, scratch_audit
) -> None:
    before = (await _analyze(client, auditor_headers, "qu'a fait l'utilisateur ZELDA_APP ?")).json()
    assert before["absent"] == {"dbusername": ["ZELDA_APP"]} and before["entities"]["not_found"] == [
        "ZELDA_APP"
    ]
    doc = {
        "event_timestamp": datetime.now(UTC) - timedelta(hours=1),
        "dbusername": "ZELDA_APP",
        "userhost": "zelda-host",
        "client_program_name": "zelda.exe",
        "action_name": "SELECT",
        "return_code": 0,
        "object_schema": "HR",
        "object_name": "EMPLOYEES",
    }
    doc["_id"] = event_id(doc)
    await scratch_audit.insert_one(doc)
    await store.bump_audit_version()  # what every import does
    after = (await _analyze(client, auditor_headers, "qu'a fait zelda_app depuis zelda-host ?")).json()
    assert after["plan"]["spec"]["filters"]["include"] == {
        "dbusername": ["ZELDA_APP"],
        "userhost": ["zelda-host"],
    }
    assert not after["absent"]


async def test_reading_runs_off_the_event_loop(store, demo, monkeypatch) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []
    real = understand.read

    def spy(*args, **kwargs):
        seen.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(understand, "read", spy)
    await asyncio.gather(
        *(chat_service.analyze(store, f"qu'a fait SCOTT il y a {i + 10} jours ?", None) for i in range(3))
    )
    assert seen and loop_thread not in seen


async def test_route_requires_a_token(client) -> None:
    r = await client.post("/api/audit/analyze", json={"query": "qu'a fait SCOTT ?"})
    assert r.status_code == 401 and r.json()["code"]


async def test_route_rejects_bad_input(client, auditor_headers) -> None:
    for body in ({"query": ""}, {"query": "   "}, {}, {"query": "x" * 2001}):
        r = await client.post("/api/audit/analyze", json=body, headers=auditor_headers)
        assert r.status_code in (400, 422), (body, r.status_code)
        assert r.json()["code"]


async def test_health_reports_the_known_values(client, auditor_headers, demo) -> None:
    await _analyze(client, auditor_headers, "qu'a fait SCOTT ?")
    nlp = (await client.get("/api/health")).json()["dependencies"]["nlp"]
    assert nlp["status"] == "up" and "valeurs connues" in nlp["detail"]
