"""Documents the queries did not expect: wrong types from an import, or from another writer."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.errors import WriteError

import audit_shape
from demo_data import generate

NOW = datetime.now(UTC)

# Values of every shape another writer could leave in a text column.
STRANGE = [123, 4.5, True, {"a": 1}, [1, 2], ["SCOTT"], None, {"$date": 1}, "", "x" * 5000]


def _foreign_docs() -> list[dict]:
    docs = []
    for i, value in enumerate(STRANGE):
        for field in ("dbusername", "userhost", "action_name", "object_name", "client_program_name"):
            docs.append(
                {
                    "_id": f"foreign-{field}-{i}",
                    "event_timestamp": NOW - timedelta(hours=i + 1),
                    "dbusername": "SCOTT",
                    "action_name": "SELECT",
                    "return_code": 0,
                    field: value,
                }
            )
    # Broken timestamps, codes and session ids, and a document with almost nothing.
    docs += [
        {"_id": "foreign-ts-str", "event_timestamp": "hier", "dbusername": "SCOTT"},
        {"_id": "foreign-ts-none", "dbusername": "SCOTT"},
        {"_id": "foreign-rc", "event_timestamp": NOW, "return_code": "1017", "dbusername": "X"},
        {"_id": "foreign-rc-obj", "event_timestamp": NOW, "return_code": {"a": 1}},
        {"_id": "foreign-sid", "event_timestamp": NOW, "session_id": [1], "action_name": "LOGON"},
        {"_id": "foreign-empty"},
    ]
    return docs


@pytest.fixture
async def hostile_trail(scratch_audit, store):
    """A trail where another tool wrote documents of every shape before the validator was set."""
    events = generate(n_events=500, days=3, seed=3, end=NOW)
    await scratch_audit.insert_many(events)
    foreign = _foreign_docs()
    await scratch_audit.insert_many(foreign, bypass_document_validation=True)
    quarantine = store.db[store.audit_name + audit_shape.QUARANTINE_SUFFIX]
    await quarantine.delete_many({})
    await audit_shape.protect(store)
    # What start-up does in the background: the documents that do not fit are set aside, not lost.
    moved = await audit_shape.quarantine(store)
    unreadable = [d for d in foreign if not _fits(d)]
    assert moved == len(unreadable) == await quarantine.count_documents({})
    assert await scratch_audit.count_documents({}) == len(events) + len(foreign) - moved
    return scratch_audit


def _fits(doc: dict) -> bool:
    if not isinstance(doc.get("event_timestamp"), datetime):
        return False
    for name, kind in audit_shape.COLUMN_TYPES.items():
        value = doc.get(name)
        if name != "event_timestamp" and value is not None and (type(value) is not kind):
            return False
    return True


async def test_another_writer_cannot_store_a_document_the_queries_cannot_read(store, hostile_trail):
    for bad in ({"event_timestamp": NOW, "dbusername": {"a": 1}}, {"event_timestamp": "hier"}, {"x": 1}):
        with pytest.raises(WriteError) as info:
            await hostile_trail.insert_one(bad)
        assert info.value.code == 121
    await hostile_trail.insert_one({"event_timestamp": NOW, "dbusername": "OK", "custom": {"any": 1}})


QUESTIONS = [
    "Combien d'événements hier ?",
    "Qui sont les utilisateurs les plus actifs ?",
    "Répartition par action",
    "Quelles machines se sont connectées ?",
    "Combien d'utilisateurs différents ?",
    "Durée des sessions par utilisateur",
    "Connexions échouées par hôte",
    "Y a-t-il des anomalies ?",
    "Dernière action de SCOTT",
    "Quels programmes sont utilisés ?",
]


async def test_chat_survives_documents_of_another_writer(client, admin_headers, hostile_trail):
    failed = []
    for q in QUESTIONS:
        r = await client.post("/api/chat/message", headers=admin_headers, json={"message": q})
        if r.status_code != 200:
            failed.append((q, r.status_code))
    assert not failed


ROUTES = [
    "/api/audit/search",
    "/api/audit/search?dbusername=SCOTT",
    "/api/audit/count",
    "/api/audit/stats",
    "/api/audit/stats/dbusername",
    "/api/audit/stats/userhost",
    "/api/audit/distinct/dbusername",
    "/api/audit/distinct/action_name",
    "/api/audit/timeline",
    "/api/audit/user-activity?username=SCOTT",
    "/api/audit/objects",
    "/api/audit/objects/changes",
    "/api/audit/sessions",
    "/api/audit/off-hours",
    "/api/audit/anomalies?timeframe=7d",
]


async def test_analytics_survive_documents_of_another_writer(client, admin_headers, hostile_trail):
    failed = []
    for url in ROUTES:
        r = await client.get(url, headers=admin_headers)
        if r.status_code != 200:
            failed.append((url, r.status_code))
    assert not failed
    r = await client.get("/api/audit/events/foreign-dbusername-9", headers=admin_headers)
    assert r.status_code == 200, r.text
    r = await client.post("/api/audit/analyze", headers=admin_headers, json={"query": "actions de SCOTT"})
    assert r.status_code == 200, r.text


async def test_import_checks_the_type_of_each_column(client, admin_headers, scratch_audit):
    base = {"event_timestamp": "2026-11-20T10:00:00+00:00", "action_name": "SELECT"}
    rows = [
        {**base, "dbusername": 123},  # 1: lossless: stored as "123"
        {**base, "dbusername": {"a": 1}},  # 2: refused
        {**base, "dbusername": ["SCOTT"]},  # 3: refused
        {**base, "userhost": True},  # 4: refused
        {**base, "return_code": "1017"},  # 5: lossless: 1017
        {**base, "return_code": [1]},  # 6: refused
        {**base, "session_id": 12.0},  # 7: lossless: 12
        {**base, "dbusername": "HR", "custom_column": {"nested": {"$where": "1"}}},  # 8: kept as JSON text
        {**base, "dbusername": "HR", "sql_text": 42},  # 9: "42"
    ]
    body = ("\n".join(json.dumps(r) for r in rows) + "\n").encode()
    r = await client.post("/api/audit/import", headers=admin_headers, files={"file": ("x.jsonl", body)})
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["inserted"] == 5
    assert [e["line"] for e in result["errors"]] == [2, 3, 4, 6]
    assert all(
        "DBUSERNAME" in e["message"] or "USERHOST" in e["message"] or "RETURN_CODE" in e["message"]
        for e in result["errors"]
    ), result["errors"]
    docs = {d.get("dbusername"): d async for d in scratch_audit.find({})}
    assert "123" in docs
    assert await scratch_audit.count_documents({"return_code": 1017}) == 1
    assert await scratch_audit.count_documents({"session_id": 12}) == 1
    hr = [d async for d in scratch_audit.find({"dbusername": "HR"})]
    assert {type(d.get("custom_column")) for d in hr} == {str, type(None)}
    assert any(d.get("sql_text") == "42" for d in hr)


@pytest.mark.parametrize("with_broken_timestamps", [False, True])
async def test_the_sweep_in_time_windows_sets_aside_what_a_whole_scan_would(
    scratch_audit, store, with_broken_timestamps
) -> None:
    """With rollups (a span to walk), the windows find the dated misfits; the rest by one scan."""
    import rollups
    from ingest import insert_documents

    await insert_documents(store, generate(n_events=500, days=3, seed=3, end=NOW))
    assert await rollups.span(store) is not None
    foreign = [
        d for d in _foreign_docs() if with_broken_timestamps or isinstance(d.get("event_timestamp"), datetime)
    ]
    await scratch_audit.insert_many(foreign, bypass_document_validation=True)
    quarantine = store.db[store.audit_name + audit_shape.QUARANTINE_SUFFIX]
    await quarantine.delete_many({})
    unfit = {d["_id"] for d in foreign if not _fits(d)}
    assert await audit_shape.quarantine(store) == len(unfit)
    assert {d["_id"] for d in await quarantine.find({}, {"_id": 1}).to_list()} == unfit
    assert await scratch_audit.count_documents({"_id": {"$in": list(unfit)}}) == 0
