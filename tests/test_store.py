"""The store's life: embedded server start, demo seeding, restart, outage and recovery."""

import asyncio
import contextlib

import httpx
import pytest

from config import settings
from database import AUDIT_INDEXES

pytestmark = pytest.mark.slow


@contextlib.asynccontextmanager
async def fresh_app(monkeypatch, data_dir, **overrides):
    """A second app on its own embedded SecantusDB, through the real lifespan."""
    from main import create_app

    for name, value in {"MONGODB_URI": None, "EMBEDDED_DATA_DIR": str(data_dir), **overrides}.items():
        monkeypatch.setattr(settings, name, value)
    app = create_app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


async def test_first_start_seeds_and_restart_keeps_data_without_seeding_twice(monkeypatch, tmp_path):
    options = {"SEED_DEMO_DATA": True, "DEMO_EVENTS": 800, "MONGODB_DB": "sio_seed_test"}
    async with fresh_app(monkeypatch, tmp_path, **options) as (app, client):
        store = app.state.store
        assert store.kind == "embedded-secantusdb"
        assert await store.audit.count_documents({}) == 800
        assert (await client.get("/api/health")).json()["status"] == "healthy"
        first_ids = await store.audit.distinct("_id")
        version = await store.audit_version()
    async with fresh_app(monkeypatch, tmp_path, **options) as (app, client):
        store = app.state.store
        assert await store.audit.count_documents({}) == 800
        assert await store.audit.distinct("_id") == first_ids
        assert await store.audit_version() == version  # not seeded again


async def test_no_seed_when_disabled_and_indexes_exist(monkeypatch, tmp_path):
    options = {"SEED_DEMO_DATA": False, "MONGODB_DB": "sio_noseed_test"}
    async with fresh_app(monkeypatch, tmp_path, **options) as (app, _):
        store = app.state.store
        assert await store.audit.count_documents({}) == 0
        keys = [list(ix["key"].items()) for ix in await (await store.audit.list_indexes()).to_list()]
        for expected in AUDIT_INDEXES:
            assert [(k, int(v)) for k, v in expected] in [[(k, int(v)) for k, v in ix] for ix in keys]


async def test_store_outage_gives_503_and_the_service_recovers(monkeypatch, tmp_path):
    options = {"SEED_DEMO_DATA": False, "MONGODB_DB": "sio_outage_test", "MONGODB_TIMEOUT_MS": 800}
    async with fresh_app(monkeypatch, tmp_path, **options) as (app, client):
        r = await client.post("/api/auth/login", data={"username": "admin", "password": "admin-password-123"})
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        embedded = app.state.store.embedded
        # The supervisor is paused while the outage is observed: it polls every 2 s and, on a busy
        # machine, restarted the server before the second request (a 200 where a 503 was expected).
        embedded._watch.cancel()
        await asyncio.to_thread(embedded.kill)

        health = await client.get("/api/health")
        assert health.status_code == 503
        assert health.json()["status"] == "unhealthy"
        assert health.json()["dependencies"]["store"]["status"] == "down"
        me = await client.get("/api/auth/me", headers=headers)
        assert me.status_code == 503
        assert me.json()["code"] == "store_unavailable"

        # The supervisor restarts the embedded server; no app restart needed.
        embedded.watch()
        for _ in range(40):
            await asyncio.sleep(0.5)
            if (await client.get("/api/health")).status_code == 200:
                break
        assert (await client.get("/api/health")).json()["status"] == "healthy"
        assert (await client.get("/api/auth/me", headers=headers)).status_code == 200


async def test_a_second_process_shares_the_running_embedded_server(monkeypatch, tmp_path):
    from database import Store

    options = {"SEED_DEMO_DATA": False, "MONGODB_DB": "sio_shared_test"}
    async with fresh_app(monkeypatch, tmp_path, **options) as (app, _):
        owner = app.state.store
        other = Store(uri=None, db_name="sio_shared_test", data_dir=str(tmp_path))
        await other.start()
        try:
            assert other.embedded is None  # it did not start a second server on the same data
            await other.users.insert_one({"_id": "shared"})
            assert await owner.users.find_one({"_id": "shared"}) == {"_id": "shared"}
        finally:
            await other.close()
        assert owner.embedded.is_running()
    assert not (tmp_path / "embedded-mongo.uri").exists()


async def test_audit_version_is_read_at_most_once_per_max_age(store, mongo_uri, monkeypatch):
    import database

    other = database.Store(uri=mongo_uri, db_name=store.db_name)  # another process, say the CLI
    await other.start()
    try:
        monkeypatch.setattr(database, "AUDIT_VERSION_MAX_AGE", 3600)
        before = await store.audit_version()
        bumped = await other.bump_audit_version()
        assert await store.audit_version() == before  # within the max age: the remembered value
        monkeypatch.setattr(database, "AUDIT_VERSION_MAX_AGE", 0)
        assert await store.audit_version() == bumped  # past it: read again
        assert await store.bump_audit_version() == bumped + 1  # own writes are seen at once
        monkeypatch.setattr(database, "AUDIT_VERSION_MAX_AGE", 3600)
        assert await store.audit_version() == bumped + 1
    finally:
        await other.close()
