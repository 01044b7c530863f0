"""The demo audit trail generator."""

import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from demo_data import PROFILES, generate, planted_incidents
from models import AUDIT_FIELDS

PARIS = ZoneInfo("Europe/Paris")
END = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return generate(end=END)


def test_default_size_window_and_fields(events):
    assert len(events) == 20_000
    assert all(END - timedelta(days=30) <= e["event_timestamp"] < END for e in events)
    assert all(set(AUDIT_FIELDS) <= set(e) for e in events)
    assert len({e["_id"] for e in events}) == len(events)
    assert 18 <= len({e["dbusername"] for e in events}) <= 25


def test_deterministic_for_a_seed_and_end():
    a = generate(n_events=2000, end=END, seed=5)
    b = generate(n_events=2000, end=END, seed=5)
    c = generate(n_events=2000, end=END, seed=6)
    assert [e["_id"] for e in a] == [e["_id"] for e in b]
    assert [e["_id"] for e in a] != [e["_id"] for e in c]


def test_realistic_mix(events):
    actions = Counter(e["action_name"] for e in events)
    for action in ("SELECT", "INSERT", "UPDATE", "DELETE", "LOGON", "LOGOFF", "GRANT", "REVOKE", "ALTER USER",
                   "CREATE TABLE", "DROP TABLE", "ALTER TABLE"):  # fmt: skip
        assert actions[action] > 0, action
    assert actions["SELECT"] > actions["INSERT"] > actions["GRANT"]
    programs = {e["client_program_name"] for e in events}
    assert {"SQL Developer", "Toad.exe", "sqlplus.exe", "JDBC Thin Client"} <= programs
    assert {"HR", "SALES", "FINANCE", "SYS"} <= {e["object_schema"] for e in events}


def test_humans_work_in_business_hours(events):
    humans = {p.dbusername for p in PROFILES if p.kind == "human"}
    local = [e["event_timestamp"].astimezone(PARIS) for e in events if e["dbusername"] in humans]
    in_hours = sum(1 for t in local if t.weekday() < 5 and 8 <= t.hour < 19)
    assert in_hours / len(local) > 0.85


@pytest.mark.parametrize("kind", [i["kind"] for i in planted_incidents(END)])
def test_planted_incidents_are_in_the_trail(events, kind):
    incident = next(i for i in planted_incidents(END, PARIS) if i["kind"] == kind)

    def belongs(e: dict) -> bool:
        if kind == "failed_logon_burst":
            return e["return_code"] == 1017 and e["userhost"] == incident["userhost"]
        return (
            e["dbusername"] == incident["dbusername"]
            and e["userhost"] == incident["userhost"]
            and incident["start"] <= e["event_timestamp"] <= incident["end"]
            and e["action_name"] not in ("LOGON", "LOGOFF")
        )

    matching = [e for e in events if belongs(e)]
    assert len(matching) >= incident["count"], kind


def test_planted_details(events):
    incidents = {i["kind"]: i for i in planted_incidents(END, PARIS)}
    grant = [e for e in events if e["sql_text"] == "GRANT DBA TO PLEGRAND"]
    assert len(grant) == 1 and grant[0]["dbusername"] == "ADM_GIRARD"
    ddl = incidents["off_hours_ddl"]
    drops = [e for e in events if e["action_name"] == "DROP TABLE" and e["dbusername"] == "ADM_MOREAU"
             and ddl["start"] <= e["event_timestamp"] <= ddl["end"]]  # fmt: skip
    assert {e["object_name"] for e in drops} == {"LEDGER", "BUDGETS"}
    assert ddl["start"].hour == 22  # "hier soir", local time
    history = {(e["userhost"], e["client_program_name"]) for e in events if e["dbusername"] == "MMARTIN"}
    assert history == {("pc-mmartin", "SQL Developer"), ("laptop-ext-042", "python3.11")}


def test_cli_writes_json_lines(tmp_path: Path):
    out = tmp_path / "demo.jsonl"
    subprocess.run(
        [sys.executable, "demo_data.py", "--events", "600", "--days", "2", "--out", str(out)],
        check=True,
        cwd=Path(__file__).parent.parent,
        timeout=60,
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 600
    assert rows[0]["event_timestamp"].endswith("+00:00")
