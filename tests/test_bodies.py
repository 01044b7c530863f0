"""Bodies: a token is checked before a body is read, and each route reads at most its own limit."""

from collections.abc import AsyncIterator

from config import settings


async def _chunks(total: int, size: int = 65536) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


async def test_no_token_no_body_read(client):
    received = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal received
        for _ in range(1600):  # 100 MB if it were all read
            received += 65536
            yield b"x" * 65536

    r = await client.post("/api/chat/message", content=body(), headers={"content-type": "application/json"})
    assert r.status_code == 401
    assert r.json()["code"] == "not_authenticated"
    assert r.headers["www-authenticate"] == "Bearer"
    assert received <= 65536 * 2  # the transport may pull a chunk; the app reads none
    for token in ("garbage", "a.b.c", ""):
        r = await client.post(
            "/api/chat/message", json={"message": "x"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 401


async def test_json_routes_take_a_few_kilobytes(client, auditor_headers):
    big = {"message": "x" * (settings.MAX_JSON_BODY_KB * 1024)}
    r = await client.post("/api/chat/message", headers=auditor_headers, json=big)
    assert r.status_code == 413
    assert r.json()["code"] == "payload_too_large" and "Ko" in r.json()["detail"]


async def test_chunked_body_over_the_limit_gets_413(client, auditor_headers):
    total = settings.MAX_JSON_BODY_KB * 1024 * 3
    headers = {**auditor_headers, "content-type": "application/json"}
    r = await client.post("/api/chat/message", headers=headers, content=_chunks(total))
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "payload_too_large"


async def test_uploads_keep_their_own_limit(client, admin_headers, scratch_audit, monkeypatch):
    # An upload route takes more than a JSON route: 1 MB of CSV passes the body check.
    csv = b"EVENT_TIMESTAMP,DBUSERNAME\n" + b"2026-11-20 10:00:00,SCOTT\n" * 40_000
    r = await client.post("/api/audit/import", headers=admin_headers, files={"file": ("a.csv", csv)})
    assert r.status_code == 200, r.text
    # A chunked upload over the route's limit is a 413, not "error parsing the body".
    total = settings.IMPORT_MAX_MB * 2**20 + 2**20 + 1
    headers = {**admin_headers, "content-type": "multipart/form-data; boundary=xyz"}

    async def upload() -> AsyncIterator[bytes]:
        yield b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
        async for chunk in _chunks(total, 2**20):
            yield chunk

    r = await client.post("/api/audit/import", headers=headers, content=upload())
    assert r.status_code == 413, r.text


async def test_login_and_register_need_no_token(client):
    r = await client.post("/api/auth/login", data={"username": "nobody", "password": "x"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"


async def test_security_headers(client, auditor_headers):
    r = await client.post("/api/auth/login", data={"username": "nobody", "password": "x"})
    assert r.headers["cache-control"] == "no-store"
    r = await client.get("/api/audit/count", headers=auditor_headers)
    for name in ("content-security-policy", "x-frame-options", "referrer-policy", "x-content-type-options"):
        assert name in r.headers, name
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
    docs = await client.get("/docs")
    assert "'unsafe-inline'" in docs.headers["content-security-policy"]
    assert "cache-control" not in docs.headers or docs.headers["cache-control"] != "no-store"
