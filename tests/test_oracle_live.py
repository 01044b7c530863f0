"""Integration tests against a real Oracle database; they run only when ORACLE_DSN is set.

ORACLE_DSN (or TEST_ORACLE_DSN), ORACLE_USERNAME and ORACLE_PASSWORD name a read-only account, e.g.
`ORACLE_DSN=localhost:1521/FREEPDB1 ORACLE_USERNAME=audit_ro ORACLE_PASSWORD=... pytest -m oracle`.
conftest.py removes ORACLE_DSN from the environment so the app under test starts unconfigured: the
value is read here from the environment the process started with.
"""

import os
from pathlib import Path

import pytest

import oracle_service as svc


def _initial_env(name: str) -> str | None:
    try:
        raw = Path("/proc/self/environ").read_bytes()
    except OSError:
        return None
    for item in raw.split(b"\0"):
        key, _, value = item.partition(b"=")
        if key.decode(errors="replace") == name:
            return value.decode(errors="replace") or None
    return None


DSN = os.environ.get("TEST_ORACLE_DSN") or _initial_env("ORACLE_DSN")
USER = os.environ.get("ORACLE_USERNAME") or _initial_env("ORACLE_USERNAME")
PASSWORD = os.environ.get("ORACLE_PASSWORD") or _initial_env("ORACLE_PASSWORD")

pytestmark = [
    pytest.mark.oracle,
    pytest.mark.skipif(not (DSN and USER and PASSWORD), reason="ORACLE_DSN/USERNAME/PASSWORD not set"),
]


@pytest.fixture
async def live():
    service = svc.OracleService(
        svc.OracleConfig(dsn=DSN, username=USER, password=PASSWORD, connect_timeout_seconds=10)
    )
    yield service
    await service.close()


async def test_connection_and_version(live):
    info = await live.test_connection()
    assert info["ok"] is True and info["server_version"]


async def test_query_types_are_serialised(live):
    result = await live.run_query(
        "SELECT 1 AS n, 2.5 AS x, SYSDATE AS d, SYSTIMESTAMP AS ts, TO_CLOB('long text') AS c, "
        "HEXTORAW('00FF') AS r, NUMTODSINTERVAL(90, 'MINUTE') AS iv, :v AS v FROM dual",
        binds={"v": "bound"},
    )
    assert result["columns"] == ["N", "X", "D", "TS", "C", "R", "IV", "V"]
    n, x, d, ts, c, r, iv, v = result["rows"][0]
    assert n == 1 and x == 2.5 and isinstance(d, str) and "T" in ts
    assert c == "long text" and r == "AP8=" and iv.startswith("P0DT1H30M") and v == "bound"


async def test_rows_are_capped(live):
    result = await live.run_query("SELECT LEVEL FROM dual CONNECT BY LEVEL <= 50", max_rows=20)
    assert result["row_count"] == 20 and result["truncated"] is True


async def test_session_is_read_only(live):
    async with live.session() as conn:
        cursor = conn.cursor()
        with pytest.raises(Exception) as info:
            await cursor.execute("UPDATE dual SET dummy = dummy WHERE 1 = 0")
        # ORA-01456: may not perform insert/delete/update inside a READ ONLY transaction
        # (or ORA-01031 when the account cannot write at all, as recommended)
        assert "ORA-01456" in str(info.value) or "ORA-01031" in str(info.value)
        cursor.close()


async def test_oracle_error_is_reported(live):
    with pytest.raises(svc.OracleQueryFailed) as info:
        await live.run_query("SELECT * FROM table_that_does_not_exist_42")
    assert "ORA-00942" in str(info.value)


async def test_sync_reads_the_unified_audit_trail(live, store, scratch_audit):
    await store.meta.delete_one({"_id": svc.SYNC_META_ID})
    try:
        summary = await live.sync_audit(store, batch_size=100, limit=200)
    except svc.OracleQueryFailed as exc:
        pytest.skip(f"UNIFIED_AUDIT_TRAIL not readable by this account: {exc}")
    assert summary["rows_read"] == summary["inserted"] + summary["duplicates"] + summary["errors"]
    again = await live.sync_audit(store, batch_size=100, limit=200)
    assert again["inserted"] <= summary["rows_read"]
    await store.meta.delete_one({"_id": svc.SYNC_META_ID})
