"""A deterministic, realistic Oracle unified audit trail ending now, with planted incidents.

`generate(n_events=20_000, days=30, end=now, seed=42)` returns audit documents (as stored, with
their `_id`). The same seed and end give the same events. About 20 database users with their OS
users, hosts and client programs act mostly on weekdays in business hours (peaks around 10:00 and
15:00 local time); applications act through JDBC, analysts through SQL Developer or Toad,
developers through sqlplus, and two service accounts are routinely active at night:
ETL_BATCH loads every night around 02:00 and MONITOR polls every 30 minutes, day and night.
The baseline also holds routine DBA work in business hours (CREATE INDEX, ALTER TABLE, temporary
tables created and dropped, object GRANT/REVOKE, password resets by ALTER USER), occasional
single failed logons (ORA-01017) and statement errors (ORA-00942, ORA-01031).

Planted incidents (local time, D-n = n days before the end date), see `planted_incidents()`:

1. failed_logon_burst: D-2 03:12, 36 failed LOGON attempts (return_code 1017, ORA-01017) on
   SYSTEM from host WS-EXT-4471 (OS user "guest", sqlplus.exe) within 9 minutes.
2. off_hours_ddl: D-1 22:47 ("hier soir"), DBA ADM_MOREAU from pc-moreau with SQL Developer:
   CREATE TABLE, two DROP TABLE, ALTER TABLE and TRUNCATE TABLE on FINANCE, in 12 minutes.
3. privilege_grant: D-3 14:05, ADM_GIRARD runs GRANT DBA TO PLEGRAND (system privilege
   GRANT ANY ROLE).
4. mass_delete: D-5 16:20, TPETIT runs 450 DELETE statements on SALES.ORDERS in 25 minutes.
5. new_host_program: D-1 10:30, MMARTIN, always seen on pc-mmartin with SQL Developer, connects
   from laptop-ext-042 with python3.11 and reads SALES.CUSTOMERS 15 times.
"""

import argparse
import asyncio
import json
import random
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from ingest import event_id, insert_documents, to_bson_precision

SQLDEV = "SQL Developer"
TOAD = "Toad.exe"
SQLPLUS = "sqlplus.exe"
JDBC = "JDBC Thin Client"

TABLES = {
    "HR": ["EMPLOYEES", "DEPARTMENTS", "JOBS", "SALARIES", "JOB_HISTORY", "LOCATIONS"],
    "SALES": ["ORDERS", "ORDER_ITEMS", "CUSTOMERS", "PRODUCTS", "INVOICES"],
    "FINANCE": ["ACCOUNTS", "LEDGER", "PAYMENTS", "BUDGETS"],
    "SYS": ["DBA_USERS", "DBA_TAB_PRIVS", "V_$SESSION", "DBA_ROLE_PRIVS"],
    "SYSTEM": ["HELP", "PRODUCT_PRIVS"],
}

OFFICE = {8: 3, 9: 8, 10: 10, 11: 9, 12: 4, 13: 4, 14: 8, 15: 10, 16: 9, 17: 6, 18: 3}
NIGHT_ETL = {1: 2, 2: 10, 3: 4}
ALL_DAY = {h: 1 for h in range(24)}


@dataclass
class Profile:
    dbusername: str
    os_username: str
    userhost: str
    program: str
    kind: str  # human, app, dba, batch, monitor
    weight: float  # share of sessions
    schemas: list[str]
    actions: dict[str, float]
    statements: tuple[int, int] = (3, 15)
    hours: dict[int, float] = field(default_factory=lambda: OFFICE)
    terminal: str | None = None
    auth: str = "PASSWORD"

    @property
    def term(self) -> str:
        return self.terminal or self.userhost.upper()


READER = {"SELECT": 70, "INSERT": 8, "UPDATE": 15, "DELETE": 3, "EXECUTE": 4}
ANALYST = {"SELECT": 85, "UPDATE": 8, "INSERT": 5, "DELETE": 2}
APP = {"SELECT": 55, "INSERT": 22, "UPDATE": 18, "DELETE": 5}
DBA = {"SELECT": 80, "CREATE INDEX": 4, "ALTER TABLE": 4, "CREATE TABLE": 3, "DROP TABLE": 2,
       "GRANT": 3, "REVOKE": 1, "ALTER USER": 3}  # fmt: skip

PROFILES = [
    Profile("JDUPONT", "jdupont", "pc-jdupont", SQLDEV, "human", 6, ["HR"], READER),
    Profile("CDUBOIS", "cdubois", "pc-cdubois", SQLDEV, "human", 5, ["HR"], READER),
    Profile("MMARTIN", "mmartin", "pc-mmartin", SQLDEV, "human", 6, ["SALES"], ANALYST),
    Profile("TPETIT", "tpetit", "pc-tpetit", SQLDEV, "human", 5, ["SALES"], READER),
    Profile("LBERNARD", "lbernard", "pc-lbernard", TOAD, "human", 5, ["FINANCE"], ANALYST),
    Profile("AROUX", "aroux", "pc-aroux", TOAD, "human", 4, ["FINANCE", "SALES"], ANALYST),
    Profile("PLEGRAND", "plegrand", "pc-plegrand", TOAD, "human", 4, ["HR", "SALES"], READER),
    Profile("SCOTT", "scott", "dev-scott", SQLPLUS, "human", 3, ["HR", "SALES"], READER, terminal="pts/1"),
    Profile("HR_APP", "tomcat", "appsrv01", JDBC, "app", 14, ["HR"], APP, (2, 8), terminal="unknown"),
    Profile("SALES_APP", "wildfly", "appsrv02", JDBC, "app", 16, ["SALES"], APP, (2, 8), terminal="unknown"),
    Profile("FIN_APP", "jboss", "appsrv03", JDBC, "app", 10, ["FINANCE"], APP, (2, 8), terminal="unknown"),
    Profile("BI_REPORT", "svc_bi", "bisrv01", "ReportingService.exe", "app", 5,
            ["SALES", "FINANCE"], {"SELECT": 100}, (5, 20)),
    Profile("ETL_BATCH", "oracle", "etlsrv01", "sqlplus@etlsrv01 (TNS V1-V3)", "batch", 2.5,
            ["SALES", "FINANCE"], {"SELECT": 30, "INSERT": 40, "UPDATE": 20, "DELETE": 10},
            (20, 40), NIGHT_ETL, terminal="pts/0"),
    Profile("MONITOR", "oracle", "oemsrv01", "emagent@oemsrv01", "monitor", 12, ["SYS"],
            {"SELECT": 100}, (1, 2), ALL_DAY, terminal="unknown"),
    Profile("ADM_MOREAU", "amoreau", "pc-moreau", SQLDEV, "dba", 3, ["SYS", "HR", "SALES", "FINANCE"], DBA),
    Profile("ADM_GIRARD", "agirard", "pc-girard", SQLDEV, "dba", 3, ["SYS", "HR", "SALES", "FINANCE"], DBA),
    Profile("SYS", "oracle", "dbhost01", "sqlplus@dbhost01 (TNS V1-V3)", "dba", 1.5, ["SYS"],
            {"SELECT": 90, "ALTER USER": 5, "GRANT": 5}, (2, 6), terminal="pts/2", auth="OS"),
    Profile("SYSTEM", "agirard", "pc-girard", SQLDEV, "dba", 1.5, ["SYS", "SYSTEM"], {"SELECT": 100}),
    Profile("AUDIT_VIEWER", "ncaron", "pc-caron", SQLDEV, "human", 2, ["SYS"], {"SELECT": 100}),
    Profile("HR", "hradmin", "pc-hradmin", SQLPLUS, "human", 1.5, ["HR"], READER),
]  # fmt: skip

SQL = {
    "SELECT": ["SELECT * FROM {s}.{o} WHERE ID = :1", "SELECT COUNT(*) FROM {s}.{o}",
               "SELECT * FROM {s}.{o} FETCH FIRST 100 ROWS ONLY"],
    "INSERT": ["INSERT INTO {s}.{o} VALUES (:1, :2, :3, :4)"],
    "UPDATE": ["UPDATE {s}.{o} SET STATUS = :1 WHERE ID = :2", "UPDATE {s}.{o} SET AMOUNT = :1 WHERE ID = :2"],
    "DELETE": ["DELETE FROM {s}.{o} WHERE ID = :1"],
    "EXECUTE": ["BEGIN {s}.PKG_{o}.REFRESH(:1); END;"],
    "CREATE INDEX": ["CREATE INDEX {s}.IX_{o}_DT ON {s}.{o} (CREATED_AT)"],
    "ALTER TABLE": ["ALTER TABLE {s}.{o} ADD (COMMENTS VARCHAR2(400))", "ALTER TABLE {s}.{o} MODIFY (STATUS VARCHAR2(30))"],
    "CREATE TABLE": ["CREATE TABLE {s}.TMP_{o} AS SELECT * FROM {s}.{o}"],
    "DROP TABLE": ["DROP TABLE {s}.TMP_{o} PURGE"],
}  # fmt: skip
POLICY = {
    "LOGON": "AUD_LOGONS", "LOGOFF": "AUD_LOGONS", "SELECT": "AUD_DATA_ACCESS",
    "INSERT": "AUD_DML", "UPDATE": "AUD_DML", "DELETE": "AUD_DML", "EXECUTE": "AUD_DML",
}  # fmt: skip


class _Builder:
    def __init__(self, rng: random.Random, tz: ZoneInfo, end: datetime) -> None:
        self.rng = rng
        self.tz = tz
        self.end = end
        self.session = 3_900_000_000
        self.events: list[dict] = []

    def new_session(self) -> int:
        self.session += self.rng.randint(1, 40)
        return self.session

    def emit(self, p: Profile, at: datetime, session: int, action: str, **extra) -> None:
        if at >= self.end:
            return
        doc = {
            "event_timestamp": to_bson_precision(at.astimezone(UTC)),
            "os_username": extra.pop("os_username", p.os_username),
            "userhost": extra.pop("userhost", p.userhost),
            "terminal": extra.pop("terminal", p.term),
            "dbusername": extra.pop("dbusername", p.dbusername),
            "client_program_name": extra.pop("client_program_name", p.program),
            "action_name": action,
            "return_code": 0,
            "object_schema": None,
            "object_name": None,
            "sql_text": None,
            "sql_binds": None,
            "session_id": session,
            "authentication_type": p.auth,
            "unified_audit_policies": POLICY.get(action, "ORA_SECURECONFIG"),
            "system_privilege_used": None,
            "instance_id": 1,
        }
        doc.update(extra)
        doc["_id"] = event_id(doc)
        self.events.append(doc)

    def statement(self, p: Profile, at: datetime, session: int, action: str) -> None:
        schema = self.rng.choice(p.schemas)
        obj = self.rng.choice(TABLES[schema])
        extra: dict = {"object_schema": schema, "object_name": obj}
        if action == "GRANT":
            grantee = self.rng.choice(["BI_REPORT", "HR_APP", "SALES_APP", "AUDIT_VIEWER"])
            extra["sql_text"] = f"GRANT SELECT ON {schema}.{obj} TO {grantee}"
            extra["system_privilege_used"] = "GRANT ANY OBJECT PRIVILEGE"
        elif action == "REVOKE":
            extra["sql_text"] = f"REVOKE SELECT ON {schema}.{obj} FROM BI_REPORT"
            extra["system_privilege_used"] = "GRANT ANY OBJECT PRIVILEGE"
        elif action == "ALTER USER":
            target = self.rng.choice(["JDUPONT", "CDUBOIS", "AROUX", "TPETIT"])
            extra.update(object_schema=None, object_name=target, system_privilege_used="ALTER USER")
            extra["sql_text"] = f"ALTER USER {target} IDENTIFIED BY *"
        else:
            if action in ("CREATE TABLE", "DROP TABLE"):
                extra["object_name"] = f"TMP_{obj}"
            extra["sql_text"] = self.rng.choice(SQL[action]).format(s=schema, o=obj)
            if ":1" in extra["sql_text"]:
                extra["sql_binds"] = f" #1(4):{self.rng.randint(1000, 9999)}"
            roll = self.rng.random()
            if p.kind in ("human", "dba") and roll < 0.012:
                extra["return_code"] = 942  # ORA-00942 table or view does not exist
            elif p.kind == "human" and roll < 0.016:
                extra["return_code"] = 1031  # ORA-01031 insufficient privileges
        self.emit(p, at, session, action, **extra)

    def session_at(self, p: Profile, start: datetime) -> None:
        session = self.new_session()
        at = start
        if p.kind == "human" and self.rng.random() < 0.02:  # a mistyped password first
            self.emit(p, at, session, "LOGON", return_code=1017,
                      unified_audit_policies="ORA_LOGON_FAILURES")  # fmt: skip
            at += timedelta(seconds=self.rng.randint(5, 30))
            session = self.new_session()
        self.emit(p, at, session, "LOGON")
        actions, weights = zip(*p.actions.items(), strict=True)
        for _ in range(self.rng.randint(*p.statements)):
            at += timedelta(seconds=self.rng.randint(2, 90), microseconds=self.rng.randint(0, 999_999))
            self.statement(p, at, session, self.rng.choices(actions, weights)[0])
        at += timedelta(seconds=self.rng.randint(5, 300))
        self.emit(p, at, session, "LOGOFF")


def _local(day: datetime, hour: int, minute: int, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)


def planted_incidents(end: datetime, tz: ZoneInfo = ZoneInfo("Europe/Paris")) -> list[dict]:
    """The incidents `generate` plants, with their user, host and local time window."""
    today = end.astimezone(tz).date()

    def at(days: int, hour: int, minute: int) -> datetime:
        d = today - timedelta(days=days)
        return datetime(d.year, d.month, d.day, hour, minute, tzinfo=tz)

    return [
        {"kind": "failed_logon_burst", "dbusername": "SYSTEM", "userhost": "WS-EXT-4471",
         "start": at(2, 3, 12), "end": at(2, 3, 21), "count": 36},
        {"kind": "off_hours_ddl", "dbusername": "ADM_MOREAU", "userhost": "pc-moreau",
         "start": at(1, 22, 47), "end": at(1, 22, 59), "count": 5},
        {"kind": "privilege_grant", "dbusername": "ADM_GIRARD", "userhost": "pc-girard",
         "start": at(3, 14, 5), "end": at(3, 14, 6), "count": 1, "grantee": "PLEGRAND"},
        {"kind": "mass_delete", "dbusername": "TPETIT", "userhost": "pc-tpetit",
         "start": at(5, 16, 20), "end": at(5, 16, 45), "count": 450},
        {"kind": "new_host_program", "dbusername": "MMARTIN", "userhost": "laptop-ext-042",
         "start": at(1, 10, 30), "end": at(1, 10, 45), "count": 15, "program": "python3.11"},
    ]  # fmt: skip


def _plant(b: _Builder, end: datetime, tz: ZoneInfo) -> None:
    rng = b.rng
    by_name = {p.dbusername: p for p in PROFILES}
    inc = {i["kind"]: i for i in planted_incidents(end, tz)}

    burst = inc["failed_logon_burst"]
    at = burst["start"]
    attacker = dict(os_username="guest", userhost="WS-EXT-4471", terminal="WS-EXT-4471",
                    client_program_name=SQLPLUS)  # fmt: skip
    for _ in range(burst["count"]):
        b.emit(by_name["SYSTEM"], at, b.new_session(), "LOGON", return_code=1017,
               unified_audit_policies="ORA_LOGON_FAILURES", **attacker)  # fmt: skip
        at += timedelta(seconds=rng.randint(8, 16))

    ddl = inc["off_hours_ddl"]
    dba, at, sid = by_name["ADM_MOREAU"], ddl["start"], b.new_session()
    b.emit(dba, at, sid, "LOGON")
    for minutes, action, obj, sql in [
        (1, "CREATE TABLE", "LEDGER_BKP", "CREATE TABLE FINANCE.LEDGER_BKP AS SELECT * FROM FINANCE.LEDGER"),
        (3, "DROP TABLE", "LEDGER", "DROP TABLE FINANCE.LEDGER PURGE"),
        (5, "DROP TABLE", "BUDGETS", "DROP TABLE FINANCE.BUDGETS PURGE"),
        (8, "ALTER TABLE", "PAYMENTS", "ALTER TABLE FINANCE.PAYMENTS DROP COLUMN IBAN"),
        (11, "TRUNCATE TABLE", "ACCOUNTS", "TRUNCATE TABLE FINANCE.ACCOUNTS"),
    ]:
        b.emit(dba, at + timedelta(minutes=minutes), sid, action, object_schema="FINANCE",
               object_name=obj, sql_text=sql, unified_audit_policies="ORA_SECURECONFIG")  # fmt: skip
    b.emit(dba, at + timedelta(minutes=12), sid, "LOGOFF")

    grant = inc["privilege_grant"]
    dba, at, sid = by_name["ADM_GIRARD"], grant["start"], b.new_session()
    b.emit(dba, at, sid, "LOGON")
    b.emit(dba, at + timedelta(seconds=20), sid, "GRANT", object_name="DBA",
           sql_text="GRANT DBA TO PLEGRAND", system_privilege_used="GRANT ANY ROLE",
           unified_audit_policies="ORA_SECURECONFIG")  # fmt: skip
    b.emit(dba, at + timedelta(seconds=50), sid, "LOGOFF")

    mass = inc["mass_delete"]
    user, at, sid = by_name["TPETIT"], mass["start"], b.new_session()
    b.emit(user, at, sid, "LOGON")
    step = (mass["end"] - mass["start"]) / (mass["count"] + 1)
    for i in range(mass["count"]):
        b.emit(user, at + step * (i + 1), sid, "DELETE", object_schema="SALES", object_name="ORDERS",
               sql_text="DELETE FROM SALES.ORDERS WHERE ORDER_ID = :1",
               sql_binds=f" #1(6):{100000 + i}")  # fmt: skip
    b.emit(user, mass["end"], sid, "LOGOFF")

    new = inc["new_host_program"]
    user, at, sid = by_name["MMARTIN"], new["start"], b.new_session()
    odd = dict(userhost="laptop-ext-042", terminal="unknown", client_program_name="python3.11")
    b.emit(user, at, sid, "LOGON", **odd)
    for i in range(new["count"]):
        b.emit(user, at + timedelta(seconds=30 * (i + 1)), sid, "SELECT", object_schema="SALES",
               object_name="CUSTOMERS", sql_text="SELECT * FROM SALES.CUSTOMERS", **odd)  # fmt: skip
    b.emit(user, new["end"], sid, "LOGOFF", **odd)


def generate(
    *,
    n_events: int = 20_000,
    days: int = 30,
    end: datetime | None = None,
    seed: int = 42,
    tz: ZoneInfo = ZoneInfo("Europe/Paris"),
) -> list[dict]:
    """`n_events` audit documents over the `days` before `end`, planted incidents included."""
    end = (end or datetime.now(UTC)).astimezone(tz)
    rng = random.Random(seed)
    b = _Builder(rng, tz, end)
    _plant(b, end, tz)
    planted = len(b.events)
    first_day = (end - timedelta(days=days)).date()
    calendar = [first_day + timedelta(days=i) for i in range(days + 1)]
    weights = [p.weight for p in PROFILES]
    baseline: list[dict] = []
    b.events, planted_events = baseline, b.events
    while len(baseline) < n_events - planted:
        p = rng.choices(PROFILES, weights)[0]
        day = rng.choice(calendar)
        if day.weekday() >= 5 and p.kind not in ("batch", "monitor") and rng.random() > 0.06:
            continue
        hour = rng.choices(list(p.hours), list(p.hours.values()))[0]
        if p.kind == "human" and rng.random() < 0.03:
            hour = rng.choice([7, 19, 20])  # early or late, now and then
        start = _local(day, hour, rng.randint(0, 59), tz) + timedelta(seconds=rng.randint(0, 59))
        if start < end - timedelta(days=days):
            continue
        b.session_at(p, start)
    del baseline[max(n_events - planted, 0) :]
    events = baseline + planted_events
    events.sort(key=lambda e: e["event_timestamp"])
    return events


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a demo unified audit trail as JSON Lines.")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default="-", help="file to write, - for stdout")
    args = parser.parse_args(argv)
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
    with out:
        for event in generate(n_events=args.events, days=args.days, seed=args.seed):
            event = {k: v for k, v in event.items() if k != "_id"}
            event["event_timestamp"] = event["event_timestamp"].isoformat()
            out.write(json.dumps(event, ensure_ascii=False) + "\n")


async def seed_demo(
    store,
    *,
    n_events: int = 20_000,
    days: int = 30,
    seed: int = 42,
    tz: ZoneInfo = ZoneInfo("Europe/Paris"),
    on_batch=None,
) -> tuple[int, int]:
    """Generate the demo trail ending now and load it; (inserted, duplicates)."""
    events = await asyncio.to_thread(generate, n_events=n_events, days=days, seed=seed, tz=tz)
    return await insert_documents(store, events, on_batch=on_batch)


if __name__ == "__main__":
    main()
