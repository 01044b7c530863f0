"""Every time expression of the spec against fixed reference times (month, year boundaries, 00:30)."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from time_parser import parse_time

TZ = ZoneInfo("Europe/Paris")
NOW = datetime(2025, 8, 20, 14, 30, tzinfo=TZ)  # a Wednesday
MONTH_START = datetime(2025, 9, 1, 9, 0, tzinfo=TZ)  # a Monday, first of the month
NEW_YEAR = datetime(2026, 1, 2, 10, 0, tzinfo=TZ)  # a Friday
HALF_PAST_MIDNIGHT = datetime(2025, 8, 20, 0, 30, tzinfo=TZ)  # 22:30 UTC the day before


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ)


def rng(text: str, now: datetime) -> tuple[datetime | None, datetime | None]:
    m = parse_time(text, now=now, tz=TZ)
    assert m is not None, text
    return m.start, m.end


CASES = [
    # (expression, now, start, end)
    ("aujourd'hui", NOW, at(2025, 8, 20), at(2025, 8, 21)),
    ("hier", NOW, at(2025, 8, 19), at(2025, 8, 20)),
    ("avant-hier", NOW, at(2025, 8, 18), at(2025, 8, 19)),
    ("ce matin", NOW, at(2025, 8, 20, 6), at(2025, 8, 20, 12)),
    ("cet après-midi", NOW, at(2025, 8, 20, 12), at(2025, 8, 20, 18)),
    ("cet apres-midi", NOW, at(2025, 8, 20, 12), at(2025, 8, 20, 18)),
    ("hier soir", NOW, at(2025, 8, 19, 18), at(2025, 8, 20)),
    ("cette semaine", NOW, at(2025, 8, 18), at(2025, 8, 25)),
    ("la semaine dernière", NOW, at(2025, 8, 11), at(2025, 8, 18)),
    ("ce mois", NOW, at(2025, 8, 1), at(2025, 9, 1)),
    ("ce mois-ci", NOW, at(2025, 8, 1), at(2025, 9, 1)),
    ("le mois dernier", NOW, at(2025, 7, 1), at(2025, 8, 1)),
    ("les 3 derniers jours", NOW, at(2025, 8, 17, 14, 30), NOW),
    ("les trois derniers jours", NOW, at(2025, 8, 17, 14, 30), NOW),
    ("les 12 dernières heures", NOW, at(2025, 8, 20, 2, 30), NOW),
    ("la dernière heure", NOW, at(2025, 8, 20, 13, 30), NOW),
    ("depuis lundi", NOW, at(2025, 8, 18), NOW),
    ("depuis le 3 mars", NOW, at(2025, 3, 3), NOW),
    ("entre le 1er et le 5 août", NOW, at(2025, 8, 1), at(2025, 8, 6)),
    ("du 1er au 5 août", NOW, at(2025, 8, 1), at(2025, 8, 6)),
    ("du 28 juillet au 2 août", NOW, at(2025, 7, 28), at(2025, 8, 3)),
    ("le 15/01/2025", NOW, at(2025, 1, 15), at(2025, 1, 16)),
    ("en août", NOW, at(2025, 8, 1), at(2025, 9, 1)),
    ("en septembre", NOW, at(2024, 9, 1), at(2024, 10, 1)),  # the last September that has begun
    ("2025-08-01", NOW, at(2025, 8, 1), at(2025, 8, 2)),
    ("après le 2025-08-01", NOW, at(2025, 8, 1), NOW),
    ("avant le 1er août", NOW, None, at(2025, 8, 1)),
    ("lundi", NOW, at(2025, 8, 18), at(2025, 8, 19)),  # a bare weekday: the last one
    ("jeudi", NOW, at(2025, 8, 14), at(2025, 8, 15)),
    ("mercredi", NOW, at(2025, 8, 20), at(2025, 8, 21)),  # today is Wednesday
    ("hier entre 14h et 16h", NOW, at(2025, 8, 19, 14), at(2025, 8, 19, 16)),
    ("entre 22h et 23h hier", NOW, at(2025, 8, 19, 22), at(2025, 8, 19, 23)),
    ("il y a 3 jours", NOW, at(2025, 8, 17), at(2025, 8, 18)),
    ("depuis le début du mois", NOW, at(2025, 8, 1), NOW),
    # across a month boundary (Monday 1 September)
    ("hier", MONTH_START, at(2025, 8, 31), at(2025, 9, 1)),
    ("hier soir", MONTH_START, at(2025, 8, 31, 18), at(2025, 9, 1)),
    ("le mois dernier", MONTH_START, at(2025, 8, 1), at(2025, 9, 1)),
    ("la semaine dernière", MONTH_START, at(2025, 8, 25), at(2025, 9, 1)),
    ("les 3 derniers jours", MONTH_START, at(2025, 8, 29, 9), MONTH_START),
    ("depuis lundi", MONTH_START, at(2025, 9, 1), MONTH_START),
    ("entre le 30 et le 31 août", MONTH_START, at(2025, 8, 30), at(2025, 9, 1)),
    ("vendredi", MONTH_START, at(2025, 8, 29), at(2025, 8, 30)),
    # across a year boundary (Friday 2 January 2026)
    ("hier", NEW_YEAR, at(2026, 1, 1), at(2026, 1, 2)),
    ("avant-hier", NEW_YEAR, at(2025, 12, 31), at(2026, 1, 1)),
    ("le mois dernier", NEW_YEAR, at(2025, 12, 1), at(2026, 1, 1)),
    ("la semaine dernière", NEW_YEAR, at(2025, 12, 22), at(2025, 12, 29)),
    ("cette semaine", NEW_YEAR, at(2025, 12, 29), at(2026, 1, 5)),
    ("en décembre", NEW_YEAR, at(2025, 12, 1), at(2026, 1, 1)),
    ("entre le 30 décembre et le 2 janvier", NEW_YEAR, at(2025, 12, 30), at(2026, 1, 3)),
    ("du 1er au 5 août", NEW_YEAR, at(2025, 8, 1), at(2025, 8, 6)),
    ("depuis le 3 mars", NEW_YEAR, at(2025, 3, 3), NEW_YEAR),
    ("l'année dernière", NEW_YEAR, at(2025, 1, 1), at(2026, 1, 1)),
    ("les 7 derniers jours", NEW_YEAR, at(2025, 12, 26, 10), NEW_YEAR),
    ("lundi", NEW_YEAR, at(2025, 12, 29), at(2025, 12, 30)),
    # at 00:30 local time (still the previous day in UTC)
    ("aujourd'hui", HALF_PAST_MIDNIGHT, at(2025, 8, 20), at(2025, 8, 21)),
    ("hier", HALF_PAST_MIDNIGHT, at(2025, 8, 19), at(2025, 8, 20)),
    ("hier soir", HALF_PAST_MIDNIGHT, at(2025, 8, 19, 18), at(2025, 8, 20)),
    ("ce matin", HALF_PAST_MIDNIGHT, at(2025, 8, 20, 6), at(2025, 8, 20, 12)),
    ("cette nuit", HALF_PAST_MIDNIGHT, at(2025, 8, 20), at(2025, 8, 20, 6)),
    ("les 3 dernières heures", HALF_PAST_MIDNIGHT, at(2025, 8, 19, 21, 30), HALF_PAST_MIDNIGHT),
    ("depuis mercredi", HALF_PAST_MIDNIGHT, at(2025, 8, 20), HALF_PAST_MIDNIGHT),
    ("cette semaine", HALF_PAST_MIDNIGHT, at(2025, 8, 18), at(2025, 8, 25)),
    # a bound word before any period: from its start up to now, or up to it
    ("depuis ce matin", NOW, at(2025, 8, 20, 6), NOW),
    ("depuis hier soir", NOW, at(2025, 8, 19, 18), NOW),
    ("depuis la semaine dernière", NOW, at(2025, 8, 11), NOW),
    ("à partir du mois de juin", NOW, at(2025, 6, 1), NOW),
    ("depuis 2024", NOW, at(2024, 1, 1), NOW),
    ("jusqu'à hier", NOW, None, at(2025, 8, 20)),
    ("avant la semaine dernière", NOW, None, at(2025, 8, 11)),
    ("jusqu'au 5 août", NOW, None, at(2025, 8, 6)),
    # numbers in words, "sur N jours", ranges between any two days
    ("il y a deux jours", NOW, at(2025, 8, 18), at(2025, 8, 19)),
    ("sur 7 jours", NOW, at(2025, 8, 13, 14, 30), NOW),
    ("les 15 dernières minutes", NOW, at(2025, 8, 20, 14, 15), NOW),
    ("entre le 1er août et hier", NOW, at(2025, 8, 1), at(2025, 8, 20)),
    ("du 28 décembre au 3 janvier", NOW, at(2024, 12, 28), at(2025, 1, 4)),
    ("le 29 février", NOW, at(2024, 2, 29), at(2024, 3, 1)),  # the last 29 February
]


@pytest.mark.parametrize(
    ("text", "now", "start", "end"), CASES, ids=[f"{c[0]}@{c[1]:%m-%d %H:%M}" for c in CASES]
)
def test_expression(text: str, now: datetime, start: datetime | None, end: datetime | None) -> None:
    assert rng(text, now) == (start, end)


def test_ranges_are_aware_in_app_timezone() -> None:
    start, _ = rng("hier", HALF_PAST_MIDNIGHT)
    assert start.utcoffset() is not None and start.tzinfo == TZ
    assert start.isoformat() == "2025-08-19T00:00:00+02:00"


def test_found_inside_a_question_with_its_span() -> None:
    q = "Quels utilisateurs ont supprimé des lignes hier soir sur SALES ?"
    m = parse_time(q, now=NOW, tz=TZ)
    assert q[m.span[0] : m.span[1]] == "hier soir"


def test_winter_time_offset() -> None:
    start, _ = rng("le 15/01/2025", NOW)
    assert start.isoformat() == "2025-01-15T00:00:00+01:00"


@pytest.mark.parametrize(
    "text", ["session 3900001234", "terminal pts/1", "ORA-01017", "python3.11", "top 5 des utilisateurs", ""]
)
def test_no_false_time(text: str) -> None:
    assert parse_time(text, now=NOW, tz=TZ) is None


@pytest.mark.parametrize(
    "text", ["le 31 février", "le 30/02", "2025-02-30", "le 29 février 2025", "le 32 août", "le 15/13/2025"]
)
def test_impossible_date_is_not_another_day(text: str) -> None:
    m = parse_time(text, now=NOW, tz=TZ)
    assert m is not None and m.invalid and (m.start, m.end) == (None, None)


def test_impossible_bound_is_left_open_and_flagged() -> None:
    m = parse_time("activité entre le 31 février et hier", now=NOW, tz=TZ)
    assert m.invalid and (m.start, m.end) == (None, at(2025, 8, 20))
    m = parse_time("du 1er août au 31/09", now=NOW, tz=TZ)
    assert m.invalid and (m.start, m.end) == (at(2025, 8, 1), None)
    m = parse_time("entre le 30 et le 31 avril", now=NOW, tz=TZ)
    assert m.invalid and (m.start, m.end) == (at(2025, 4, 30), None)
    assert not parse_time("entre le 1er et le 5 août", now=NOW, tz=TZ).invalid


@pytest.mark.parametrize(
    "text",
    [
        "et sur toute la période ?",
        "et depuis le début ?",
        "depuis toujours",
        "toutes dates confondues",
        "sur tout l'historique",
        "depuis le début de l'audit",
        "sans limite de temps",
    ],
)
def test_all_time_is_no_range(text: str) -> None:
    m = parse_time(text, now=NOW, tz=TZ)
    assert m is not None and m.all_time and m.start is None and m.end is None and not m.invalid


def test_start_of_a_period_is_not_all_time() -> None:
    m = parse_time("depuis le début du mois", now=NOW, tz=TZ)
    assert not m.all_time and (m.start, m.end) == (datetime(2025, 8, 1, tzinfo=TZ), NOW)


def test_the_week_of_a_day_runs_monday_to_monday() -> None:
    m = parse_time("UPDATE sur SALES, semaine du 12 août", now=NOW, tz=TZ)
    assert m is not None
    assert (m.start, m.end) == (datetime(2025, 8, 11, tzinfo=TZ), datetime(2025, 8, 18, tzinfo=TZ))
    m = parse_time("DELETE la semaine du 18/07", now=NOW, tz=TZ)
    assert m is not None and (m.start, m.end) == (
        datetime(2025, 7, 14, tzinfo=TZ),
        datetime(2025, 7, 21, tzinfo=TZ),
    )
