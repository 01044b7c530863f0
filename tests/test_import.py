"""Import of audit exports: POST /api/audit/import and `python cli.py import`."""

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from config import settings
from demo_data import generate

CLEAN = {"errors": [], "error_count": 0, "errors_truncated": False}


def _jsonl(events: list[dict]) -> bytes:
    lines = []
    for e in events:
        row = {k: v for k, v in e.items() if k != "_id"}
        row["event_timestamp"] = row["event_timestamp"].isoformat()
        lines.append(json.dumps(row))
    return ("\n".join(lines) + "\n").encode()


async def _post(client, headers, content: bytes, name: str = "export.jsonl"):
    return await client.post("/api/audit/import", headers=headers, files={"file": (name, content)})


async def test_importing_the_same_jsonl_twice_stores_it_once(client, admin_headers, scratch_audit):
    events = generate(n_events=1000, days=3, seed=1)
    n = len(events)
    body = _jsonl(events)
    first = await _post(client, admin_headers, body)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "inserted": n,
        "duplicates": 0,
        "errors": [],
        "error_count": 0,
        "errors_truncated": False,
    }
    second = await _post(client, admin_headers, body)
    assert second.json() == {
        "inserted": 0,
        "duplicates": n,
        "errors": [],
        "error_count": 0,
        "errors_truncated": False,
    }
    assert await scratch_audit.count_documents({}) == n
    # Ids are derived from content: the imported rows are the generator's own documents.
    assert await scratch_audit.count_documents({"_id": {"$in": [e["_id"] for e in events]}}) == n


async def test_sql_developer_csv_export(client, admin_headers, scratch_audit):
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(["EVENT_TIMESTAMP", "OS_USERNAME", "USERHOST", "DBUSERNAME", "CLIENT_PROGRAM_NAME",
                     "ACTION_NAME", "RETURN_CODE", "OBJECT_SCHEMA", "OBJECT_NAME", "SQL_TEXT", "SESSIONID",
                     "UNIFIED_AUDIT_POLICIES"])  # fmt: skip
    sql = "SELECT * FROM HR.EMPLOYEES\nWHERE ID = :1"
    writer.writerow(["20-NOV-25 10.15.30.123456000 PM", "jdupont", "pc-jdupont", "JDUPONT", "SQL Developer",
                     "SELECT", "0", "HR", "EMPLOYEES", sql, "39000001", "AUD_DATA_ACCESS"])  # fmt: skip
    writer.writerow(["21-NOV-25 08.01.02.000000000 AM", "guest", "ws-ext", "SYSTEM", "sqlplus.exe",
                     "LOGON", "1017", "", "", "", "39000002", "ORA_LOGON_FAILURES"])  # fmt: skip
    r = await _post(client, admin_headers, out.getvalue().encode("cp1252"), "export.csv")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "inserted": 2,
        "duplicates": 0,
        "errors": [],
        "error_count": 0,
        "errors_truncated": False,
    }
    select = await scratch_audit.find_one({"action_name": "SELECT"})
    assert select["event_timestamp"].isoformat() == "2025-11-20T21:15:30.123000+00:00"
    assert select["sql_text"] == "SELECT * FROM HR.EMPLOYEES\nWHERE ID = :1"  # quoted newline kept
    assert select["session_id"] == 39000001
    logon = await scratch_audit.find_one({"action_name": "LOGON"})
    assert logon["return_code"] == 1017
    assert logon["object_schema"] is None


async def test_broken_lines_are_reported_and_the_rest_kept(client, admin_headers, scratch_audit):
    lines = _jsonl(generate(n_events=600, days=2, seed=2)[:100]).decode().splitlines()
    lines[9] = '{"DBUSERNAME": "SCOTT", "EVENT_TIMESTAMP": '  # truncated JSON
    lines[49] = '{"DBUSERNAME": "SCOTT"}'  # no timestamp
    lines[89] = '{"EVENT_TIMESTAMP": "not a date"}'
    r = await _post(client, admin_headers, ("\n".join(lines) + "\n").encode())
    body = r.json()
    assert body["inserted"] == 97
    assert [e["line"] for e in body["errors"]] == [10, 50, 90]
    assert "JSON invalide" in body["errors"][0]["message"]
    assert await scratch_audit.count_documents({}) == 97


async def test_json_array(client, admin_headers, scratch_audit):
    rows = json.dumps([{"TIMESTAMP": "2025-01-15 10:00:00", "USERNAME": "HR"}, {"TIMESTAMP": "bad"}])
    r = await _post(client, admin_headers, rows.encode(), "export.json")
    assert r.json()["inserted"] == 1
    assert r.json()["errors"] == [{"line": 2, "message": "horodatage illisible : 'bad'"}]


async def test_not_json_or_csv_gets_415(client, admin_headers, scratch_audit):
    for content in (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", b"\x89PNG\r\n\x1a\n\x00\x00", b"hello world\n"):
        r = await _post(client, admin_headers, content, "export.csv")
        assert r.status_code == 415, r.text
        assert r.json()["code"] == "unsupported_media_type"
    assert await scratch_audit.count_documents({}) == 0


async def test_file_over_the_limit_gets_413(client, admin_headers, scratch_audit, monkeypatch):
    monkeypatch.setattr(settings, "IMPORT_MAX_MB", 0)
    r = await _post(client, admin_headers, _jsonl(generate(n_events=5, days=1)))
    assert r.status_code == 413
    assert r.json()["code"] == "payload_too_large"


async def test_import_needs_an_admin(client, auditor_headers, scratch_audit):
    r = await _post(client, auditor_headers, b'{"TIMESTAMP": "2025-01-15 10:00:00"}\n')
    assert r.status_code == 403
    r = await client.post("/api/audit/import", files={"file": ("a.jsonl", b"{}")})
    assert r.status_code == 401


async def test_cli_import(tmp_path: Path, mongo_uri, store, scratch_audit):
    path = tmp_path / "export.jsonl"
    path.write_bytes(_jsonl(generate(n_events=600, days=1, seed=3)[:50]))
    env = {**os.environ, "MONGODB_URI": mongo_uri, "MONGODB_DB": store.db_name}
    # the CLI writes to actions_audit: point it at the scratch collection through a copy of the store
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "import sys, database; database.AUDIT_COLLECTION = sys.argv[1];"
         "import cli; sys.argv = ['cli', 'import', sys.argv[2]]; cli.cli()", store.audit_name, str(path)],
        env=env, capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "50 inserted, 0 duplicates, 0 errors" in proc.stdout
    assert await scratch_audit.count_documents({}) == 50


async def test_nul_bytes_are_line_errors_wherever_they_are(client, admin_headers, scratch_audit):
    good = '{"event_timestamp": "2026-11-20T10:00:00", "dbusername": "U%d", "action_name": "SELECT"}'
    lines = [good % i for i in range(3000)]  # well over 64 KB
    lines[1] = lines[1].replace('"U1"', '"U\\u0000"')  # JSON escape: a NUL in the value
    lines[2] = lines[2].replace('"U2"', '"U\x002"')  # a raw NUL byte, in the first 64 KB
    lines[2900] = lines[2900].replace('"U2900"', '"U\x00"')  # and one far after it
    body = ("\n".join(lines) + "\n").encode()
    r = await _post(client, admin_headers, body)
    assert r.status_code == 200, r.text
    result = r.json()
    assert [e["line"] for e in result["errors"]] == [2, 3, 2901]
    # A raw NUL is not valid JSON text; an escaped one is a NUL in a value: both are line errors.
    assert "NUL" in result["errors"][0]["message"]
    assert all("NUL" in e["message"] or "JSON invalide" in e["message"] for e in result["errors"])
    assert result["inserted"] == 2997


async def test_error_report_gives_the_total_when_cut(client, admin_headers, scratch_audit):
    bad = '{"event_timestamp": "pas une date", "dbusername": "U"}\n' * 1500
    r = await _post(client, admin_headers, bad.encode())
    result = r.json()
    assert len(result["errors"]) == 1000
    assert result["error_count"] == 1500 and result["errors_truncated"] is True
