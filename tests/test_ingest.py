"""Normalisation of exported audit rows."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ingest import ImportFormatError, RowError, detect_format, normalize_row, parse_timestamp

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-08-01T10:00:00Z", datetime(2025, 8, 1, 10, 0, tzinfo=UTC)),
        ("2025-08-01T10:00:00+02:00", datetime(2025, 8, 1, 8, 0, tzinfo=UTC)),
        ("2025-08-01T10:00:00", datetime(2025, 8, 1, 8, 0, tzinfo=UTC)),  # naive: Paris, summer
        ("2025-01-15 10:00:00", datetime(2025, 1, 15, 9, 0, tzinfo=UTC)),  # naive: Paris, winter
        ("2025-01-15 10:00:00.123456", datetime(2025, 1, 15, 9, 0, 0, 123000, tzinfo=UTC)),
        ("2025-01-15T10:00:00.123456789+00:00", datetime(2025, 1, 15, 10, 0, 0, 123000, tzinfo=UTC)),
        ("15-JAN-25 10.00.00.000000 AM", datetime(2025, 1, 15, 9, 0, tzinfo=UTC)),
        ("15-JAN-25 10.00.00.000000 PM", datetime(2025, 1, 15, 21, 0, tzinfo=UTC)),
        ("15-JAN-25 12.30.00.500000 AM", datetime(2025, 1, 14, 23, 30, 0, 500000, tzinfo=UTC)),
        ("15-jan-25 12.30.00,000000 PM +00:00", datetime(2025, 1, 15, 12, 30, tzinfo=UTC)),
        ("01-AUG-99 01.02.03.000000 PM", datetime(1999, 8, 1, 11, 2, 3, tzinfo=UTC)),
        ("05-AOÛT-25 08.00.00,000000 AM", datetime(2025, 8, 5, 6, 0, tzinfo=UTC)),
    ],
)
def test_timestamp_formats(text, expected):
    assert parse_timestamp(text, PARIS) == expected


def test_unreadable_timestamp_is_a_row_error():
    with pytest.raises(RowError, match="horodatage"):
        parse_timestamp("hier vers midi", PARIS)


def test_keys_are_matched_without_case_and_with_synonyms():
    doc = normalize_row(
        {
            "OS_USERNAME": "jdupont",
            "DB_USERNAME": "SCOTT",
            "TIMESTAMP": "2025-01-15 10:00:00",
            "SESSIONID": "3900000012",
            "RETURN_CODE": "1017",
            "Action_Name": "LOGON",
            "SQL_TEXT": "",
            "CUSTOM_COLUMN": "kept",
        },
        PARIS,
    )
    assert doc["os_username"] == "jdupont"
    assert doc["dbusername"] == "SCOTT"
    assert doc["event_timestamp"] == datetime(2025, 1, 15, 9, 0, tzinfo=UTC)
    assert doc["session_id"] == 3900000012
    assert doc["return_code"] == 1017
    assert doc["action_name"] == "LOGON"
    assert doc["sql_text"] is None  # empty strings become null
    assert doc["custom_column"] == "kept"  # unknown columns are kept


def test_username_synonym_and_missing_return_code():
    doc = normalize_row({"USERNAME": "HR", "EVENT_TIMESTAMP": "2025-01-15T10:00:00Z"}, PARIS)
    assert doc["dbusername"] == "HR"
    assert doc["return_code"] == 0


def test_event_timestamp_utc_wins_and_is_read_as_utc():
    doc = normalize_row(
        {"EVENT_TIMESTAMP": "2025-01-15 10:00:00", "EVENT_TIMESTAMP_UTC": "2025-01-15 09:00:00"}, PARIS
    )
    assert doc["event_timestamp"] == datetime(2025, 1, 15, 9, 0, tzinfo=UTC)


def test_stable_id_ignores_key_case_and_order():
    a = normalize_row({"DBUSERNAME": "SCOTT", "EVENT_TIMESTAMP": "2025-01-15T10:00:00Z"}, PARIS)
    b = normalize_row({"event_timestamp": "2025-01-15 11:00:00", "dbusername": " SCOTT "}, PARIS)
    c = normalize_row({"DBUSERNAME": "SCOTT", "EVENT_TIMESTAMP": "2025-01-15T10:00:01Z"}, PARIS)
    assert a["_id"] == b["_id"]
    assert a["_id"] != c["_id"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"DBUSERNAME": "SCOTT"}, "event_timestamp manquant"),
        ({"EVENT_TIMESTAMP": "2025-01-15", "RETURN_CODE": "abc"}, "RETURN_CODE n'est pas un nombre"),
        ({"EVENT_TIMESTAMP": "2025-01-15", "SESSION_ID": "1.5"}, "SESSION_ID n'est pas un entier"),
    ],
)
def test_bad_rows(row, message):
    with pytest.raises(RowError, match=message):
        normalize_row(row, PARIS)


def test_format_detection():
    assert detect_format('[{"a": 1}]') == "json"
    assert detect_format('{"a": 1}\n{"a": 2}') == "jsonl"
    assert detect_format("\ufeffEVENT_TIMESTAMP,DBUSERNAME\n") == "csv"
    assert detect_format("EVENT_TIMESTAMP;DBUSERNAME\n") == "csv"
    for text in ("%PDF-1.7 ...", "just some words\nwithout columns", "   "):
        with pytest.raises(ImportFormatError):
            detect_format(text)


def test_identifiers_are_trimmed_but_sql_is_kept_verbatim():
    doc = normalize_row(
        {
            "TIMESTAMP": "2025-01-15",
            "DBUSERNAME": " SCOTT ",
            "SQL_BINDS": " #1(4):1234",
            "SQL_TEXT": "SELECT 1 ",
        },
        PARIS,
    )
    assert doc["dbusername"] == "SCOTT"
    assert doc["sql_binds"] == " #1(4):1234"
    assert doc["sql_text"] == "SELECT 1 "
