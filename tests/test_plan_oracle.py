"""The reference plan evaluator (tests/plan_oracle.py) on small hand-made trails; every expected
figure is worked out by hand in the comments, never by re-running the oracle."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from plan import (
    CATEGORIES,
    EVENT_COLUMNS,
    SESSION_COLUMNS,
    Filters,
    Having,
    Period,
    Plan,
    Sequence,
    Threshold,
)
from tests.plan_oracle import evaluate, mongo_match

TZ = ZoneInfo("Europe/Paris")  # UTC+1 in winter, UTC+2 in summer


def at(local: str) -> datetime:
    """A Paris wall-clock time as the aware UTC datetime the store keeps."""
    return datetime.fromisoformat(local).replace(tzinfo=TZ).astimezone(UTC)


def ev(local: str, **fields) -> dict:
    doc = {"event_timestamp": at(local), "action_name": "SELECT", "return_code": 0}
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not ...}  # `...` removes a default field


def period(start: str | None, end: str | None) -> Period:
    return Period(start=at(start) if start else None, end=at(end) if end else None)


def run(plan: Plan, events: list[dict], **kw):
    return evaluate(plan, events, tz=TZ, **kw)


def count(events: list[dict], **kw) -> int:
    """Events matching a plan built from keyword arguments (measure events, ungrouped)."""
    business = kw.pop("business_hours", (8, 19))
    res = run(Plan(**kw), events, business_hours=business)
    assert res.columns == ["count"]
    return res.rows[0][0]


# ---------------------------------------------------------------------------------------------
# MongoDB query dicts
# ---------------------------------------------------------------------------------------------


def cat(name: str, **doc) -> bool:
    return mongo_match(doc, CATEGORIES[name].match)


def test_plain_operators() -> None:
    assert mongo_match({"a": 1}, {"a": 1})
    assert not mongo_match({"a": 1}, {"a": 2})
    assert mongo_match({}, {"a": None})  # null matches missing
    assert mongo_match({"a": None}, {"a": None})
    assert not mongo_match({"a": 0}, {"a": None})
    assert not mongo_match({}, {"a": {"$ne": None}})
    assert mongo_match({"a": 3}, {"a": {"$eq": 3, "$ne": 4}})
    assert mongo_match({}, {"a": {"$in": [None, 1]}})
    assert not mongo_match({}, {"a": {"$nin": [None]}})
    assert mongo_match({}, {"a": {"$nin": [1]}})
    assert not mongo_match({"a": True}, {"a": 1})  # booleans are not numbers
    assert mongo_match({"a": "x"}, {"$or": [{"a": "y"}, {"a": "x"}]})
    assert mongo_match({"a": "Hello"}, {"a": {"$regex": "^hel", "$options": "i"}})
    assert not mongo_match({"a": "Hello"}, {"a": {"$regex": "^hel"}})
    assert not mongo_match({"a": 5}, {"a": {"$regex": "5"}})  # a regex only matches strings
    assert mongo_match({}, {"a": {"$not": {"$regex": "x"}}})  # $not matches missing


def test_categories() -> None:
    assert cat("dml", action_name="INSERT") and cat("dml", action_name="MERGE")
    assert not cat("dml", action_name="SELECT")
    assert cat("ddl", action_name="CREATE TABLE") and cat("ddl", action_name="ALTER USER")
    assert cat("ddl", action_name="TRUNCATE")
    assert not cat("ddl", action_name="CREATEX")  # \b after the verb
    assert not cat("ddl", action_name="SELECT")
    assert cat("destructive", action_name="DELETE") and cat("destructive", action_name="DROP TABLE")
    assert not cat("destructive", action_name="DELETE ROWS")  # ^DELETE$
    assert cat("role", action_name="CREATE ROLE") and cat("role", action_name="SET ROLE")
    assert not cat("role", action_name="ROLES")
    assert cat("temporary", object_name="TMP_X") and cat("temporary", object_name="X_TEMP")
    assert cat("temporary", object_name="GTT_A")
    assert cat("temporary", object_name="T", sql_text="CREATE GLOBAL TEMPORARY TABLE t")
    assert not cat("temporary", object_name="TEMPLATE")
    assert not cat("temporary")
    assert cat("view", action_name="CREATE VIEW") and cat("view", object_name="EMP_V")
    assert cat("view", object_name="V_EMP") and cat("view", object_name="GV$SQL")
    assert cat("dictionary", object_schema="SYS") and cat("dictionary", object_name="DBA_USERS")
    assert cat("dictionary", object_name="V$SESSION")
    assert not cat("dictionary", object_schema="HR", object_name="EMP")
    assert cat("procedure", action_name="EXECUTE") and cat("procedure", action_name="CREATE PACKAGE BODY")
    # UPDATE/DELETE whose sql_text has no WHERE, whatever its case; no sql_text at all counts too
    assert cat("no_where", action_name="UPDATE", sql_text="update emp set sal = 1")
    assert not cat("no_where", action_name="UPDATE", sql_text="update emp set sal = 1 where id = 2")
    assert not cat("no_where", action_name="DELETE", sql_text="DELETE FROM emp WHERE id = 2")
    assert cat("no_where", action_name="DELETE")
    assert not cat("no_where", action_name="SELECT", sql_text="select 1")
    # system_privilege_used neither missing, null nor empty
    assert cat("system_privilege", system_privilege_used="CREATE ANY TABLE")
    assert not cat("system_privilege", system_privilege_used="")
    assert not cat("system_privilege", system_privilege_used=None)
    assert not cat("system_privilege")


# ---------------------------------------------------------------------------------------------
# Filters and period
# ---------------------------------------------------------------------------------------------

# 2024-01-02 is a Tuesday, 2024-01-06 a Saturday, 2024-01-07 a Sunday.
FILTER_EVENTS = [
    ev("2024-01-02 07:30", dbusername="SCOTT", sql_text="select * from emp"),  # 1
    ev("2024-01-02 08:00", dbusername="SCOTT", action_name="UPDATE", sql_text="UPDATE emp SET sal=1"),  # 2
    ev(
        "2024-01-02 18:59", dbusername="HR", action_name="DELETE", return_code=942, sql_text="delete from emp"
    ),
    ev("2024-01-02 19:00", dbusername="HR", action_name="INSERT", sql_text="insert into emp values (1)"),  # 4
    ev("2024-01-02 23:15", dbusername="ADMIN", action_name="DROP TABLE", sql_text="DROP TABLE tmp_x"),  # 5
    ev("2024-01-03 02:00", dbusername="ADMIN", return_code=1017),  # 6, no sql_text
    ev("2024-01-06 10:00", dbusername="SCOTT", sql_text="SELECT salary FROM emp"),  # 7
    ev("2024-01-07 12:00", dbusername="HR", return_code=...),  # 8, no return_code
    ev("2024-01-03 09:00", action_name="LOGON"),  # 9, no dbusername
]


def test_include_exclude() -> None:
    assert count(FILTER_EVENTS) == 9
    assert count(FILTER_EVENTS, filters=Filters(include={"dbusername": ["SCOTT"]})) == 3  # 1 2 7
    assert count(FILTER_EVENTS, filters=Filters(include={"dbusername": ["SCOTT", "HR"]})) == 6
    # the event without a user is not SCOTT: it stays
    assert count(FILTER_EVENTS, filters=Filters(exclude={"dbusername": ["SCOTT"]})) == 6  # 3 4 5 6 8 9
    both = Filters(include={"dbusername": ["SCOTT", "HR"]}, exclude={"action_name": ["SELECT"]})
    assert count(FILTER_EVENTS, filters=both) == 3  # 2 3 4
    assert count(FILTER_EVENTS, filters=Filters(include={"return_code": [942, 1017]})) == 2


def test_categories_filters() -> None:
    assert count(FILTER_EVENTS, filters=Filters(categories=["dml"])) == 3  # 2 3 4
    assert count(FILTER_EVENTS, filters=Filters(categories=["dml", "destructive"])) == 1  # 3
    assert count(FILTER_EVENTS, filters=Filters(exclude_categories=["read"])) == 5  # 2 3 4 5 9
    assert count(FILTER_EVENTS, filters=Filters(exclude_categories=["read", "dml"])) == 2  # 5 9
    assert count(FILTER_EVENTS, filters=Filters(categories=["temporary"])) == 0  # tmp_x is in sql only
    assert count(FILTER_EVENTS, filters=Filters(categories=["no_where"])) == 2  # 2 and 3


def test_failed_and_sql_contains() -> None:
    # failed: return_code != 0, a missing code included (MongoDB $ne)
    assert count(FILTER_EVENTS, filters=Filters(failed=True)) == 3  # 3 6 8
    assert count(FILTER_EVENTS, filters=Filters(failed=False)) == 6  # 1 2 4 5 7 9
    assert count(FILTER_EVENTS, filters=Filters(sql_contains=["EMP"])) == 5  # 1 2 3 4 7
    assert count(FILTER_EVENTS, filters=Filters(sql_contains=["salary", "TMP_"])) == 2  # 7 or 5
    assert count(FILTER_EVENTS, filters=Filters(sql_contains=["nowhere"])) == 0


def test_hours_and_off_hours() -> None:
    assert count(FILTER_EVENTS, filters=Filters(hours=(8, 19))) == 5  # 2 3 7 8 9
    assert count(FILTER_EVENTS, filters=Filters(hours=(22, 3))) == 2  # 5 (23:15) 6 (02:00)
    assert count(FILTER_EVENTS, filters=Filters(hours=(19, 24))) == 2  # 4 5
    assert count(FILTER_EVENTS, filters=Filters(hours=(0, 24))) == 9
    # outside 8-19 or on a weekend: 1 (07:30) 4 (19:00) 5 6 7 (Saturday) 8 (Sunday)
    assert count(FILTER_EVENTS, filters=Filters(off_hours=True)) == 6
    assert count(FILTER_EVENTS, filters=Filters(off_hours=False)) == 3  # 2 3 9
    assert count(FILTER_EVENTS, filters=Filters(off_hours=True), business_hours=(7, 20)) == 4  # 5 6 7 8


def test_local_hours_in_summer() -> None:
    events = [{"event_timestamp": datetime(2024, 7, 1, 6, 30, tzinfo=UTC), "action_name": "SELECT"}]
    assert count(events, filters=Filters(hours=(8, 9))) == 1  # 06:30 UTC is 08:30 in Paris in July
    assert count(events, filters=Filters(hours=(6, 7))) == 0


def test_period_bounds() -> None:
    # [start, end): 19:00 is left out
    assert count(FILTER_EVENTS, period=period("2024-01-02 08:00", "2024-01-02 19:00")) == 2  # 2 3
    assert count(FILTER_EVENTS, period=period(None, "2024-01-03 00:00")) == 5  # 1-5
    assert count(FILTER_EVENTS, period=period("2024-01-06 00:00", None)) == 2  # 7 8
    assert count(FILTER_EVENTS, period=period("2024-01-06 10:00", "2024-01-06 10:00")) == 0


# ---------------------------------------------------------------------------------------------
# Measures, grouping, order, limit
# ---------------------------------------------------------------------------------------------


def users(spec: dict[str, int], *, day: str = "2024-01-10") -> list[dict]:
    out = []
    for name, n in spec.items():
        out += [ev(f"{day} 10:{i:02d}", dbusername=name) for i in range(n)]
    return out


def test_grouping_sort_limit_total() -> None:
    events = [*users({"A": 3, "B": 3, "C": 1, "D": 5}), ev("2024-01-10 11:00"), ev("2024-01-10 11:01")]
    res = run(Plan(group_by=["dbusername"]), events)
    assert res.columns == ["dbusername", "count"]
    assert res.rows == [["D", 5], ["A", 3], ["B", 3], ["C", 1]]  # no row for the two without a user
    assert res.total == 4
    res = run(Plan(group_by=["dbusername"], order="asc"), events)
    assert res.rows == [["C", 1], ["A", 3], ["B", 3], ["D", 5]]  # ties still by name ascending
    res = run(Plan(group_by=["dbusername"], limit=2), events)
    assert res.rows == [["D", 5], ["A", 3]] and res.total == 4
    res = run(Plan(group_by=["dbusername"], order="asc", limit=1), events)
    assert res.rows == [["C", 1]] and res.total == 4


def test_two_groupings() -> None:
    events = [
        ev("2024-01-10 10:00", dbusername="A", action_name="SELECT"),
        ev("2024-01-10 10:01", dbusername="A", action_name="SELECT"),
        ev("2024-01-10 10:02", dbusername="A", action_name="UPDATE"),
        ev("2024-01-10 10:03", dbusername="B", action_name="UPDATE"),
        ev("2024-01-10 10:04", dbusername="B", action_name="UPDATE"),
        ev("2024-01-10 10:05", dbusername="B", action_name=None),
    ]
    res = run(Plan(group_by=["dbusername", "action_name"]), events)
    assert res.columns == ["dbusername", "action_name", "count"]
    assert res.rows == [["A", "SELECT", 2], ["B", "UPDATE", 2], ["A", "UPDATE", 1]]
    assert res.total == 3


def test_distinct_and_sessions() -> None:
    events = [
        ev("2024-01-10 10:00", dbusername="A", object_name="EMP", session_id=1),
        ev("2024-01-10 10:01", dbusername="A", object_name="EMP", session_id=1),
        ev("2024-01-10 10:02", dbusername="A", object_name="DEPT", session_id=2),
        ev("2024-01-10 10:03", dbusername="A", object_name=None, session_id=None),
        ev("2024-01-10 10:04", dbusername="B", object_name="EMP", session_id=3),
        ev("2024-01-10 10:05", dbusername="B", session_id=3),
        ev("2024-01-10 10:06", dbusername="C"),  # neither object nor session
    ]
    res = run(Plan(measure="distinct", field="object_name"), events)
    assert (res.columns, res.rows) == (["distinct"], [[2]])  # EMP, DEPT
    res = run(Plan(measure="distinct", field="object_name", group_by=["dbusername"]), events)
    assert res.rows == [["A", 2], ["B", 1]]  # C has no object: no row
    res = run(Plan(measure="distinct", field="dbusername"), events)
    assert res.rows == [[3]]
    res = run(Plan(measure="sessions"), events)
    assert (res.columns, res.rows) == (["sessions"], [[3]])
    res = run(Plan(measure="sessions", group_by=["dbusername"]), events)
    assert res.columns == ["dbusername", "sessions"]
    assert res.rows == [["A", 2], ["B", 1]]


DURATION_EVENTS = [
    # session 1 (A): 600 s
    ev("2024-01-10 10:00:00", dbusername="A", session_id=1, action_name="LOGON"),
    ev("2024-01-10 10:00:30", dbusername="A", session_id=1),
    ev("2024-01-10 10:10:00", dbusername="A", session_id=1, action_name="LOGOFF"),
    # session 2 (A): 45 s
    ev("2024-01-10 11:00:00", dbusername="A", session_id=2, action_name="LOGON"),
    ev("2024-01-10 11:00:45", dbusername="A", session_id=2),
    # session 3 (B): one event, 0 s
    ev("2024-01-10 12:00:00", dbusername="B", session_id=3),
    # session 4 (B): 3600 s
    ev("2024-01-10 13:00:00", dbusername="B", session_id=4, action_name="LOGON"),
    ev("2024-01-10 14:00:00", dbusername="B", session_id=4, action_name="LOGOFF"),
    # no session: ignored
    ev("2024-01-10 15:00:00", dbusername="B"),
]


def test_duration() -> None:
    res = run(Plan(measure="duration"), DURATION_EVENTS)
    assert res.columns == ["sessions", "avg_s", "max_s", "min_s"]
    # (600 + 45 + 0 + 3600) / 4 = 1061.25
    assert res.rows == [[4, 1061, 3600, 0]]
    res = run(Plan(measure="duration", group_by=["dbusername"]), DURATION_EVENTS)
    assert res.columns == ["dbusername", "sessions", "avg_s", "max_s", "min_s"]
    # B: (0 + 3600) / 2 = 1800; A: (600 + 45) / 2 = 322.5, rounded half to even: 322
    assert res.rows == [["B", 2, 1800, 3600, 0], ["A", 2, 322, 600, 45]]
    # durations within the period only: session 1 cut at 10:05 → 30 s
    res = run(
        Plan(measure="duration", period=period("2024-01-10 09:00", "2024-01-10 10:05")), DURATION_EVENTS
    )
    assert res.rows == [[1, 30, 30, 30]]
    res = run(Plan(measure="duration", period=period("2024-02-01", "2024-02-02")), DURATION_EVENTS)
    assert res.rows == [[0, None, None, None]]


def test_first_last_coverage() -> None:
    res = run(Plan(measure="first"), DURATION_EVENTS)
    assert (res.columns, res.rows) == (["first"], [[at("2024-01-10 10:00")]])
    res = run(Plan(measure="last"), DURATION_EVENTS)
    assert res.rows == [[at("2024-01-10 15:00")]]
    res = run(Plan(measure="last", group_by=["dbusername"]), DURATION_EVENTS)
    assert res.rows == [["B", at("2024-01-10 15:00")], ["A", at("2024-01-10 11:00:45")]]  # latest first
    res = run(Plan(measure="first", group_by=["dbusername"], order="asc"), DURATION_EVENTS)
    assert res.rows == [["A", at("2024-01-10 10:00")], ["B", at("2024-01-10 12:00")]]
    res = run(Plan(measure="coverage"), DURATION_EVENTS)
    assert res.columns == ["first", "last", "count"]
    assert res.rows == [[at("2024-01-10 10:00"), at("2024-01-10 15:00"), 9]]
    res = run(Plan(measure="coverage", period=period("2030-01-01", None)), DURATION_EVENTS)
    assert res.rows == [[None, None, 0]]
    assert run(Plan(measure="first", period=period("2030-01-01", None)), DURATION_EVENTS).rows == [[None]]


def test_share() -> None:
    events = [
        *[ev(f"2024-01-10 10:0{i}", dbusername="A", return_code=942 if i == 0 else 0) for i in range(4)],
        *[ev(f"2024-01-10 11:0{i}", dbusername="B", return_code=1017) for i in range(2)],
        *[ev(f"2024-01-10 12:0{i}", dbusername="C") for i in range(3)],
    ]
    failed = Filters(failed=True)
    res = run(Plan(measure="share", share_of=failed), events)
    assert res.columns == ["part", "total", "percent"]
    assert res.rows == [[3, 9, 33.3]]  # 100 * 3 / 9 = 33.33
    res = run(Plan(measure="share", share_of=failed, group_by=["dbusername"]), events)
    assert res.columns == ["dbusername", "part", "total", "percent"]
    assert res.rows == [["B", 2, 2, 100.0], ["A", 1, 4, 25.0], ["C", 0, 3, 0.0]]  # by percent
    # the part is taken within the filters
    res = run(
        Plan(measure="share", share_of=failed, filters=Filters(include={"dbusername": ["A", "C"]})), events
    )
    assert res.rows == [[1, 7, 14.3]]  # 14.2857
    res = run(Plan(measure="share", share_of=failed, period=period("2030-01-01", None)), events)
    assert res.rows == [[0, 0, 0.0]]


# ---------------------------------------------------------------------------------------------
# Time buckets
# ---------------------------------------------------------------------------------------------


def test_day_buckets_fill_the_period() -> None:
    events = [
        ev("2024-01-01 00:30"),  # 2023-12-31 23:30 UTC, a Paris 1 January
        ev("2024-01-01 12:00"),
        ev("2024-01-03 23:30"),  # 22:30 UTC, still 3 January in Paris
        ev("2024-01-05 00:00"),  # outside [1 Jan, 5 Jan)
    ]
    res = run(Plan(group_by=["day"], period=period("2024-01-01", "2024-01-05")), events)
    assert res.columns == ["day", "count"]
    assert res.rows == [["2024-01-01", 2], ["2024-01-02", 0], ["2024-01-03", 1], ["2024-01-04", 0]]
    assert res.total == 4
    # open period: from the first to the last matching event
    res = run(Plan(group_by=["day"]), events)
    assert res.rows == [
        ["2024-01-01", 2],
        ["2024-01-02", 0],
        ["2024-01-03", 1],
        ["2024-01-04", 0],
        ["2024-01-05", 1],
    ]
    res = run(Plan(group_by=["day"], period=period("2023-12-30", None)), events[:2])
    assert res.rows == [["2023-12-30", 0], ["2023-12-31", 0], ["2024-01-01", 2]]
    # no event and an open side: nothing to list
    assert run(Plan(group_by=["day"], period=period("2030-01-01", None)), events).rows == []


def test_hour_and_weekday_buckets() -> None:
    events = [
        ev("2024-01-01 00:30"),  # Monday, hour 0
        ev("2024-01-01 09:10"),  # Monday, hour 9
        ev("2024-01-06 09:50"),  # Saturday, hour 9
        ev("2024-01-07 23:59"),  # Sunday, hour 23
    ]
    res = run(Plan(group_by=["hour"]), events)
    assert res.columns == ["hour", "count"]
    expected = [[h, 0] for h in range(24)]
    expected[0][1], expected[9][1], expected[23][1] = 1, 2, 1
    assert res.rows == expected and res.total == 24
    res = run(Plan(group_by=["weekday"]), events)
    assert res.rows == [[1, 2], [2, 0], [3, 0], [4, 0], [5, 0], [6, 1], [7, 1]]
    # every hour is listed even when no event matches
    assert run(Plan(group_by=["hour"], period=period("2030-01-01", None)), events).rows == [
        [h, 0] for h in range(24)
    ]
    res = run(Plan(group_by=["weekday", "hour"]), events)
    assert len(res.rows) == 7 * 24
    assert res.rows[0] == [1, 0, 1] and res.rows[9] == [1, 9, 1] and res.rows[5 * 24 + 9] == [6, 9, 1]
    assert res.rows[-1] == [7, 23, 1] and sum(r[2] for r in res.rows) == 4


def test_week_and_month_buckets() -> None:
    events = [ev("2024-01-03 10:00"), ev("2024-01-17 10:00"), ev("2024-01-18 10:00")]
    res = run(Plan(group_by=["week"]), events)
    assert res.columns == ["week", "count"]
    assert res.rows == [["2024-W01", 1], ["2024-W02", 0], ["2024-W03", 2]]
    # ISO year: Monday 30 December 2024 is in week 1 of 2025
    res = run(Plan(group_by=["week"]), [ev("2024-12-29 10:00"), ev("2024-12-30 10:00")])
    assert res.rows == [["2024-W52", 1], ["2025-W01", 1]]
    res = run(Plan(group_by=["month"], period=period("2023-12-15", "2024-02-10")), events)
    assert res.rows == [["2023-12", 0], ["2024-01", 3], ["2024-02", 0]]
    # end excluded: a period ending on 1 February 00:00 does not list February
    res = run(Plan(group_by=["month"], period=period("2024-01-01", "2024-02-01")), events)
    assert res.rows == [["2024-01", 3]]


def test_time_bucket_with_field_is_not_filled() -> None:
    events = [
        ev("2024-01-01 10:00", dbusername="A"),
        ev("2024-01-03 10:00", dbusername="A"),
        ev("2024-01-03 11:00", dbusername="A"),
        ev("2024-01-03 12:00", dbusername="B"),
    ]
    res = run(Plan(group_by=["day", "dbusername"], period=period("2024-01-01", "2024-01-05")), events)
    assert res.rows == [["2024-01-03", "A", 2], ["2024-01-01", "A", 1], ["2024-01-03", "B", 1]]


# ---------------------------------------------------------------------------------------------
# Threshold
# ---------------------------------------------------------------------------------------------


def test_threshold_without_window() -> None:
    events = users({"A": 3, "B": 3, "C": 1, "D": 5})

    def rows(op: str, value: float) -> list:
        return run(Plan(group_by=["dbusername"], threshold=Threshold(op=op, value=value)), events).rows

    assert rows("gt", 2) == [["D", 5], ["A", 3], ["B", 3]]
    assert rows("gt", 3) == [["D", 5]]
    assert rows("gte", 3) == [["D", 5], ["A", 3], ["B", 3]]
    assert rows("lt", 3) == [["C", 1]]
    assert rows("lte", 3) == [["A", 3], ["B", 3], ["C", 1]]
    res = run(Plan(group_by=["dbusername"], threshold=Threshold(op="gt", value=2), limit=1), events)
    assert res.rows == [["D", 5]] and res.total == 3
    # ungrouped: the one row is kept or not
    assert run(Plan(threshold=Threshold(op="gt", value=11)), events).rows == [[12]]
    assert run(Plan(threshold=Threshold(op="gt", value=12)), events).rows == []


# Paris is UTC+1 in January: 11:00 local is 10:00 UTC, so 10-minute windows start at :00, :10...
WINDOW_EVENTS = [
    # A: [11:00, 11:10) 3 events, [11:10, 11:20) 2, [12:00, 12:10) 1
    *[ev(f"2024-01-10 11:{m}", dbusername="A") for m in ("01", "05", "09", "11", "12")],
    ev("2024-01-10 12:00", dbusername="A"),
    # B: [11:00, 11:10) 2, [11:10, 11:20) 2
    *[ev(f"2024-01-10 11:{m}", dbusername="B") for m in ("08", "09", "10", "19")],
    # C: [11:20, 11:30) 4, [11:30, 11:40) 1
    *[ev(f"2024-01-10 11:{m}", dbusername="C") for m in ("20", "21", "22", "29", "30")],
]


def test_threshold_with_window() -> None:
    plan = Plan(group_by=["dbusername"], threshold=Threshold(op="gte", value=2, window_minutes=10))
    res = run(plan, WINDOW_EVENTS)
    assert res.columns == ["dbusername", "count", "windows"]
    assert res.rows == [["C", 4, 1], ["A", 3, 2], ["B", 2, 2]]
    plan = Plan(group_by=["dbusername"], threshold=Threshold(op="gt", value=3, window_minutes=10))
    assert run(plan, WINDOW_EVENTS).rows == [["C", 4, 1]]
    # one 60-minute window [11:00, 12:00) holds A's five first events
    plan = Plan(group_by=["dbusername"], threshold=Threshold(op="gte", value=5, window_minutes=60))
    assert run(plan, WINDOW_EVENTS).rows == [["A", 5, 1], ["C", 5, 1]]
    # ungrouped: windows hold 5 (A3 B2), 4 (A2 B2), 4 (C), 1 (C at 11:30), 1 (A at 12:00)
    res = run(Plan(threshold=Threshold(op="gte", value=4, window_minutes=10)), WINDOW_EVENTS)
    assert (res.columns, res.rows) == (["count", "windows"], [[5, 3]])


# ---------------------------------------------------------------------------------------------
# Having, sequence, open sessions
# ---------------------------------------------------------------------------------------------

HAVING_EVENTS = [
    ev("2024-01-10 10:00", dbusername="A", action_name="SELECT"),
    ev("2024-01-10 10:01", dbusername="A", action_name="UPDATE"),
    ev("2024-01-10 10:02", dbusername="A", action_name="DELETE"),
    ev("2024-01-10 10:03", dbusername="B", action_name="SELECT"),
    ev("2024-01-10 10:04", dbusername="B", action_name="SELECT"),
    ev("2024-01-10 10:05", dbusername="C", action_name="UPDATE"),
    ev("2024-01-10 10:06", dbusername="D", action_name="DELETE"),
    ev("2024-01-10 10:07", dbusername="D", action_name="INSERT"),
]


def having(kind: str, values: list[str], **kw) -> list:
    plan = Plan(group_by=["dbusername"], having=Having(kind=kind, values=values), **kw)
    return run(plan, HAVING_EVENTS).rows


def test_having() -> None:
    assert having("both", ["SELECT", "UPDATE"]) == [["A", 3]]
    assert having("only", ["SELECT", "UPDATE"]) == [["B", 2], ["C", 1]]
    assert having("never", ["SELECT"]) == [["D", 2], ["C", 1]]
    # within the filters: without DELETE, A did only SELECT and UPDATE; D did INSERT
    no_delete = Filters(exclude={"action_name": ["DELETE"]})
    assert having("only", ["SELECT", "UPDATE"], filters=no_delete) == [["A", 2], ["B", 2], ["C", 1]]
    # the measure is then computed on the kept groups only
    never = Having(kind="never", values=["SELECT"])
    plan = Plan(group_by=["dbusername"], having=never, measure="distinct", field="action_name")
    assert run(plan, HAVING_EVENTS).rows == [["D", 2], ["C", 1]]


SEQUENCE_EVENTS = [
    ev("2024-01-10 10:00", action_name="CREATE TABLE", object_schema="S", object_name="T1"),
    ev("2024-01-10 10:30", action_name="DROP TABLE", object_schema="S", object_name="T1"),  # kept (30 min)
    ev("2024-01-10 12:00", action_name="DROP TABLE", object_schema="S", object_name="T1"),  # 120 min
    ev("2024-01-10 10:00", action_name="DROP TABLE", object_schema="S", object_name="T2"),  # no create
    ev("2024-01-10 10:05", action_name="CREATE TABLE", object_schema="S", object_name="T3"),
    ev("2024-01-10 10:05", action_name="DROP TABLE", object_schema="S", object_name="T3"),  # same time
    ev("2024-01-10 10:10", action_name="CREATE TABLE", object_schema="S", object_name="T4"),
    ev("2024-01-10 11:10", action_name="DROP TABLE", object_schema="S", object_name="T4"),  # 60 min exactly
    ev("2024-01-10 09:00", action_name="DROP TABLE", object_schema="S", object_name="T5"),  # before
    ev("2024-01-10 09:30", action_name="CREATE TABLE", object_schema="S", object_name="T5"),
    ev("2024-01-10 10:00", action_name="CREATE TABLE", object_schema="X", object_name="T6"),
    ev("2024-01-10 10:20", action_name="DROP TABLE", object_schema="Y", object_name="T6"),  # other schema
    ev("2024-01-10 10:40", action_name="SELECT", object_schema="S", object_name="T1"),  # not `then`
]


def test_sequence() -> None:
    seq = Sequence(first=["CREATE TABLE"], then=["DROP TABLE"], within_minutes=60)
    assert run(Plan(sequence=seq), SEQUENCE_EVENTS).rows == [[2]]  # T1 at 10:30, T4 (60 min inclusive)
    seq = Sequence(first=["CREATE TABLE"], then=["DROP TABLE"])
    assert run(Plan(sequence=seq), SEQUENCE_EVENTS).rows == [[3]]  # and T1 at 12:00
    res = run(Plan(sequence=seq, group_by=["object_name"]), SEQUENCE_EVENTS)
    assert res.rows == [["T1", 2], ["T4", 1]]
    res = run(Plan(sequence=seq, detail=True, order="oldest"), SEQUENCE_EVENTS)
    i_ts = EVENT_COLUMNS.index("event_timestamp")
    assert [r[i_ts] for r in res.rows] == [
        at("2024-01-10 10:30"),
        at("2024-01-10 11:10"),
        at("2024-01-10 12:00"),
    ]
    # same on the schema only: creates in S at 09:30 10:00 10:05 10:10; drops in S at 09:00 10:00
    # 10:05 10:30 11:10 12:00. Within 5 min: the 10:05 drop (10:00 create); Y.T6 has no create in Y.
    seq = Sequence(first=["CREATE TABLE"], then=["DROP TABLE"], same=["object_schema"], within_minutes=5)
    assert run(Plan(sequence=seq), SEQUENCE_EVENTS).rows == [[1]]
    # within 20 min: also the 10:30 drop (10:10 create); the 10:00 drop is 30 min after 09:30
    seq = Sequence(first=["CREATE TABLE"], then=["DROP TABLE"], same=["object_schema"], within_minutes=20)
    assert run(Plan(sequence=seq), SEQUENCE_EVENTS).rows == [[2]]


def test_open_sessions() -> None:
    events = [
        ev("2024-01-10 10:00", session_id=1, dbusername="A", action_name="LOGON"),
        ev("2024-01-10 10:05", session_id=1, dbusername="A"),
        ev("2024-01-10 10:10", session_id=1, dbusername="A", action_name="LOGOFF"),
        ev("2024-01-10 10:00", session_id=2, dbusername="B", action_name="LOGON"),
        ev("2024-01-10 10:20", session_id=2, dbusername="B"),
        ev("2024-01-10 10:00", session_id=3, dbusername="C"),  # no LOGON seen
        ev("2024-01-10 10:30", session_id=4, dbusername="D", action_name="LOGON"),
        ev("2024-01-10 10:31", dbusername="E", action_name="LOGON"),  # no session id
    ]
    assert run(Plan(measure="sessions", session_state="open"), events).rows == [[2]]  # 2 and 4
    assert run(Plan(session_state="open"), events).rows == [[3]]  # their events
    res = run(Plan(measure="sessions", session_state="open", group_by=["dbusername"]), events)
    assert res.rows == [["B", 1], ["D", 1]]
    # LOGOFF of session 1 outside the period: session 1 is open in it
    res = run(Plan(measure="sessions", session_state="open", period=period(None, "2024-01-10 10:08")), events)
    assert res.rows == [[2]]  # 1 and 2 (4 logs on at 10:30)


# ---------------------------------------------------------------------------------------------
# Compare
# ---------------------------------------------------------------------------------------------

COMPARE_EVENTS = [
    ev("2024-01-01 10:00", dbusername="A"),
    ev("2024-01-01 11:00", dbusername="A"),
    ev("2024-01-01 12:00", dbusername="B"),
    ev("2024-01-02 10:00", dbusername="A"),
    ev("2024-01-02 10:00", dbusername="C"),
    ev("2024-01-02 11:00", dbusername="C"),
    ev("2024-01-02 12:00", dbusername="C"),
]
P1 = period("2024-01-01", "2024-01-02")
P2 = period("2024-01-02", "2024-01-03")


def test_compare_ungrouped() -> None:
    res = run(Plan(period=P1, compare=P2), COMPARE_EVENTS)
    assert res.columns == ["period", "count"]
    assert res.rows == [["p1", 3], ["p2", 4]]
    res = run(Plan(measure="sessions", period=P1, compare=P2), COMPARE_EVENTS)
    assert res.rows == [["p1", 0], ["p2", 0]]


def test_compare_grouped() -> None:
    res = run(Plan(group_by=["dbusername"], period=P1, compare=P2), COMPARE_EVENTS)
    assert res.columns == ["period", "dbusername", "count"]
    assert res.rows == [
        ["p1", "A", 2],
        ["p1", "B", 1],
        ["p1", "C", 0],
        ["p2", "A", 1],
        ["p2", "B", 0],
        ["p2", "C", 3],
    ]
    res = run(Plan(group_by=["hour"], period=P1, compare=P2), COMPARE_EVENTS)
    assert len(res.rows) == 48
    assert (
        res.rows[10] == ["p1", 10, 1]
        and res.rows[24 + 10] == ["p2", 10, 2]
        and res.rows[24 + 12] == ["p2", 12, 1]
    )
    res = run(Plan(group_by=["day"], period=P1, compare=P2), COMPARE_EVENTS)
    assert res.rows == [["p1", "2024-01-01", 3], ["p2", "2024-01-02", 4]]


# ---------------------------------------------------------------------------------------------
# Detail
# ---------------------------------------------------------------------------------------------


def test_detail_events() -> None:
    events = [
        ev("2024-01-10 10:02", dbusername="B", session_id=7, sql_text="select 2"),
        ev("2024-01-10 10:00", dbusername="A"),
        ev("2024-01-10 10:04", dbusername="C", return_code=942),
        ev("2024-01-10 10:01", dbusername="A", action_name="UPDATE"),
    ]
    res = run(Plan(detail=True), events)
    assert res.columns == list(EVENT_COLUMNS) and res.total == 4
    assert [r[1] for r in res.rows] == ["C", "B", "A", "A"]  # newest first
    b = res.rows[1]
    assert b == [at("2024-01-10 10:02"), "B", "SELECT", None, None, 0, None, None, None, None, 7, "select 2"]
    res = run(Plan(detail=True, order="oldest", limit=2), events)
    assert [r[1] for r in res.rows] == ["A", "A"] and res.rows[1][2] == "UPDATE" and res.total == 4
    many = [ev(f"2024-01-10 10:{m:02d}") for m in range(60)]
    res = run(Plan(detail=True), many)
    assert len(res.rows) == 50 and res.total == 60 and res.rows[0][0] == at("2024-01-10 10:59")


def test_detail_sessions() -> None:
    res = run(Plan(detail=True, measure="sessions"), DURATION_EVENTS)
    assert res.columns == list(SESSION_COLUMNS) and res.total == 4
    assert res.rows == [
        [4, "B", None, None, at("2024-01-10 13:00"), at("2024-01-10 14:00"), 3600, 2],
        [3, "B", None, None, at("2024-01-10 12:00"), at("2024-01-10 12:00"), 0, 1],
        [2, "A", None, None, at("2024-01-10 11:00"), at("2024-01-10 11:00:45"), 45, 2],
        [1, "A", None, None, at("2024-01-10 10:00"), at("2024-01-10 10:10"), 600, 3],
    ]
    res = run(Plan(detail=True, measure="duration", order="oldest", limit=1), DURATION_EVENTS)
    assert [r[0] for r in res.rows] == [1] and res.total == 4
    res = run(Plan(detail=True, measure="duration", threshold=Threshold(op="gt", value=60)), DURATION_EVENTS)
    assert [r[0] for r in res.rows] == [4, 1] and res.total == 2


def test_result_unpacks() -> None:
    columns, rows = run(Plan(), FILTER_EVENTS)
    assert columns == ["count"] and rows == [[9]]


@pytest.mark.parametrize("measure", ["events", "sessions", "duration", "share"])
def test_empty_trail(measure: str) -> None:
    share_of = Filters(failed=True) if measure == "share" else None
    res = run(Plan(measure=measure, share_of=share_of, group_by=["dbusername"]), [])
    assert res.rows == [] and res.total == 0
