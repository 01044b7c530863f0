"""Test fixtures: a real SecantusDB server (or TEST_MONGODB_URI), the app with its lifespan, tokens.

Tests share one event loop (pyproject: session loop scope), one store server and one app.
"""

import os
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

# Settings are read at import: set the test environment before importing the app.
_TMP = Path(tempfile.mkdtemp(prefix="sio-tests-"))
for _name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MONGODB_URI", "ORACLE_DSN", "ORACLE_HOST"):
    os.environ.pop(_name, None)
os.environ.update(
    SECRET_KEY="test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    DEBUG="false",
    SEED_DEMO_DATA="false",
    EMBEDDED_DATA_DIR=str(_TMP / "data"),
    SQLITE_DB_PATH=str(_TMP / "cache.db"),
    LOG_LEVEL="WARNING",
    ADMIN_USERNAME="admin",
    ADMIN_PASSWORD="admin-password-123",
    MONGODB_DB="sio_test",
    REGISTER_MAX_PER_HOUR="100000",
    ORACLE_ALLOWED_HOSTS="db.example,127.0.0.1",  # tests register many accounts from 127.0.0.1
)

import httpx  # noqa: E402
import pytest  # noqa: E402

import rollups  # noqa: E402
from config import settings  # noqa: E402
from database import EmbeddedMongo  # noqa: E402

ADMIN = {"username": "admin", "password": "admin-password-123"}
AUDITOR = {"username": "auditor1", "email": "auditor1@example.com", "password": "auditor-password-1"}
SCRATCH_AUDIT = "actions_audit_scratch"


@pytest.fixture(scope="session")
def mongo_uri() -> str:
    """A real MongoDB wire server: TEST_MONGODB_URI, or SecantusDB in a child process."""
    uri = os.environ.get("TEST_MONGODB_URI")
    if uri:
        yield uri
        return
    server = EmbeddedMongo(data_dir=str(_TMP / "mongo"))
    server.start_sync()
    yield server.uri
    server.stop_sync()


@pytest.fixture(scope="session")
async def app(mongo_uri: str):
    settings.MONGODB_URI = mongo_uri
    from main import app as fastapi_app

    async with fastapi_app.router.lifespan_context(fastapi_app):
        yield fastapi_app


@pytest.fixture(scope="session")
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture(scope="session")
def store(app):
    return app.state.store


async def login(client: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    r = await client.post("/api/auth/login", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture(scope="session")
async def admin_headers(client) -> dict[str, str]:
    return await login(client, ADMIN["username"], ADMIN["password"])


@pytest.fixture(scope="session")
async def auditor_headers(client) -> dict[str, str]:
    r = await client.post("/api/auth/register", json=AUDITOR)
    assert r.status_code in (201, 409), r.text
    return await login(client, AUDITOR["username"], AUDITOR["password"])


class DemoTrail:
    """The demo trail loaded in `actions_audit`, with the events it holds for Python checks."""

    def __init__(self, events: list[dict], end: datetime) -> None:
        self.events = events
        self.end = end


@pytest.fixture(scope="session")
async def demo(store) -> DemoTrail:
    """The default 20,000-event demo trail, ending at the session's start, loaded once."""
    from demo_data import generate
    from ingest import insert_documents

    end = datetime.now(UTC)
    events = generate(n_events=settings.DEMO_EVENTS, days=settings.DEMO_DAYS, seed=7, end=end)
    await store.audit.delete_many({})
    await rollups.reset(store)
    await insert_documents(store, events)
    return DemoTrail(events, end)


@pytest.fixture
async def scratch_audit(store) -> AsyncIterator:
    """Point the audit trail at an empty scratch collection for the test, then back."""
    previous = store.audit_name
    store.audit_name = SCRATCH_AUDIT
    await store.audit.delete_many({})
    await rollups.reset(store)
    try:
        yield store.audit
    finally:
        store.audit_name = previous
        await store.bump_audit_version()


@pytest.fixture(autouse=True)
async def _reset_login_throttle(request):
    """Every test client shares 127.0.0.1: one test's failed logins must not lock out the next."""
    yield
    if "app" in request.fixturenames:
        throttle = getattr(request.getfixturevalue("app").state, "login_throttle", None)
        if throttle is not None:
            await throttle.reset()


@pytest.fixture(scope="session")
def fake_llm():
    """The OpenAI-compatible test server (tests/fake_openai.py) on a loopback port."""
    from tests.fake_openai import FakeOpenAI

    server = FakeOpenAI().start()
    yield server
    server.stop()
