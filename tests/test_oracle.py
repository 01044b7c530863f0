"""Oracle area: configuration, the SQL console, pool, metrics stream and audit trail sync.

No Oracle runs here. Unreachable Oracle is a free loopback port where nothing listens; what needs a
live session uses a stand-in pool with python-oracledb's interface (acquire/release/drop,
cursor.execute/fetchmany/description), recording what the service sends.
"""

import asyncio
import contextlib
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import oracledb
import pytest
import uvicorn

import oracle_service as svc
from config import settings
from database import free_port

CONFIGURED = {"dsn": "db.example:1521/FREEPDB1", "username": "audit_ro", "password": "s3cret-pw"}


# --------------------------------------------------------------------------- the stand-in


class FakeDatabase:
    """What the stand-in pool answers; `log` holds (connection id, statement, binds, fetch_lobs)."""

    def __init__(self) -> None:
        self.log: list[tuple] = []
        self.columns: list[str] = ["N"]
        self.rows: list[tuple] = []
        self.error: Exception | None = None
        self.audit: list[dict] = []  # rows of UNIFIED_AUDIT_TRAIL, column names upper case
        self.fetch_sizes: list[int] = []
        self.pools: list[FakePool] = []
        self.delay = 0.0

    def factory(self, **kwargs):
        pool = FakePool(self, **kwargs)
        self.pools.append(pool)
        return pool


class FakeCursor:
    def __init__(self, conn: "FakeConnection") -> None:
        self.conn = conn
        self.arraysize = 100
        self.prefetchrows = 2
        self.description = None
        self._rows: list[tuple] = []
        self.closed = False

    async def execute(self, statement, parameters=None, *, fetch_lobs=None, **kwargs):
        db = self.conn.db
        db.log.append((self.conn.id, statement, parameters, fetch_lobs))
        if db.delay:
            await asyncio.sleep(db.delay)
        upper = statement.upper()
        if upper.startswith(("SET TRANSACTION", "ALTER SESSION")):
            self.description = None
            return
        if "FROM UNIFIED_AUDIT_TRAIL" in upper and ":SINCE" in upper:
            names = [c.strip() for c in statement.split("SELECT", 1)[1].split("FROM")[0].split(",")]
            since = parameters["since"]
            rows = sorted(
                (r for r in db.audit if r["EVENT_TIMESTAMP"] >= since), key=lambda r: r["EVENT_TIMESTAMP"]
            )
            self.description = [(n, None, None, None, None, None, True) for n in names]
            self._rows = [tuple(r.get(n) for n in names) for r in rows]
            return
        if db.error is not None:
            raise db.error
        self.description = [(c, None, None, None, None, None, True) for c in db.columns]
        self._rows = list(db.rows)

    async def fetchmany(self, size=None):
        size = size or self.arraysize
        self.conn.db.fetch_sizes.append(size)
        chunk, self._rows = self._rows[:size], self._rows[size:]
        return chunk

    def close(self):
        self.closed = True


class FakeConnection:
    ids = 0

    def __init__(self, db: FakeDatabase) -> None:
        FakeConnection.ids += 1
        self.id = FakeConnection.ids
        self.db = db
        self.call_timeout = 0
        self.version = "23.5.0.24.7"
        self.rollbacks = 0

    def cursor(self):
        return FakeCursor(self)

    async def ping(self):
        return None

    async def rollback(self):
        self.rollbacks += 1


class FakePool:
    def __init__(self, db: FakeDatabase, **kwargs) -> None:
        self.db = db
        self.kwargs = kwargs
        self.min, self.max = kwargs["min"], kwargs["max"]
        self.opened = self.min
        self.busy = 0
        self.acquired = 0
        self.released: list[FakeConnection] = []
        self.dropped: list[FakeConnection] = []
        self.closed = False

    async def acquire(self):
        self.acquired += 1
        self.busy += 1
        self.opened = max(self.opened, self.busy)
        return FakeConnection(self.db)

    async def release(self, conn):
        self.busy -= 1
        self.released.append(conn)

    async def drop(self, conn):
        self.busy -= 1
        self.opened -= 1
        self.dropped.append(conn)

    async def close(self, force=False):
        self.closed = True


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def oracle(app):
    """The app's Oracle service, put back unconfigured after the test."""
    service: svc.OracleService = app.state.oracle
    factory = service.pool_factory
    yield service
    service.pool_factory = factory
    await service.configure(svc.OracleConfig.from_settings(settings))
    await service.close_pool()


@pytest.fixture
async def fake_db(oracle) -> FakeDatabase:
    """The app's Oracle service configured on the stand-in pool."""
    db = FakeDatabase()
    oracle.pool_factory = db.factory
    await oracle.configure(oracle.config.updated(**CONFIGURED))
    return db


def dead_config() -> dict:
    return {
        "dsn": f"127.0.0.1:{free_port()}/FREEPDB1",
        "username": "audit_ro",
        "password": "s3cret-pw",
        "connect_timeout_seconds": 1.0,
        "connect_retries": 2,
    }


# --------------------------------------------------------------------------- not configured


async def test_not_configured_gives_503_naming_what_is_missing(client, admin_headers, oracle):
    r = await client.post(
        "/api/oracle/execute-sql", json={"query": "SELECT 1 FROM dual"}, headers=admin_headers
    )
    assert r.status_code == 503
    body = r.json()
    assert body["code"] == "oracle_not_configured"
    assert "ORACLE_USERNAME" in body["detail"] and "ORACLE_PASSWORD" in body["detail"]
    r = await client.post("/api/oracle/test-connection", headers=admin_headers)
    assert r.status_code == 503 and r.json()["code"] == "oracle_not_configured"
    r = await client.get("/api/oracle/pool-status", headers=admin_headers)
    assert r.status_code == 200
    assert r.json()["configured"] is False and r.json()["pool_open"] is False


async def test_health_reports_oracle_not_configured(client, oracle):
    r = await client.get("/api/health")
    assert r.status_code == 200
    assert r.json()["dependencies"]["oracle"]["status"] == "not_configured"
    assert r.json()["status"] == "healthy"


async def test_refused_statement_gets_400_before_any_connection(client, admin_headers, oracle):
    r = await client.post("/api/oracle/execute-sql", json={"query": "DELETE FROM t"}, headers=admin_headers)
    assert r.status_code == 400
    assert r.json()["code"] == "query_refused"
    assert "DELETE" in r.json()["detail"]


async def test_refused_statement_never_reaches_the_pool(client, admin_headers, fake_db):
    for query in ("DROP TABLE t", "SELECT 1 FROM dual; DELETE FROM t", "SELECT * FROM t@lnk"):
        r = await client.post("/api/oracle/execute-sql", json={"query": query}, headers=admin_headers)
        assert r.status_code == 400, query
    assert all(pool.acquired == 0 for pool in fake_db.pools)
    assert fake_db.log == []


async def test_routes_are_admin_only(client, auditor_headers):
    for method, path in [
        ("GET", "/api/oracle/pool-status"),
        ("GET", "/api/oracle/config"),
        ("POST", "/api/oracle/test-connection"),
        ("POST", "/api/oracle/sync-audit"),
        ("GET", "/api/oracle/metrics/stream"),
    ]:
        assert (await client.request(method, path, headers=auditor_headers)).status_code == 403, path
        assert (await client.request(method, path)).status_code == 401, path
    r = await client.post(
        "/api/oracle/execute-sql", json={"query": "SELECT 1 FROM dual"}, headers=auditor_headers
    )
    assert r.status_code == 403


# --------------------------------------------------------------------------- configuration


async def test_config_never_returns_the_password(client, admin_headers, oracle):
    r = await client.post("/api/oracle/config", json=CONFIGURED, headers=admin_headers)
    assert r.status_code == 200
    assert "s3cret-pw" not in r.text
    assert r.json()["password_set"] is True and r.json()["configured"] is True
    r = await client.get("/api/oracle/config", headers=admin_headers)
    assert "s3cret-pw" not in r.text and r.json()["connect_string"] == CONFIGURED["dsn"]
    assert "s3cret-pw" not in repr(oracle.config)
    # a later change without the password keeps it
    r = await client.post("/api/oracle/config", json={"max_rows": 50}, headers=admin_headers)
    assert r.json()["password_set"] is True and r.json()["max_rows"] == 50


async def test_config_rejects_bad_pool_bounds(client, admin_headers, oracle):
    r = await client.post("/api/oracle/config", json={"pool_min": 5, "pool_max": 2}, headers=admin_headers)
    assert r.status_code == 400
    r = await client.post("/api/oracle/config", json={"port": 70000}, headers=admin_headers)
    assert r.status_code == 422


# --------------------------------------------------------------------------- unreachable Oracle


async def test_unreachable_oracle_fails_after_its_bounded_retries(client, admin_headers, oracle):
    config = dead_config()
    r = await client.post("/api/oracle/config", json=config, headers=admin_headers)
    assert r.status_code == 200
    for path, body in [
        ("/api/oracle/test-connection", None),
        ("/api/oracle/execute-sql", {"query": "SELECT 1 FROM dual"}),
    ]:
        attempts_before = oracle.metrics.connect_attempts
        r = await client.post(path, json=body, headers=admin_headers)
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "oracle_unavailable"
        assert "3 tentative(s)" in r.json()["detail"]
        # bounded by its attempts: (retries + 1) x connect_timeout_seconds, not by a clock in the test
        assert oracle.metrics.connect_attempts - attempts_before == config["connect_retries"] + 1
        assert "s3cret-pw" not in r.text
    # the rest of the service is unaffected
    r = await client.get("/api/health")
    assert r.status_code == 200
    assert r.json()["status"] in ("healthy", "degraded")
    assert r.json()["dependencies"]["oracle"]["status"] == "down"
    assert r.json()["dependencies"]["store"]["status"] == "up"
    assert (await client.get("/api/info")).status_code == 200
    assert (await client.get("/api/oracle/pool-status", headers=admin_headers)).json()["configured"] is True


async def test_refusal_wins_over_an_unreachable_oracle(client, admin_headers, oracle):
    await client.post("/api/oracle/config", json=dead_config(), headers=admin_headers)
    before = oracle.metrics.connect_attempts
    r = await client.post(
        "/api/oracle/execute-sql", json={"query": "UPDATE t SET a = 1"}, headers=admin_headers
    )
    assert r.status_code == 400
    assert oracle.metrics.connect_attempts == before


async def test_startup_never_blocks_on_a_dead_oracle(oracle):
    service = svc.OracleService(svc.OracleConfig().updated(**dead_config()))
    await service.start()  # opens the pool; connections are made in the background
    assert service.metrics.connect_attempts == 0  # start itself waited for no connection
    assert (await service.health()).status == "down"
    await service.close()


# --------------------------------------------------------------------------- execution on the stand-in


async def test_execute_runs_read_only_with_call_timeout_and_binds(client, admin_headers, fake_db, oracle):
    fake_db.columns = ["DBUSERNAME", "N"]
    fake_db.rows = [("ALICE", 3), ("BOB", 1)]
    query = (
        "SELECT dbusername, COUNT(*) n FROM unified_audit_trail WHERE action_name = :action "
        "GROUP BY dbusername;"
    )
    r = await client.post(
        "/api/oracle/execute-sql", json={"query": query, "binds": {"action": "LOGON"}}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["columns"] == ["DBUSERNAME", "N"]
    assert body["rows"] == [["ALICE", 3], ["BOB", 1]]
    assert body["row_count"] == 2 and body["truncated"] is False
    assert body["elapsed_ms"] >= 0
    conn_id, first, _, _ = fake_db.log[0]
    assert first == "SET TRANSACTION READ ONLY"
    _, statement, binds, fetch_lobs = fake_db.log[1]
    assert fake_db.log[1][0] == conn_id
    assert statement == query.rstrip(";")  # the text runs as written, without its semicolon
    assert binds == {"action": "LOGON"}  # values travel as bind variables
    assert fetch_lobs is False
    pool = fake_db.pools[-1]
    conn = pool.released[-1]
    assert conn.call_timeout == oracle.config.call_timeout_ms
    assert conn.rollbacks == 1  # the read-only transaction ends before the connection goes back
    assert pool.busy == 0
    assert pool.kwargs["getmode"] == oracledb.POOL_GETMODE_TIMEDWAIT
    assert pool.kwargs["password"] == "s3cret-pw"


async def test_each_acquired_connection_starts_a_read_only_transaction(client, admin_headers, fake_db):
    for _ in range(3):
        r = await client.post(
            "/api/oracle/execute-sql", json={"query": "SELECT 1 FROM dual"}, headers=admin_headers
        )
        assert r.status_code == 200
    by_conn: dict[int, list[str]] = {}
    for conn_id, statement, _, _ in fake_db.log:
        by_conn.setdefault(conn_id, []).append(statement)
    assert len(by_conn) == 3
    assert all(statements[0] == "SET TRANSACTION READ ONLY" for statements in by_conn.values())


async def test_rows_are_capped_and_fetched_in_batches(client, admin_headers, fake_db, oracle):
    fake_db.rows = [(i,) for i in range(2_000)]
    r = await client.post(
        "/api/oracle/execute-sql", json={"query": "SELECT n FROM t", "max_rows": 800}, headers=admin_headers
    )
    body = r.json()
    assert body["row_count"] == 800 and body["truncated"] is True
    assert body["rows"][-1] == [799]
    assert max(fake_db.fetch_sizes) <= svc.FETCH_BATCH and len(fake_db.fetch_sizes) >= 2
    assert sum(fake_db.fetch_sizes) <= 801  # never more than one row past the cap
    # a client cannot raise the server's cap
    await oracle.configure(oracle.config.updated(max_rows=10))
    r = await client.post(
        "/api/oracle/execute-sql", json={"query": "SELECT n FROM t", "max_rows": 5000}, headers=admin_headers
    )
    assert r.json()["row_count"] == 10 and r.json()["truncated"] is True
    fake_db.rows = [(1,), (2,)]
    r = await client.post("/api/oracle/execute-sql", json={"query": "SELECT n FROM t"}, headers=admin_headers)
    assert r.json()["truncated"] is False


async def test_values_are_serialised(client, admin_headers, fake_db):
    fake_db.columns = ["TS", "D", "DEC", "INT_DEC", "LOB", "RAW", "IV", "F", "NAN", "NUL"]
    fake_db.rows = [
        (
            datetime(2024, 5, 1, 10, 30, 15, 123456),
            date(2024, 5, 1),
            Decimal("12.50"),
            Decimal("7"),
            "x" * 5000,  # a CLOB fetched as text (fetch_lobs=False)
            b"\x00\x01\xff",
            timedelta(days=1, hours=2, seconds=3.5),
            1.5,
            float("nan"),
            None,
        )
    ]
    r = await client.post("/api/oracle/execute-sql", json={"query": "SELECT * FROM t"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    row = r.json()["rows"][0]
    assert row[0] == "2024-05-01T10:30:15.123456"
    assert row[1] == "2024-05-01"
    assert row[2] == 12.5 and row[3] == 7
    assert len(row[4]) == 5000
    assert row[5] == "AAH/"
    assert row[6] == "P1DT2H0M3.5S"
    assert row[7] == 1.5 and row[8] == "nan" and row[9] is None


async def test_bind_mismatch_is_a_400(client, admin_headers, fake_db):
    r = await client.post(
        "/api/oracle/execute-sql", json={"query": "SELECT * FROM t WHERE a = :a"}, headers=admin_headers
    )
    assert r.status_code == 400 and ":a" in r.json()["detail"]
    r = await client.post(
        "/api/oracle/execute-sql",
        json={"query": "SELECT * FROM t WHERE a = :a", "binds": {"a": 1, "b": 2}},
        headers=admin_headers,
    )
    assert r.status_code == 400 and ":B" in r.json()["detail"]
    r = await client.post(
        "/api/oracle/execute-sql",
        json={"query": "SELECT * FROM t WHERE a = :a", "binds": {"a": {"nested": 1}}},
        headers=admin_headers,
    )
    assert r.status_code == 422
    assert fake_db.log == []


async def test_oracle_errors_map_to_400_and_504(client, admin_headers, fake_db):
    fake_db.error = oracledb.DatabaseError("ORA-00942: table or view does not exist")
    r = await client.post(
        "/api/oracle/execute-sql", json={"query": "SELECT * FROM nope"}, headers=admin_headers
    )
    assert r.status_code == 400 and r.json()["code"] == "oracle_error"
    assert "ORA-00942" in r.json()["detail"]
    pool = fake_db.pools[-1]
    assert pool.busy == 0 and len(pool.released) == 1  # a query error leaves the session usable
    fake_db.error = oracledb.DatabaseError("DPY-4024: call timeout of 30000 ms exceeded")
    r = await client.post(
        "/api/oracle/execute-sql", json={"query": "SELECT * FROM big"}, headers=admin_headers
    )
    assert r.status_code == 504 and r.json()["code"] == "oracle_timeout"
    assert pool.busy == 0 and len(pool.dropped) == 1  # a timed-out session is not reused


async def test_a_statement_is_never_run_twice(client, admin_headers, fake_db):
    fake_db.error = oracledb.OperationalError("DPY-4011: the database or network closed the connection")
    r = await client.post(
        "/api/oracle/execute-sql", json={"query": "SELECT 1 FROM dual"}, headers=admin_headers
    )
    assert r.status_code == 503
    assert [s for _, s, _, _ in fake_db.log].count("SELECT 1 FROM dual") == 1


async def test_test_connection_on_the_stand_in(client, admin_headers, fake_db):
    r = await client.post("/api/oracle/test-connection", headers=admin_headers)
    assert r.status_code == 200
    assert r.json()["ok"] is True and r.json()["server_version"] == "23.5.0.24.7"
    health = (await client.get("/api/health")).json()
    assert health["dependencies"]["oracle"]["status"] == "up"


async def test_pool_start_resize_close(client, admin_headers, fake_db):
    r = await client.post("/api/oracle/pool/start", headers=admin_headers)
    assert r.json()["pool_open"] is True and r.json()["min"] == 1
    first = fake_db.pools[-1]
    r = await client.post("/api/oracle/pool/resize", json={"min": 2, "max": 8}, headers=admin_headers)
    assert r.status_code == 200
    assert r.json()["min"] == 2 and r.json()["max"] == 8 and r.json()["open"] == 2
    assert fake_db.pools[-1].kwargs["max"] == 8
    for _ in range(20):
        if first.closed:
            break
        await asyncio.sleep(0.05)
    assert first.closed  # the old pool closes once idle
    r = await client.post("/api/oracle/pool/resize", json={"min": 5, "max": 2}, headers=admin_headers)
    assert r.status_code == 422
    r = await client.post("/api/oracle/pool/close", headers=admin_headers)
    assert r.json()["pool_open"] is False and fake_db.pools[-1].closed


async def test_pool_status_counts_busy_and_waiting(client, admin_headers, fake_db, oracle):
    fake_db.delay = 0.3
    task = asyncio.create_task(
        client.post("/api/oracle/execute-sql", json={"query": "SELECT 1 FROM dual"}, headers=admin_headers)
    )
    await asyncio.sleep(0.15)
    status = (await client.get("/api/oracle/pool-status", headers=admin_headers)).json()
    assert status["busy"] == 1 and status["waiting"] == 0 and status["configured"] is True
    assert (await task).status_code == 200
    assert oracle.pool_status()["busy"] == 0


# --------------------------------------------------------------------------- metrics


async def test_metrics_count_queries_errors_and_latency(client, admin_headers, fake_db, oracle):
    before = dict(oracle.metrics.queries)
    await client.post("/api/oracle/execute-sql", json={"query": "SELECT 1 FROM dual"}, headers=admin_headers)
    await client.post("/api/oracle/execute-sql", json={"query": "DROP TABLE t"}, headers=admin_headers)
    r = await client.get("/api/oracle/metrics", headers=admin_headers)
    m = r.json()
    assert m["queries"]["ok"] == before.get("ok", 0) + 1
    assert m["queries"]["refused"] == before.get("refused", 0) + 1
    assert m["errors"]["refused"] >= 1
    assert m["latency_ms"]["p50"] is not None and m["latency_ms"]["count"] >= 1
    assert set(m["pool"]) >= {"open", "busy", "min", "max", "waiting", "configured"}


def test_percentiles():
    values = sorted(float(i) for i in range(1, 101))
    assert svc.percentile(values, 50) == 50 and svc.percentile(values, 99) == 99
    assert svc.percentile([], 50) is None


async def test_metrics_stream_sends_events(client, admin_headers, oracle, monkeypatch):
    monkeypatch.setattr(settings, "ORACLE_METRICS_INTERVAL_SECONDS", 0.05)
    r = await client.get("/api/oracle/metrics/stream?max_events=3", headers=admin_headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
    assert len(events) == 3
    assert {"pool", "queries", "errors", "latency_ms", "time"} <= set(events[0])
    assert r.text.count("event: metrics") == 3
    assert oracle.metrics.streams == 0


@contextlib.asynccontextmanager
async def live_server(app):
    """The test app served over real HTTP on loopback (streams need a real connection)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event for it)
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


async def _next_event(lines) -> str:
    async for line in lines:
        if line.startswith("event:"):
            return line
    return ""


async def _drain(lines) -> list[str]:
    return [line async for line in lines]


async def test_stream_stops_when_the_client_leaves_or_the_service_closes(app, admin_headers, monkeypatch):
    monkeypatch.setattr(settings, "ORACLE_METRICS_INTERVAL_SECONDS", 0.05)
    shared = app.state.oracle
    async with live_server(app) as base, httpx.AsyncClient(base_url=base, headers=admin_headers) as http:
        async with http.stream("GET", "/api/oracle/metrics/stream") as response:
            assert await _next_event(response.aiter_lines()) == "event: metrics"
            assert shared.metrics.streams == 1
        for _ in range(100):  # the client left: the server's generator ends
            if shared.metrics.streams == 0:
                break
            await asyncio.sleep(0.02)
        assert shared.metrics.streams == 0
        # server shutdown: the service's close ends open streams
        own = svc.OracleService(svc.OracleConfig())
        app.state.oracle = own
        try:
            async with http.stream("GET", "/api/oracle/metrics/stream") as response:
                lines = response.aiter_lines()
                assert await _next_event(lines) == "event: metrics"
                await own.close()
                await asyncio.wait_for(_drain(lines), timeout=5)  # the server ends the stream
            assert own.metrics.streams == 0
        finally:
            app.state.oracle = shared


# --------------------------------------------------------------------------- audit trail sync


def audit_row(i: int, ts: datetime, **extra) -> dict:
    return {
        "EVENT_TIMESTAMP": ts,
        "OS_USERNAME": "oracle",
        "USERHOST": "srv-app-01",
        "TERMINAL": "pts/1",
        "DBUSERNAME": f"USER{i % 3}",
        "CLIENT_PROGRAM_NAME": "sqlplus",
        "ACTION_NAME": "SELECT",
        "RETURN_CODE": 0,
        "OBJECT_SCHEMA": "HR",
        "OBJECT_NAME": "EMPLOYEES",
        "SQL_TEXT": f"SELECT * FROM hr.employees WHERE id = {i}",
        "SQL_BINDS": None,
        "SESSIONID": 1000 + i,
        "AUTHENTICATION_TYPE": "(TYPE=(DATABASE));",
        "UNIFIED_AUDIT_POLICIES": "ORA_LOGON_FAILURES",
        "SYSTEM_PRIVILEGE_USED": None,
        "INSTANCE_ID": 1,
        **extra,
    }


async def test_sync_reads_in_batches_and_is_idempotent_and_resumable(
    client, admin_headers, fake_db, scratch_audit, store
):
    await store.meta.delete_one({"_id": svc.SYNC_META_ID})
    base = datetime(2024, 3, 1, 8, 0, 0, 123456)
    # rows 9 and 10 share a timestamp, across a batch boundary
    stamps = [base + timedelta(seconds=i) for i in range(10)] + [base + timedelta(seconds=9)]
    stamps += [base + timedelta(seconds=i) for i in range(10, 25)]
    fake_db.audit = [audit_row(i, ts) for i, ts in enumerate(stamps)]
    # a first, partial run (limit) stops after 10 rows ...
    r = await client.post(
        "/api/oracle/sync-audit", json={"batch_size": 4, "limit": 10}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["rows_read"] == 10 and first["inserted"] == 10 and first["complete"] is False
    assert first["batches"] == 3
    # ... the next one resumes from the watermark
    r = await client.post("/api/oracle/sync-audit", json={"batch_size": 4}, headers=admin_headers)
    second = r.json()
    assert second["inserted"] == 26 - 10
    assert second["duplicates"] >= 1  # rows at the watermark's timestamp are read again, not stored again
    assert await scratch_audit.count_documents({}) == 26
    # batches: every fetch asked for the batch size at most
    assert max(fake_db.fetch_sizes) <= 4
    sync_sql = [(s, b, lobs) for _, s, b, lobs in fake_db.log if "UNIFIED_AUDIT_TRAIL" in s]
    assert all(lobs is False for _, _, lobs in sync_sql)
    assert sync_sql[1][1]["since"] == (base + timedelta(seconds=9)).replace(microsecond=123000)
    # the same again changes nothing
    r = await client.post("/api/oracle/sync-audit", json={}, headers=admin_headers)
    assert r.json()["inserted"] == 0
    assert await scratch_audit.count_documents({}) == 26
    # new rows come in
    fake_db.audit.append(
        audit_row(99, base + timedelta(minutes=5), ACTION_NAME="DROP TABLE", RETURN_CODE=1031)
    )
    r = await client.post("/api/oracle/sync-audit", headers=admin_headers)
    assert r.json()["inserted"] == 1
    doc = await scratch_audit.find_one({"session_id": 1099})
    assert doc["action_name"] == "DROP TABLE" and doc["return_code"] == 1031
    assert doc["event_timestamp"].replace(tzinfo=UTC) == (base + timedelta(minutes=5)).replace(
        microsecond=123000, tzinfo=UTC
    )
    assert doc["dbusername"] == "USER0" and doc["sql_binds"] is None
    state = (await client.get("/api/oracle/sync-audit", headers=admin_headers)).json()
    assert state["last_event_timestamp"].startswith("2024-03-01T08:05:00.123")
    assert state["running"] is False
    # the sync session changed its time zone: it is dropped, not handed to the console
    assert any(fake_db.log[i][1].startswith("ALTER SESSION SET TIME_ZONE") for i in range(len(fake_db.log)))
    assert all(pool.busy == 0 for pool in fake_db.pools)
    assert sum(len(pool.dropped) for pool in fake_db.pools) == 4
    # restart reads everything again and stores nothing new
    r = await client.post("/api/oracle/sync-audit", json={"restart": True}, headers=admin_headers)
    assert r.json()["rows_read"] == 27 and r.json()["inserted"] == 0


async def test_sync_needs_oracle(client, admin_headers, oracle):
    r = await client.post("/api/oracle/sync-audit", headers=admin_headers)
    assert r.status_code == 503 and r.json()["code"] == "oracle_not_configured"


def test_cli_sync_oracle_without_configuration():
    from typer.testing import CliRunner

    from cli import cli

    result = CliRunner().invoke(cli, ["sync-oracle"])
    assert result.exit_code == 2
    assert "ORACLE_USERNAME" in result.output


def test_hosts_of_a_connect_string():
    assert svc.dsn_hosts("db.example:1521/FREEPDB1") == {"db.example"}
    assert svc.dsn_hosts("tcps://DB.Example:2484/svc?wallet_location=/x") == {"db.example"}
    assert svc.dsn_hosts("[::1]:1521/svc") == {"::1"}
    tns = (
        "(DESCRIPTION=(ADDRESS_LIST=(ADDRESS=(PROTOCOL=TCP)(HOST=a.example)(PORT=1521))(ADDRESS=(HOST = b)))"
    )
    assert svc.dsn_hosts(tns + "(CONNECT_DATA=(SERVICE_NAME=x)))") == {"a.example", "b"}
    assert svc.dsn_hosts("(DESCRIPTION=(CONNECT_DATA=(SERVICE_NAME=x)))") == set()


async def test_config_cannot_point_at_any_host(client, admin_headers, oracle):
    before = oracle.config
    for change in (
        {"dsn": "evil.example:1521/X"},
        {"dsn": "(DESCRIPTION=(ADDRESS=(PROTOCOL=TCP)(HOST=10.0.0.9)(PORT=1521)))"},
        {"dsn": "", "host": "169.254.169.254", "service_name": "x"},
    ):
        r = await client.post("/api/oracle/config", json=change, headers=admin_headers)
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "host_not_allowed" and "ORACLE_ALLOWED_HOSTS" in r.json()["detail"]
    assert oracle.config == before
