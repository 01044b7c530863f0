"""The chat's answers on the demo trail: suggestions that are understood and find data, empty results
and their wider follow-up, questions not understood. The writer's own wording is in test_answers.py."""

import asyncio
import re

import chat_service as cs

# ---------------------------------------------------------------------------- against the demo trail


async def ask(client, headers, message: str, conversation_id: str | None = None) -> dict:
    body = {"message": message, "conversation_id": conversation_id}
    r = await client.post("/api/chat/message", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


SAMPLE = [
    "Quels sont les utilisateurs les plus actifs cette semaine ?",
    "Combien de connexions échouées cette semaine ?",
    "Qu'a fait ADM_MOREAU hier soir ?",
    "Quelles tables ont été supprimées ce mois-ci ?",
    "Quelles erreurs ont eu lieu cette semaine ?",
    "Quelles sont les tables les plus consultées ?",
    "Activité par schéma cette semaine",
    "Y a-t-il des activités suspectes cette semaine ?",
    "Quels privilèges ont été accordés ce mois-ci ?",
    "Qui s'est connecté en dehors des heures de bureau cette semaine ?",
    "Quels programmes clients sont utilisés ?",
    "Combien de sessions cette semaine ?",
]


def _has_data(body: dict) -> bool:
    data = body.get("data") or {}
    rows = data.get("rows") or []
    return bool(rows) and not (data.get("columns") == ["count"] and not rows[0][0])


async def test_suggestions_are_understood_and_find_data(client, auditor_headers, demo):
    answers = []
    for i in range(0, len(SAMPLE), 4):
        answers += await asyncio.gather(*(ask(client, auditor_headers, q) for q in SAMPLE[i : i + 4]))
    bad = []
    for question, body in zip(SAMPLE, answers, strict=True):
        assert len(body["suggestions"]) == 3, question
        assert "(s)" not in body["answer"], body["answer"]
        for suggestion in body["suggestions"]:
            got = await ask(client, auditor_headers, suggestion, body["conversation_id"])
            if got["intent"] in ("unknown", "help", "small_talk") or not _has_data(got):
                bad.append((question, suggestion, got["intent"], got["answer"][:120]))
    assert not bad, bad


async def test_not_understood_offers_questions_that_work(client, auditor_headers, demo):
    body = await ask(client, auditor_headers, "blabla patati patata")
    assert body["intent"] == "unknown" and "pas compris" in body["answer"]
    assert len(body["suggestions"]) == 3
    known = set(cs.EXAMPLES)
    assert all(s in known for s in body["suggestions"])
    for s in body["suggestions"]:
        assert s in body["answer"]


async def test_empty_period_answer_and_its_wider_follow_up(client, auditor_headers, demo):
    body = await ask(client, auditor_headers, "Qu'a fait SCOTT le 3 janvier 2020 ?")
    assert body["intent"] == "search_events" and body["data"]["rows"] == []
    assert re.match(r"Aucun événement de SCOTT le 3 janvier 2020 \(03/01/2020\)\.", body["answer"])
    assert body["suggestions"][0] == "Et sur les 30 derniers jours ?"
    wider = await ask(client, auditor_headers, body["suggestions"][0], body["conversation_id"])
    assert wider["intent"] == "search_events" and _has_data(wider)
    assert "SCOTT" in wider["answer"] and "30 derniers jours" in wider["answer"]


async def test_longest_sessions_are_ranked_by_duration(client, auditor_headers, demo):
    body = await ask(client, auditor_headers, "Quelles sessions ont duré le plus longtemps cette semaine ?")
    assert body["intent"] == "duration" and body["plan"]["group_by"] == ["session_id"]
    columns, rows = body["data"]["columns"], body["data"]["rows"]
    durations = [row[columns.index("avg_s")] for row in rows]
    assert durations and durations == sorted(durations, reverse=True)


async def test_not_understood_names_the_unknown_words(client, auditor_headers, demo):
    body = await ask(client, auditor_headers, "combien de patates hier ?")
    assert body["intent"] == "unknown"
    assert "« patates »" in body["answer"]
    assert body["data"] is None


# ---------------------------------------------------------------------------- the partial reading shown


def test_partial_reading_shown_only_when_plausible():
    from datetime import UTC, datetime

    import replies
    from plan import Filters, Period, Plan

    week = Period(start=datetime(2026, 11, 23, tzinfo=UTC), end=datetime(2026, 11, 27, tzinfo=UTC), label="x")
    shown = Plan(filters=Filters(include={"dbusername": ["SCOTT"]}), period=week)
    assert replies.shown_partial(shown) is shown
    text = replies.not_understood_answer(["bidule"], shown, [], ["Q ?"])
    assert "J'ai seulement compris" in text and "SCOTT" in text
    garbled = [
        Plan(filters=Filters(categories=["logoff"], exclude_categories=["logoff"])),
        Plan(filters=Filters(include={"action_name": ["SELECT"]}, exclude={"action_name": ["SELECT"]})),
        Plan(filters=Filters(include={"action_name": ["CREATE TABLE"]}, categories=["destructive"])),
        Plan(filters=Filters(categories=["logon"], exclude={"action_name": ["LOGON"]})),
        Plan(filters=Filters(include={"action_name": ["DELETE"]}, exclude_categories=["dml"])),
        Plan(filters=Filters(include={"dbusername": ["SCOTT"]}), period=week, compare=week),
        Plan(),
    ]
    for plan in garbled:
        assert replies.shown_partial(plan) is None, plan
        assert "seulement compris" not in replies.not_understood_answer(["bidule"], plan, [], ["Q ?"])
        assert replies.partial_question(plan) is None
