"""AuditFilters.exclude → MongoDB $nin, alone and merged with an inclusion on the same field."""

from models import AuditFilters


def test_exclusion_alone() -> None:
    f = AuditFilters(exclude={"dbusername": ["SCOTT", "HR_APP"]})
    assert f.to_match() == {"dbusername": {"$nin": ["SCOTT", "HR_APP"]}}
    assert not f.is_empty()
    assert AuditFilters(exclude={"dbusername": []}).is_empty()


def test_exclusion_merged_with_inclusion() -> None:
    one = AuditFilters(action_name=["SELECT"], exclude={"action_name": ["DELETE"]})
    assert one.to_match() == {"action_name": {"$eq": "SELECT", "$nin": ["DELETE"]}}
    many = AuditFilters(dbusername=["A", "B"], exclude={"dbusername": ["B"]})
    assert many.to_match() == {"dbusername": {"$in": ["A", "B"], "$nin": ["B"]}}


def test_exclusion_of_codes_with_failed() -> None:
    f = AuditFilters(failed=True, exclude={"return_code": [942]})
    assert f.to_match() == {"return_code": {"$ne": 0, "$nin": [942]}}
    ok = AuditFilters(failed=False, exclude={"return_code": [942]})
    assert ok.to_match() == {"return_code": {"$eq": 0, "$nin": [942]}}


def test_exclusion_with_time_and_other_fields() -> None:
    f = AuditFilters(object_schema=["SALES"], exclude={"dbusername": ["SALES_APP"], "session_id": [1]})
    assert f.to_match() == {
        "object_schema": "SALES",
        "dbusername": {"$nin": ["SALES_APP"]},
        "session_id": {"$nin": [1]},
    }
