"""Health, info, the error shape and request ids."""

from models import HealthResponse


async def test_health_is_healthy_and_public(client):
    r = await client.get("/api/health")
    assert r.status_code == 200
    body = HealthResponse.model_validate(r.json())
    assert body.status == "healthy"
    assert body.dependencies["store"].status == "up"
    assert body.dependencies["store"].latency_ms is not None
    assert body.dependencies["llm"].status == "not_configured"


async def test_info_reports_store_and_counts(client, admin_headers, auditor_headers):
    r = await client.get("/api/info")
    assert r.status_code == 200
    body = r.json()
    assert body["store"] in ("embedded-secantusdb", "mongodb")
    assert body["counts"] == {}  # nothing is counted for a visitor without a token
    assert set((await client.get("/api/info", headers=auditor_headers)).json()["counts"]) == {"audit_events"}
    assert set((await client.get("/api/info", headers=admin_headers)).json()["counts"]) == {
        "audit_events",
        "users",
    }


async def test_errors_are_json_with_code_and_request_id(client):
    r = await client.get("/api/does-not-exist", headers={"X-Request-ID": "abc123"})
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"detail": "Not Found", "code": "not_found", "request_id": "abc123"}
    assert r.headers["x-request-id"] == "abc123"


async def test_every_response_has_a_request_id(client):
    r = await client.get("/api/health")
    assert len(r.headers["x-request-id"]) == 32


async def test_validation_error_shape_hides_inputs(client):
    r = await client.post("/api/auth/register", json={"username": "x", "password": "secret-pw"})
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "validation_error"
    assert "secret-pw" not in r.text
    assert {tuple(e["loc"]) for e in body["errors"]} >= {("body", "username"), ("body", "email")}


async def test_body_over_the_limit_gets_413(client, app):
    from config import settings

    r = await client.post(
        "/api/auth/login",
        content=b"x" * 10,
        headers={"content-length": str(settings.MAX_JSON_BODY_KB * 1024 + 1)},
    )
    assert r.status_code == 413
    assert r.json()["code"] == "payload_too_large"


async def test_validation_messages_are_in_french(client, auditor_headers):
    r = await client.post("/api/chat/message", headers=auditor_headers, json={"message": "", "file_ids": 3})
    messages = {tuple(e["loc"]): e["msg"] for e in r.json()["errors"]}
    assert messages[("body", "message")] == "au moins 1 caractère(s)"
    assert messages[("body", "file_ids")] == "doit être une liste"
    r = await client.post("/api/chat/message", headers=auditor_headers, json={"message": "   "})
    assert r.json()["errors"][0]["msg"] == "le message est vide"
    r = await client.get("/api/audit/search?limit=0", headers=auditor_headers)
    assert r.json()["errors"][0]["msg"] == "doit être supérieur ou égal à 1"
