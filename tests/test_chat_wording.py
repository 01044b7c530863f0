"""Wording of the chat's template answers: singular/plural, periods, filters, empty results, suggestions."""

import asyncio
import re
from datetime import datetime, timedelta

import pytest

import chat_service as cs
from config import settings
from models import Analysis, AuditFilters, Intent, QueryResult, TimeRange

TZ = settings.tz


def day(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=TZ)


def analysis(intent: Intent, said: str | None = None, **filters) -> Analysis:
    f = AuditFilters(**filters)
    tr = TimeRange(start=f.start, end=f.end, text=said) if said else None
    return Analysis(question="q", intent=intent, filters=f, time_range=tr)


def count(n: int) -> QueryResult:
    return QueryResult(columns=["count"], rows=[[n]], total=n)


def test_counts_take_the_right_singular_or_plural():
    a = analysis(Intent.FAILED_LOGINS, "hier", start=day(2025, 11, 20), end=day(2025, 11, 21))
    assert cs.template_answer(a, count(1)) == "1 connexion échouée hier (jeudi 20/11/2025)."
    assert cs.template_answer(a, count(39)).startswith("39 connexions échouées hier")
    assert cs.template_answer(a, count(1234)).startswith("1\u202f234 connexions échouées")
    events = analysis(Intent.COUNT_EVENTS, count_only=True)
    assert cs.template_answer(events, count(1)) == "1 événement sur toute la période."
    assert cs.template_answer(events, count(2)) == "2 événements sur toute la période."
    grants = analysis(Intent.PRIVILEGES, action_name=["REVOKE"])
    assert cs.template_answer(grants, count(1)).startswith("1 retrait de privilège (REVOKE)")


def test_no_plural_in_brackets_in_answers():
    ranked = QueryResult(columns=["dbusername", "count"], rows=[["SCOTT", 1]], total=1)
    for intent in (Intent.TOP_USERS, Intent.LIST_USERS, Intent.ERRORS, Intent.TOP_ACTIONS):
        text = cs.template_answer(analysis(intent), ranked)
        assert "(s)" not in text and "SCOTT (1)" in text, text


def test_periods_are_said_in_short_french():
    assert cs.span_text(day(2025, 11, 20), day(2025, 11, 21)) == "jeudi 20/11/2025"
    assert cs.span_text(day(2025, 11, 17), day(2025, 11, 24)) == "du 17 au 23/11/2025"
    assert cs.span_text(day(2025, 11, 1), day(2025, 12, 1)) == "novembre 2025"
    assert cs.span_text(day(2025, 1, 1), day(2026, 1, 1)) == "année 2025"
    assert cs.span_text(day(2025, 10, 27), day(2025, 11, 3)) == "du 27/10 au 02/11/2025"
    assert cs.span_text(day(2025, 11, 20, 18), day(2025, 11, 21)) == "le 20/11/2025 de 18:00 à minuit"
    assert cs.span_text(day(2025, 11, 20, 8, 44), day(2025, 11, 21, 8, 44)) == (
        "du 20/11/2025 08:44 au 21/11/2025 08:44"
    )
    a = analysis(Intent.TOP_USERS, "en 2019", start=day(2019, 1, 1), end=day(2020, 1, 1))
    assert cs.period_text(a.filters, a) == " en 2019"  # not 'en 2019 (année 2019)'


def test_filters_are_said_in_words_not_field_names():
    a = analysis(
        Intent.TOP_USERS, dbusername=["SCOTT"], userhost=["pc-1"], object_schema=["SALES"],
        object_name=["ORDERS"], client_program_name=["Toad.exe"],
    )  # fmt: skip
    text = cs.filters_text(a.filters)
    assert text == " pour SCOTT depuis la machine pc-1 avec Toad.exe sur SALES.ORDERS"
    headline = cs.template_answer(
        analysis(Intent.TOP_USERS, start=day(2025, 11, 1), end=day(2025, 12, 1)),
        QueryResult(columns=["dbusername", "count"], rows=[["A", 3], ["B", 2]], total=5),
    )
    assert headline == "Utilisateurs les plus actifs (novembre 2025) : A (3), B (2), sur 5 événements."
    drops = analysis(Intent.OBJECT_CHANGES, action_name=["DROP TABLE"])
    assert cs.unit_for(drops, drops.filters).of(2) == "2 suppressions de table"
    assert "action" not in cs.filters_text(drops.filters, cs.unit_for(drops, drops.filters))


def test_excluded_values_are_said():
    if "exclude" not in AuditFilters.model_fields:
        pytest.skip("AuditFilters.exclude not there yet")
    f = AuditFilters(exclude={"dbusername": ["SCOTT", "SYS"], "action_name": ["SELECT"]})
    assert cs.filters_text(f) == " hors SCOTT et SYS sauf les SELECT"


def test_empty_result_says_nothing_was_found_and_proposes_a_wider_period():
    now = datetime.now(TZ)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    a = analysis(
        Intent.FAILED_LOGINS, "hier", start=start, end=start + timedelta(days=1), dbusername=["SCOTT"]
    )
    text = cs.template_answer(a, count(0))
    assert text.startswith("Aucune connexion échouée pour SCOTT hier (")
    assert "« Et sur les 30 derniers jours ? »" in text
    assert cs.suggestions_for(a, count(0))[0] == "Et sur les 30 derniers jours ?"
    whole = analysis(Intent.USER_ACTIVITY, dbusername=["SCOTT"])
    empty = QueryResult(columns=["dbusername", "events"], rows=[], total=0)
    assert cs.template_answer(whole, empty) == "Aucune activité pour SCOTT sur toute la période."


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
    known = {*cs.EXAMPLES, *cs.DEFAULT_NEXT}
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
