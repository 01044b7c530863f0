"""Inputs that used to give a 500: each gets a 4xx with a French message, and the service goes on."""

import json


async def _ok_afterwards(client, headers) -> None:
    r = await client.post(
        "/api/chat/message", headers=headers, json={"message": "Combien d'événements hier ?"}
    )
    assert r.status_code == 200, r.text


async def test_analyze_with_an_unknown_field_in_previous_exclude(client, auditor_headers):
    previous = {"filters": {"exclude": {"no_such_field": ["X"]}}}
    r = await client.post(
        "/api/audit/analyze", headers=auditor_headers, json={"query": "et hier ?", "previous": previous}
    )
    assert r.status_code == 422, r.text
    assert "no_such_field" in r.text
    for bad in ({"dbusername": [{"$where": "1"}]}, {"dbusername": "SCOTT"}):
        previous = {"filters": {"exclude": bad}}
        r = await client.post(
            "/api/audit/analyze", headers=auditor_headers, json={"query": "et hier ?", "previous": previous}
        )
        assert r.status_code == 422, r.text


async def test_long_quoted_sql_fragments(client, auditor_headers, demo):
    for message in (
        'requêtes contenant "' + "a" * 1001 + '"',
        "requêtes contenant '" + "(" * 600 + "'",
        'sql contenant "' + "(" * 1990 + '"',
    ):
        r = await client.post("/api/chat/message", headers=auditor_headers, json={"message": message[:2000]})
        assert r.status_code in (200, 400), r.text
        if r.status_code == 400:
            assert r.json()["code"] and "trop long" in r.json()["detail"]
    await _ok_afterwards(client, auditor_headers)


async def test_deeply_nested_json_uploads(client, admin_headers, scratch_audit):
    deep = b"[" * 100_000
    r = await client.post("/api/audit/import", headers=admin_headers, files={"file": ("x.json", deep)})
    assert r.status_code in (400, 415, 422), r.text
    assert "imbriqu" in r.json()["detail"]
    deep_row = (
        '{"event_timestamp": "2026-11-20T10:00:00", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    ).encode()
    r = await client.post("/api/audit/import", headers=admin_headers, files={"file": ("x.jsonl", deep_row)})
    assert r.status_code in (200, 400, 422), r.text
    r = await client.post("/api/files", headers=admin_headers, files={"file": ("x.json", deep)})
    assert r.status_code in (200, 201, 400, 415, 422), r.text
    await _ok_afterwards(client, admin_headers)


async def test_deep_json_body(client, auditor_headers):
    body = '{"message": ' + "[" * 50_000 + "]" * 50_000 + "}"
    r = await client.post(
        "/api/chat/message",
        headers={**auditor_headers, "content-type": "application/json"},
        content=body.encode(),
    )
    assert 400 <= r.status_code < 500, r.text
    json.loads(r.text)


async def test_long_sql_fragments_in_search_and_analyze(client, auditor_headers, demo):
    for text in ("a" * 1001, "(" * 600, '"' + "x " * 700 + '"'):
        r = await client.get("/api/audit/search", headers=auditor_headers, params={"sql_text": text})
        assert r.status_code in (200, 422), (text[:5], r.text[:200])
        if r.status_code == 422:
            assert "au plus 500" in r.text
        r = await client.post(
            "/api/audit/analyze",
            headers=auditor_headers,
            json={"query": f"requêtes contenant '{text}'"[:2000]},
        )
        assert r.status_code in (200, 422), r.text[:200]
