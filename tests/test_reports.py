"""Reports: each figure equals the same figure computed in Python over the demo events; the formats."""

import asyncio
import csv
import io
import re
import shutil
import subprocess
from collections import Counter
from datetime import timedelta

import pytest

import reports
from anomaly_queries import ACCOUNT_ACTIONS
from config import settings

DDL = re.compile(r"^(CREATE|ALTER|DROP|TRUNCATE|RENAME|COMMENT|PURGE|FLASHBACK)\b")


@pytest.fixture(scope="module")
def window(demo):
    return demo.end - timedelta(days=7), demo.end


@pytest.fixture(scope="module")
def events(demo, window):
    start, end = window
    return [e for e in demo.events if start <= e["event_timestamp"] < end]


def _section(report: reports.Report, key: str) -> reports.Section:
    return next(s for s in report.sections if s.key == key)


def _counts(section: reports.Section) -> dict:
    """Grouped rows as {group (or tuple of groups): count}, zero rows left out."""
    out = {}
    for row in section.rows:
        key = row[0] if len(row) == 2 else tuple(row[:-1])
        if row[-1]:
            out[key] = row[-1]
    return out


async def _build(store, kind, window, **kw) -> reports.Report:
    start, end = window
    return await reports.build(store, kind, start=start, end=end, **kw)


async def test_activity_summary(store, window, events):
    r = await _build(store, "activity", window)
    assert _section(r, "total").rows == [[len(events)]]
    sessions = {e["session_id"] for e in events if e.get("session_id") is not None}
    assert _section(r, "sessions").rows == [[len(sessions)]]
    assert _section(r, "failed").rows == [[sum(e["return_code"] != 0 for e in events)]]
    assert _counts(_section(r, "by_user")) == Counter(e["dbusername"] for e in events)
    assert _counts(_section(r, "by_action")) == Counter(e["action_name"] for e in events)
    days = Counter(e["event_timestamp"].astimezone(settings.tz).date().isoformat() for e in events)
    assert _counts(_section(r, "by_day")) == days


async def test_admin_activity(store, window, events):
    r = await _build(store, "admin", window)
    admins = {"SYS", "SYSTEM"}
    expected = Counter((e["dbusername"], e["action_name"]) for e in events if e["dbusername"] in admins)
    assert _counts(_section(r, "admin_by_action")) == expected
    privileged = Counter(
        (e["dbusername"], e["action_name"])
        for e in events
        if e.get("system_privilege_used") not in (None, "")
    )
    assert _counts(_section(r, "system_privileges")) == privileged
    detail = [
        e
        for e in events
        if e["dbusername"] in admins and e["action_name"] not in ("SELECT", "LOGON", "LOGOFF")
    ]
    assert _section(r, "admin_events").total == len(detail)


async def test_user_and_entitlement_changes(store, window, events):
    r = await _build(store, "entitlements", window)
    changes = [e for e in events if e["action_name"] in ACCOUNT_ACTIONS]
    assert changes  # the planted GRANT DBA TO PLEGRAND and routine grants
    assert _counts(_section(r, "by_action")) == Counter(e["action_name"] for e in changes)
    assert _counts(_section(r, "by_user")) == Counter((e["dbusername"], e["action_name"]) for e in changes)
    listed = _section(r, "events")
    assert listed.total == len(changes) and len(listed.rows) == min(len(changes), reports.DETAIL_ROWS)
    sql = listed.columns.index("sql_text")
    assert "GRANT DBA TO PLEGRAND" in {row[sql] for row in listed.rows}


async def test_failed_logins(store, window, events):
    r = await _build(store, "failed_logins", window)
    failed = [e for e in events if e["action_name"] == "LOGON" and e["return_code"] != 0]
    assert _section(r, "total").rows == [[len(failed)]]
    assert _counts(_section(r, "by_user")) == Counter(e["dbusername"] for e in failed)
    assert _counts(_section(r, "by_user_host")) == Counter((e["dbusername"], e["userhost"]) for e in failed)
    assert _counts(_section(r, "by_user_host"))[("SYSTEM", "WS-EXT-4471")] == 36  # the planted burst
    only = await _build(store, "failed_logins", window, filters={"dbusername": ["SYSTEM"]})
    assert _counts(_section(only, "by_user")) == {"SYSTEM": sum(e["dbusername"] == "SYSTEM" for e in failed)}
    assert only.filters == {"dbusername": ["SYSTEM"]}


async def test_watched_objects(store, window, events):
    r = await _build(store, "watched_objects", window, objects=["sales.customers", "HR.SALARIES"])
    for name in ("SALES.CUSTOMERS", "HR.SALARIES"):
        schema, obj = name.split(".")
        hits = [e for e in events if e["object_schema"] == schema and e["object_name"] == obj]
        assert _counts(_section(r, f"{name}:by_user")) == Counter(
            (e["dbusername"], e["action_name"]) for e in hits
        )
        assert _section(r, f"{name}:events").total == len(hits)
    customers = _counts(_section(r, "SALES.CUSTOMERS:by_user"))
    assert customers[("MMARTIN", "SELECT")] >= 15  # the planted reads from a new laptop
    with pytest.raises(reports.ReportError):
        await _build(store, "watched_objects", window)  # none configured, none given


async def test_schema_changes(store, window, events):
    r = await _build(store, "schema_changes", window)
    ddl = [e for e in events if DDL.match(e["action_name"]) and e["action_name"] not in ACCOUNT_ACTIONS]
    assert _counts(_section(r, "by_action")) == Counter(e["action_name"] for e in ddl)
    assert _counts(_section(r, "by_schema")) == Counter((e["object_schema"], e["dbusername"]) for e in ddl)
    assert _section(r, "events").total == len(ddl)


async def test_anomaly_findings(store, window, events):
    r = await _build(store, "anomalies", window)
    findings = _section(r, "findings")
    col = {c: i for i, c in enumerate(findings.columns)}
    [burst] = [row for row in findings.rows if row[col["type"]] == "failed_logon_burst"]
    attempts = [e for e in events if e["userhost"] == "WS-EXT-4471" and e["return_code"] != 0]
    assert burst[col["count"]] == len(attempts) == 36
    [dml] = [row for row in findings.rows if row[col["type"]] == "mass_dml"]
    planted = "DELETE FROM SALES.ORDERS WHERE ORDER_ID"
    deletes = [e for e in events if e["dbusername"] == "TPETIT" and (e["sql_text"] or "").startswith(planted)]
    assert dml[col["count"]] >= len(deletes) == 450
    assert findings.total == len(findings.rows) and findings.rows[0][col["severity"]] == "high"


async def test_formats(client, auditor_headers, demo):
    params = {"timeframe": "7d", "dbusername": "SYSTEM"}
    r = await client.get("/api/reports/failed_logins", params=params, headers=auditor_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["title"] == "Échecs de connexion" and body["filters"] == {"dbusername": ["SYSTEM"]}
    by_user = next(s for s in body["sections"] if s["key"] == "by_user")

    r = await client.get(
        "/api/reports/failed_logins",
        params={**params, "format": "csv", "section": "by_user"},
        headers=auditor_headers,
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[0] == by_user["columns"] and [[x[0], int(x[1])] for x in rows[1:]] == by_user["rows"]

    r = await client.get(
        "/api/reports/failed_logins", params={**params, "format": "xlsx"}, headers=auditor_headers
    )
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames[0] == "Rapport" and len(wb.sheetnames) == 1 + len(body["sections"])
    assert wb["Par compte"]["B2"].value == by_user["rows"][0][1]

    r = await client.get("/api/reports", headers=auditor_headers)
    assert {k["kind"] for k in r.json()["reports"]} == set(reports.REPORTS)
    for bad, status in (({"format": "doc"}, 422), ({"timeframe": "all"}, 422), ({"start": "hier"}, 422)):
        r = await client.get("/api/reports/activity", params=bad, headers=auditor_headers)
        assert r.status_code == status and r.json()["detail"], bad
    r = await client.get("/api/reports/nope", headers=auditor_headers)
    assert r.status_code == 404 and "inconnu" in r.json()["detail"]
    r = await client.get("/api/reports/watched_objects", headers=auditor_headers)
    assert r.status_code == 422 and "surveillé" in r.json()["detail"]
    assert (await client.get("/api/reports/activity")).status_code == 401


def _render_first_page(pdf, out_dir) -> str:
    """The first page as PNG (pdftoppm) next to the PDF; its text (pdftotext)."""
    cmd = ["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "1", str(pdf), str(out_dir / "page")]
    subprocess.run(cmd, check=True, timeout=60)
    return subprocess.run(
        ["pdftotext", "-l", "1", str(pdf), "-"], capture_output=True, text=True, check=True, timeout=60
    ).stdout


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) is not installed")
async def test_pdf_renders_and_is_not_blank(client, auditor_headers, demo, tmp_path):
    from PIL import Image

    r = await client.get(
        "/api/reports/activity", params={"timeframe": "7d", "format": "pdf"}, headers=auditor_headers
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(r.content)
    text = await asyncio.to_thread(_render_first_page, pdf, tmp_path)
    [png] = list(tmp_path.glob("page*.png"))
    image = Image.open(png).convert("L")
    dark = sum(1 for p in image.getdata() if p < 200)
    assert dark > 0.01 * image.width * image.height  # text, tables and the chart, not a blank page
    assert "Synthèse de l'activité" in text and "Période" in text and "Filtres" in text
