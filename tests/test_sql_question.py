"""Questions typed as SQL on UNIFIED_AUDIT_TRAIL: read exactly into a plan, or refused naming the part
a plan cannot hold (never a partial reading)."""

from datetime import datetime, timedelta

import pytest

import chat_service
from config import settings
from models import ChatRequest
from plan import Filters, Plan
from tests.blind_eval import NOW, TZ, trail
from tests.plan_oracle import evaluate
from tests.test_chat_figures import blind_trail, cell  # noqa: F401 (a fixture)
from understand import read


def ask(sql: str):
    _, gaz = trail()
    return read(sql, gaz, now=NOW, tz=TZ)


def test_a_count_with_conditions() -> None:
    r = ask("select count(*) from unified_audit_trail where dbusername='SCOTT' and return_code<>0;")
    assert r.kind == "plan" and r.plan == Plan(
        filters=Filters(include={"dbusername": ["SCOTT"]}, failed=True)
    )
    assert "requête SQL lue telle quelle" in r.notes


def test_a_ranking_over_a_relative_period() -> None:
    r = ask(
        "SELECT dbusername, COUNT(*) FROM audsys.unified_audit_trail WHERE action_name IN ('DROP TABLE',"
        "'TRUNCATE TABLE') AND event_timestamp >= SYSDATE - 7 GROUP BY dbusername ORDER BY 2 DESC "
        "FETCH FIRST 5 ROWS ONLY"
    )
    p = r.plan
    assert p.group_by == ["dbusername"] and p.order == "desc" and p.limit == 5
    assert p.filters.include == {"action_name": ["DROP TABLE", "TRUNCATE TABLE"]}
    assert p.period is not None and p.period.start == NOW - timedelta(days=7) and p.period.end is None


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "select count(distinct userhost) from unified_audit_trail where event_timestamp >= date "
            "'2026-11-01' and event_timestamp < date '2026-11-15'",
            {"measure": "distinct", "field": "userhost"},
        ),
        (
            "select max(event_timestamp) from unified_audit_trail where action_name = 'GRANT'",
            {"measure": "last"},
        ),
        ("select count(distinct sessionid) from unified_audit_trail", {"measure": "sessions"}),
        (
            "select * from unified_audit_trail where sql_text like '%SALARY%' order by event_timestamp",
            {"detail": True, "order": "oldest"},
        ),
        ("select * from unified_audit_trail where rownum <= 10", {"detail": True, "limit": 10}),
        ("select distinct object_schema from unified_audit_trail", {"group_by": ["object_schema"]}),
        (
            "select object_name, count(*) from unified_audit_trail group by object_name "
            "having count(*) > 100",
            {"group_by": ["object_name"]},
        ),
        (
            "select trunc(event_timestamp), count(*) from unified_audit_trail "
            "group by trunc(event_timestamp)",
            {"group_by": ["day"]},
        ),
    ],
)
def test_measures_and_shapes(sql: str, expected: dict) -> None:
    r = ask(sql)
    assert r.kind == "plan", (sql, r.unknown)
    for key, value in expected.items():
        assert getattr(r.plan, key) == value, (sql, key)


def test_conditions() -> None:
    p = ask(
        "select count(*) from unified_audit_trail where action_name like 'DROP%' and dbusername not in "
        "('SYS','SYSTEM') and (userhost = 'appsrv01' or userhost = 'appsrv02') and return_code = 0"
    ).plan
    assert p.filters.include["action_name"] and all(
        a.startswith("DROP") for a in p.filters.include["action_name"]
    )
    assert p.filters.exclude == {"dbusername": ["SYS", "SYSTEM"]}
    assert p.filters.include["userhost"] == ["appsrv01", "appsrv02"] and p.filters.failed is False
    between = ask(
        "select count(*) from unified_audit_trail where event_timestamp between timestamp "
        "'2026-11-20 08:00:00' and timestamp '2026-11-20 12:00:00'"
    ).plan.period
    assert between.start == datetime(2026, 11, 20, 8, tzinfo=TZ)
    assert between.end == datetime(2026, 11, 20, 12, tzinfo=TZ) + timedelta(microseconds=1)


def test_a_value_absent_from_the_trail_is_reported() -> None:
    r = ask("select count(*) from unified_audit_trail where dbusername = 'scotty'")
    assert r.kind == "plan" and r.absent == {"dbusername": ["scotty"]} and "SCOTT" in r.closest["dbusername"]
    assert ask(
        "select count(*) from unified_audit_trail where dbusername = 'scott'"
    ).plan.filters.include == {"dbusername": ["SCOTT"]}  # the stored spelling


@pytest.mark.parametrize(
    ("sql", "part"),
    [
        ("select count(*) from dba_users", "dba_users"),
        (
            "select count(*) from unified_audit_trail a join dba_users u on a.dbusername = u.username",
            "JOIN dba_users",
        ),
        (
            "select count(*) from unified_audit_trail where dbusername='SCOTT' or action_name='DROP TABLE'",
            "OR",
        ),
        ("select count(*) from unified_audit_trail where upper(dbusername)='SCOTT'", "UPPER(dbusername)"),
        ("select avg(return_code) from unified_audit_trail", "AVG(return_code)"),
        (
            "select count(*) from unified_audit_trail where dbusername in (select username from dba_users)",
            "SELECT username",
        ),
        ("select count(*) from unified_audit_trail where no_such_column = 1", "no_such_column"),
        ("select count(*) from unified_audit_trail where", "select count(*)"),
    ],
)
def test_what_a_plan_cannot_hold_is_named_and_not_answered(sql: str, part: str) -> None:
    r = ask(sql)
    assert r.kind == "not_understood" and r.plan is None, sql
    assert any(part in u for u in r.unknown), (sql, r.unknown)


async def test_the_chat_answers_sql_with_the_figures_of_its_plan(store, app, blind_trail) -> None:  # noqa: F811
    sql = (
        "select dbusername, count(*) from unified_audit_trail where action_name = 'DELETE' "
        "group by dbusername order by count(*) desc fetch first 3 rows only"
    )
    response = await chat_service.answer(
        store, cache=app.state.answer_cache, owner="sql", request=ChatRequest(message=sql), now=NOW
    )
    assert response.data is not None, response.answer
    plan = Plan.model_validate(response.plan["spec"])
    expected = evaluate(plan, blind_trail, tz=settings.tz)
    assert [[cell(c) for c in row] for row in response.data.rows] == [
        [cell(c) for c in row] for row in expected.rows
    ]
    assert len(expected.rows) == 3
