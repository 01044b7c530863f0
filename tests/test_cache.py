"""cache_service (SQLite answer cache, action and question statistics) and the /api/cache routes."""

import asyncio
import time
from datetime import UTC, datetime

from cache_service import AnswerCache, normalize_question, plan_cache_key
from plan import Filters, Period, Plan


def _plan(start: datetime, end: datetime) -> Plan:
    return Plan(filters=Filters(categories=["logon"], failed=True), period=Period(start=start, end=end))


def test_key_depends_on_resolved_times_and_version():
    day1 = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC))
    day2 = (datetime(2025, 1, 2, tzinfo=UTC), datetime(2025, 1, 3, tzinfo=UTC))
    a = plan_cache_key(_plan(*day1), notes=[], absent={}, audit_version=1)
    assert a == plan_cache_key(_plan(*day1), notes=[], absent={}, audit_version=1)  # two questions, one plan
    assert a != plan_cache_key(_plan(*day2), notes=[], absent={}, audit_version=1)  # "hier", another day
    assert a != plan_cache_key(_plan(*day1), notes=[], absent={}, audit_version=2)  # after an import
    assert normalize_question("Qu'a fait  ADM_MOREAU hier soir ?") == "qu a fait adm moreau hier soir"


async def test_get_put_ttl_counters_and_cleanup(tmp_path):
    cache = AnswerCache(str(tmp_path / "c.db"), ttl_seconds=1)
    await cache.open()
    try:
        assert await cache.get("k1") is None
        await cache.put("k1", {"answer": "42 événements"}, intent="count_events")
        assert await cache.get("k1") == {"answer": "42 événements"}
        await asyncio.sleep(1.05)
        assert await cache.get("k1") is None  # expired
        stats = await cache.stats()
        assert (stats["hits"], stats["misses"], stats["entries"], stats["expired_entries"]) == (1, 2, 1, 1)
        assert stats["hit_rate"] == round(1 / 3, 4)
        assert (await cache.cleanup())["removed_entries"] == 1
        assert (await cache.stats())["entries"] == 0
    finally:
        await cache.close()


async def test_concurrent_use_and_a_second_connection(tmp_path):
    path = str(tmp_path / "c.db")
    a, b = AnswerCache(path, ttl_seconds=60), AnswerCache(path, ttl_seconds=60)
    await a.open()
    await b.open()
    try:

        async def work(i: int) -> None:
            cache = a if i % 2 else b
            await cache.put(f"k{i}", {"i": i}, intent="top_users")
            assert await cache.get(f"k{i}") == {"i": i}
            cache.record(
                username=f"u{i % 3}", question=f"question {i % 5}", intent="top_users",
                cached=False, source="template", duration_ms=1.0,
            )  # fmt: skip

        await asyncio.gather(*(work(i) for i in range(60)))
        await a.flush()
        await b.flush()
        actions = await a.actions(start=0, end=time.time() + 1)
        assert actions["total"] == 60
        assert {u["username"]: u["count"] for u in actions["by_user"]} == {"u0": 20, "u1": 20, "u2": 20}
        assert (await a.stats())["entries"] == 60
        journal = await (await a.db.execute("PRAGMA journal_mode")).fetchone()
        assert journal[0] == "wal"
    finally:
        await a.close()
        await b.close()


async def test_frequent_questions_and_suggestions(tmp_path):
    cache = AnswerCache(str(tmp_path / "c.db"), ttl_seconds=60)
    await cache.open()
    try:
        for question, n in [("Combien de connexions échouées hier ?", 3), ("Qui a supprimé des tables ?", 1)]:
            for _ in range(n):
                cache.record(
                    username="u", question=question, intent="failed_logins",
                    cached=False, source="template", duration_ms=1,
                )  # fmt: skip
        cache.record(username="u", question="bonjour", intent="small_talk", cached=False, source="template",
                     duration_ms=1)  # fmt: skip
        top = await cache.frequent_questions(username="u", limit=5)
        assert [(q["question"], q["count"]) for q in top] == [
            ("Combien de connexions échouées hier ?", 3),
            ("Qui a supprimé des tables ?", 1),
        ]
        catalogue = ["Combien d'événements aujourd'hui ?", "Quels sont les utilisateurs les plus actifs ?"]
        found = await cache.suggest("combien", username="u", catalogue=catalogue, limit=3)
        assert found[:2] == ["Combien de connexions échouées hier ?", "Combien d'événements aujourd'hui ?"]
        assert (await cache.suggest("utilisateurs plus actfs", username="u", catalogue=catalogue))[
            0
        ] == catalogue[1]
        assert await cache.suggest("", username="u", catalogue=catalogue, limit=1) == [
            "Combien de connexions échouées hier ?"
        ]
        # Another user's words are never offered, nor counted in their frequent questions.
        assert await cache.frequent_questions(username="v", limit=5) == []
        other = await cache.suggest("combien de connexions", username="v", catalogue=catalogue, limit=5)
        assert "Combien de connexions échouées hier ?" not in other
        everyone = await cache.frequent_questions(username=None, limit=5)
        assert everyone[0]["count"] == 3
    finally:
        await cache.close()


async def test_cache_routes(client, auditor_headers, admin_headers, app):
    r = await client.get("/api/cache/stats", headers=auditor_headers)
    assert r.status_code == 200
    assert {"entries", "hits", "misses", "hit_rate", "size_bytes"} <= r.json().keys()
    app.state.answer_cache.record(
        username="auditor1", question="Combien d'événements hier ?", intent="count_events",
        cached=True, source="template", duration_ms=3.0,
    )  # fmt: skip
    r = await client.get("/api/cache/actions?timeframe=1h", headers=auditor_headers)
    assert r.status_code == 200
    body = r.json()
    assert body["total"] >= 1 and any(i["intent"] == "count_events" for i in body["by_intent"])
    assert any(u["username"] == "auditor1" for u in body["by_user"])
    app.state.answer_cache.record(
        username="someone_else", question="Qui a supprimé SALARIES ?", intent="count_events",
        cached=False, source="template", duration_ms=3.0,
    )  # fmt: skip
    # An auditor sees only their own activity; an admin sees everyone's.
    mine = (await client.get("/api/cache/actions?timeframe=1h", headers=auditor_headers)).json()
    assert {u["username"] for u in mine["by_user"]} == {"auditor1"}
    every = (await client.get("/api/cache/actions?timeframe=1h", headers=admin_headers)).json()
    assert {"auditor1", "someone_else"} <= {u["username"] for u in every["by_user"]}
    frequent = (await client.get("/api/chat/frequent-questions", headers=auditor_headers)).json()
    assert "Qui a supprimé SALARIES ?" not in [q["question"] for q in frequent["questions"]]
    assert (await client.get("/api/cache/actions?timeframe=soon", headers=auditor_headers)).status_code == 422
    assert (await client.post("/api/cache/cleanup", headers=auditor_headers)).status_code == 403
    r = await client.post("/api/cache/cleanup", headers=admin_headers)
    assert r.status_code == 200 and "removed_entries" in r.json()
    assert (await client.get("/api/cache/stats")).status_code == 401
    health = (await client.get("/api/health")).json()
    assert health["dependencies"]["cache"]["status"] == "up"


async def test_suggestion_routes(client, auditor_headers):
    r = await client.get("/api/chat/suggestions", params={"partial_message": "connexions échou"},
                         headers=auditor_headers)  # fmt: skip
    assert r.status_code == 200
    assert any("connexions échouées" in s for s in r.json()["suggestions"])
    r = await client.get("/api/chat/frequent-questions?limit=5", headers=auditor_headers)
    assert r.status_code == 200 and isinstance(r.json()["questions"], list)
    assert (
        await client.get("/api/chat/frequent-questions?limit=0", headers=auditor_headers)
    ).status_code == 422


async def test_suggestions_leave_out_questions_that_do_not_stand_alone(tmp_path):
    cache = AnswerCache(str(tmp_path / "c.db"), ttl_seconds=60)
    await cache.open()
    try:
        for question, intent in [
            ("Et hier ?", "failed_logins"),  # a follow-up: meaningless on its own
            ("blorp zzz qwe", "unknown"),  # not understood
            ("Combien de DELETE cette semaine ?", "count_events"),
        ]:
            for _ in range(5):
                cache.record(username="u", question=question, intent=intent, cached=False,
                             source="template", duration_ms=1)  # fmt: skip
        found = await cache.suggest(
            "", username="u", catalogue=["Qui a supprimé des tables hier soir ?"], limit=10
        )
        assert found == ["Combien de DELETE cette semaine ?", "Qui a supprimé des tables hier soir ?"]
        assert "Et hier ?" in [q["question"] for q in await cache.frequent_questions(username="u", limit=10)]
    finally:
        await cache.close()
