"""The plan writer (answers.py) and its French helpers (french.py): pure unit tests, no store."""

from datetime import datetime

import pytest

import answers
import french as fr
import suggestions
from config import settings
from models import QueryResult
from plan import SESSION_COLUMNS, Filters, Having, Period, Plan, Sequence, Threshold

TZ = settings.tz
YEAR = datetime.now(TZ).year  # periods of the current year are said without their year
S = "\u202f"  # thousands separator, and before "%"


def at(m: int, d: int, h: int = 0, mi: int = 0, y: int = YEAR) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=TZ)


def result(columns: list[str], rows: list[list], total: int | None = None) -> QueryResult:
    return QueryResult(columns=columns, rows=rows, total=len(rows) if total is None else total)


def count(n: int) -> QueryResult:
    return result(["count"], [[n]])


HIER = Period(start=at(11, 26), end=at(11, 27), label="hier")
HIER_SOIR = Period(start=at(11, 26, 18), end=at(11, 27), label="hier soir")
SEMAINE = Period(start=at(11, 23), end=at(11, 30), label="cette semaine")
SEMAINE_DERNIERE = Period(start=at(11, 16), end=at(11, 23), label="la semaine dernière")
FAILED_LOGONS = Filters(include={"action_name": ["LOGON"]}, failed=True)


def scott(**more) -> Filters:
    return Filters(include={"dbusername": ["SCOTT"], **more.pop("include", {})}, **more)


# ---------------------------------------------------------------------------- french.py


def test_numbers_percent_and_durations():
    assert fr.fmt_int(1234) == f"1{S}234"
    assert fr.fmt_int(20_000) == f"20{S}000"
    assert fr.percent(12.5) == f"12,5{S}%"
    assert fr.signed_percent(-20) == f"\u221220,0{S}%"
    assert fr.signed_percent(25) == f"+25,0{S}%"
    assert fr.duration(42) == "42 s"
    assert fr.duration(303.4) == "5 min 03 s"
    assert fr.duration(3900) == "1 h 05 min"
    assert fr.duration(7200) == "2 h"
    assert fr.duration(90_000) == "1 j 1 h"
    assert fr.duration(0.2) == "moins d'une seconde"


def test_words_lists_and_elision():
    assert fr.de("SCOTT") == "de SCOTT"
    assert fr.de("ADM_MOREAU") == "d'ADM_MOREAU"
    assert fr.de("HR_APP") == "de HR_APP"  # letters, not a mute h
    assert fr.de("heures") == "d'heures"
    assert fr.de("le schéma HR") == "du schéma HR"
    assert fr.de("les machines") == "des machines"
    assert fr.join_words(["A", "B", "C"], "et") == "A, B et C"
    assert fr.join_words(["A", "B", "C"]) == "A, B ou C"
    assert fr.join_words(["A"]) == "A"
    assert fr.join_words([]) == ""
    assert fr.count_noun(0, "connexion", feminine=True) == "aucune connexion"
    assert fr.count_noun(1, "connexion") == "1 connexion"
    assert fr.count_noun(39, "connexion") == "39 connexions"
    assert fr.count_noun(2, "terminal", "terminaux") == "2 terminaux"
    assert fr.article("utilisateur") == "l'utilisateur"
    assert fr.article("machine", feminine=True) == "la machine"
    assert fr.weekday_name(1) == "lundi" and fr.weekday_name(7) == "dimanche"
    assert fr.hours_window(20, 6) == "entre 20:00 et 06:00"
    assert fr.ora(1017) == "ORA-01017" and fr.ora(0) == "0"


def test_short_spans():
    assert fr.span_short(at(11, 26), at(11, 27)) == "26/11"
    assert fr.span_short(at(11, 23), at(11, 30)) == "23/11–29/11"
    assert fr.span_short(at(11, 26, 18), at(11, 27)) == "26/11 18:00–24:00"
    assert fr.span_short(at(11, 26, 8), at(11, 26, 12)) == "26/11 08:00–12:00"
    assert fr.span_short(at(11, 26, 8, 44), at(11, 27, 8, 44)) == "26/11 08:44–27/11 08:44"
    assert fr.span_short(at(11, 23), None) == "depuis le 23/11"
    assert fr.span_short(at(3, 1, y=2019), at(4, 1, y=2019)) == "01/03/2019–31/03/2019"


# ---------------------------------------------------------------------------- understood


def test_understood_examples():
    assert (
        answers.understood(Plan(filters=Filters(categories=["destructive"]), period=HIER_SOIR))
        == "suppressions (DROP, TRUNCATE, DELETE) hier soir (26/11 18:00–24:00)"
    )
    failed_scott = Plan(filters=scott(include={"action_name": ["LOGON"]}, failed=True))
    assert answers.understood(failed_scott) == "connexions échouées de SCOTT sur toute la période"
    off = Plan(filters=Filters(off_hours=True, exclude={"dbusername": ["ETL_BATCH"]}), period=SEMAINE)
    assert (
        answers.understood(off)
        == "événements hors heures ouvrées, sauf ETL_BATCH, cette semaine (23/11–29/11)"
    )


def test_understood_names_every_part():
    plan = Plan(
        filters=Filters(
            include={"userhost": ["PC01", "PC02"], "object_schema": ["HR"], "object_name": ["EMP"]},
            exclude={"object_schema": ["SYS", "SYSTEM"]},
            exclude_categories=["read"],
            sql_contains=["salary"],
            hours=(20, 6),
        ),
        group_by=["dbusername", "action_name"],
        period=SEMAINE,
    )
    assert answers.understood(plan) == (
        "événements depuis les machines PC01 ou PC02 sur HR.EMP dont le SQL contient « salary » "
        "entre 20:00 et 06:00, sauf les schémas SYS et SYSTEM et les lectures (SELECT), "
        "par utilisateur et par action cette semaine (23/11–29/11)"
    )
    assert answers.understood(Plan(filters=Filters(categories=["temporary", "dml"]))) == (
        "événements des catégories « tables temporaires (TMP_, TEMP) » et "
        "« DML (INSERT, UPDATE, DELETE, MERGE) » sur toute la période"
    )
    threshold = Plan(
        filters=FAILED_LOGONS, group_by=["dbusername"], threshold=Threshold(value=5, window_minutes=10)
    )
    assert (
        answers.understood(threshold)
        == "connexions échouées par utilisateur (plus de 5 en 10 minutes) sur toute la période"
    )
    having = Plan(group_by=["dbusername"], having=Having(kind="both", values=["GRANT", "REVOKE"]))
    assert "par utilisateur ayant fait à la fois GRANT et REVOKE" in answers.understood(having)
    seq = Plan(sequence=Sequence(first=["SELECT"], then=["DELETE"], within_minutes=10))
    assert "(DELETE après un SELECT sur le même objet, en moins de 10 minutes)" in answers.understood(seq)
    compare = Plan(period=SEMAINE, compare=SEMAINE_DERNIERE)
    assert answers.understood(compare) == (
        "événements cette semaine (23/11–29/11) par rapport à la semaine dernière (16/11–22/11)"
    )
    assert answers.understood(Plan(filters=Filters(include={"return_code": [1017]}))).startswith(
        "erreurs ORA-01017"
    )
    assert answers.understood(Plan(measure="coverage")) == "période couverte par les données"


def test_a_period_label_that_names_its_date_is_not_repeated():
    plan = Plan(period=Period(start=at(11, 20), end=at(11, 21), label="le 20/11/" + str(YEAR)))
    assert answers.understood(plan) == f"événements le 20/11/{YEAR}"
    weekday = fr.WEEKDAY_NAMES[at(11, 20).weekday()]
    unlabelled = Plan(period=Period(start=at(11, 20), end=at(11, 21)))
    assert answers.understood(unlabelled) == f"événements le {weekday} 20/11/{YEAR}"


# ---------------------------------------------------------------------------- write: counts


def test_counts_take_singular_or_plural_and_the_action_as_unit():
    plan = Plan(filters=Filters(categories=["destructive"]), period=HIER_SOIR)
    assert (
        answers.write(plan, count(12))
        == "12 suppressions (DROP, TRUNCATE, DELETE) hier soir (26/11 18:00–24:00)."
    )
    assert answers.write(plan, count(1)).startswith("1 suppression (DROP")
    logons = Plan(filters=Filters(include={"action_name": ["LOGON"]}), period=HIER)
    assert answers.write(logons, count(1)) == "1 connexion hier (26/11)."
    assert answers.write(logons, count(1234)) == f"1{S}234 connexions hier (26/11)."
    errors = Plan(filters=Filters(failed=True))
    assert answers.write(errors, count(2)) == "2 erreurs sur toute la période."
    assert answers.write(Plan(filters=FAILED_LOGONS), count(1)) == "1 connexion échouée sur toute la période."
    drops = Plan(filters=Filters(include={"action_name": ["DROP TABLE"], "dbusername": ["ADM_MOREAU"]}))
    assert answers.write(drops, count(3)) == "3 suppressions de table d'ADM_MOREAU sur toute la période."
    assert answers.write(Plan(), count(2)) == "2 événements sur toute la période."


def test_empty_results_keep_their_filters():
    delete = Plan(filters=scott(include={"action_name": ["DELETE"]}), period=HIER)
    assert answers.write(delete, count(0)) == "SCOTT n'a fait aucun DELETE hier (26/11)."
    failed = Plan(filters=scott(include={"action_name": ["LOGON"]}, failed=True), period=HIER)
    assert answers.write(failed, count(0)) == "Aucune connexion échouée de SCOTT hier (26/11)."
    assert answers.write(failed, result(["count"], [])) == "Aucune connexion échouée de SCOTT hier (26/11)."
    grouped = Plan(filters=scott(), group_by=["userhost"], period=HIER)
    assert (
        answers.write(grouped, result(["userhost", "count"], [])) == "Aucun événement de SCOTT hier (26/11)."
    )
    sessions = Plan(measure="sessions", filters=scott())
    assert (
        answers.write(sessions, result(["sessions"], [[0]]))
        == "Aucune session de SCOTT sur toute la période."
    )


def test_absent_values_are_said_with_their_field_and_close_values():
    plan = Plan(filters=Filters(include={"dbusername": ["XYZ"], "action_name": ["DELETE"]}), period=HIER)
    text = answers.write(
        plan, count(0), absent={"dbusername": ["XYZ"]}, closest={"dbusername": ["XYA", "XZZ"]}
    )
    assert text == (
        "XYZ n'a fait aucun DELETE hier (26/11). L'utilisateur XYZ n'apparaît pas dans la piste d'audit. "
        "Valeurs proches : XYA, XZZ."
    )
    text = answers.write(Plan(), count(0), absent={"object_schema": ["FOO", "BAR"], "userhost": ["PC9"]})
    assert "Les schémas FOO et BAR n'apparaissent pas dans la piste d'audit." in text
    assert "La machine PC9 n'apparaît pas dans la piste d'audit." in text
    assert "Valeurs proches" not in text
    assert "Le code retour ORA-01017 n'apparaît pas" in answers.write(
        Plan(), count(0), absent={"return_code": [1017]}
    )


def test_notes_come_last():
    note = "« modifié » lu comme DML et DDL ; pour les seules modifications de structure, demandez « DDL »"
    plan = Plan(filters=Filters(categories=["change"]), period=HIER)
    text = answers.write(plan, count(5), notes=[note], absent={"dbusername": ["XYZ"]})
    assert text.startswith("5 modifications (DML et DDL) hier (26/11). L'utilisateur XYZ")
    assert text.endswith(note + ".")


# ---------------------------------------------------------------------------- write: breakdowns


def test_a_breakdown_says_how_many_groups_and_names_at_most_five():
    rows = [["ETL_BATCH", 4210], ["HR_APP", 3120], ["SCOTT", 50], ["ADM", 40], ["BOB", 30], ["EVE", 20]]
    plan = Plan(group_by=["dbusername"], period=SEMAINE, limit=6)
    text = answers.write(plan, result(["dbusername", "count"], rows, total=20))
    assert text == (
        "Événements par utilisateur cette semaine (23/11–29/11) : 20 utilisateurs — "
        f"ETL_BATCH (4{S}210), HR_APP (3{S}120), SCOTT (50), ADM (40), BOB (30) (et 15 autres)."
    )
    assert "EVE" not in text
    one = answers.write(plan, result(["dbusername", "count"], [["SCOTT", 1]]))
    assert one.endswith(": 1 utilisateur — SCOTT (1).")
    pairs = Plan(group_by=["dbusername", "action_name"])
    text = answers.write(
        pairs, result(["dbusername", "action_name", "count"], [["A", "SELECT", 3], ["B", "INSERT", 2]])
    )
    assert "par utilisateur et par action" in text and "2 groupes — A / SELECT (3), B / INSERT (2)." in text
    codes = Plan(filters=Filters(failed=True), group_by=["return_code"])
    assert "ORA-01017 (7)" in answers.write(codes, result(["return_code", "count"], [[1017, 7]]))


def test_time_buckets_name_the_busiest():
    plan = Plan(group_by=["hour"], period=HIER)
    rows = [[h, 0] for h in range(24)]
    rows[14][1], rows[9][1], rows[22][1] = 30, 12, 5
    text = answers.write(plan, result(["hour", "count"], rows))
    assert text == (
        "Événements par heure hier (26/11) : 24 heures, dont 3 non vides ; "
        "les plus chargées : 14 h (30), 9 h (12), 22 h (5)."
    )
    days = Plan(group_by=["weekday"])
    text = answers.write(days, result(["weekday", "count"], [[i, i] for i in range(1, 8)]))
    assert "dimanche (7), samedi (6)" in text
    empty = answers.write(plan, result(["hour", "count"], [[h, 0] for h in range(24)]))
    assert empty == "Aucun événement hier (26/11)."


# ---------------------------------------------------------------------------- write: other measures


def test_distinct_sessions_and_duration():
    terminals = Plan(measure="distinct", field="terminal", filters=scott())
    assert answers.write(terminals, result(["distinct"], [[7]])) == (
        "7 terminaux différents pour les événements de SCOTT sur toute la période."
    )
    hosts = Plan(measure="distinct", field="userhost")
    assert answers.write(hosts, result(["distinct"], [[1]])) == "1 seule machine sur toute la période."
    assert answers.write(hosts, result(["distinct"], [[3]])).startswith("3 machines différentes")
    sessions = Plan(measure="sessions", filters=scott(), period=HIER)
    assert answers.write(sessions, result(["sessions"], [[12]])) == "12 sessions de SCOTT hier (26/11)."
    duration = Plan(measure="duration", filters=scott(), period=HIER)
    cols = ["sessions", "avg_s", "max_s", "min_s"]
    assert answers.write(duration, result(cols, [[12, 303.4, 3900, 2]])) == (
        "12 sessions de SCOTT hier (26/11) : durée moyenne 5 min 03 s, la plus longue 1 h 05 min."
    )
    assert answers.write(duration, result(cols, [[1, 42, 42, 42]])).endswith(": durée 42 s.")
    opened = Plan(measure="sessions", session_state="open")
    assert answers.write(opened, result(["sessions"], [[3]])).startswith(
        "3 sessions ouvertes (LOGON sans LOGOFF)"
    )
    by_user = Plan(measure="duration", group_by=["dbusername"])
    text = answers.write(by_user, result(["dbusername", *cols], [["SCOTT", 4, 60, 3900, 2]]))
    assert "SCOTT (4 sessions, moyenne 1 min, max 1 h 05 min)" in text


def test_first_and_last_say_when_and_who():
    first = Plan(measure="first", filters=scott(include={"action_name": ["LOGON"]}, failed=True), period=HIER)
    row = [at(11, 26, 8, 1), "SCOTT", "PC01"]
    assert answers.write(first, result(["first", "dbusername", "userhost"], [row])) == (
        f"Première connexion échouée de SCOTT hier (26/11) : le 26/11/{YEAR} à 08:01, "
        "par SCOTT (depuis PC01)."
    )
    last = Plan(measure="last", filters=Filters(include={"action_name": ["DELETE"]}))
    text = answers.write(last, result(["last"], [[at(11, 26, 23, 59).isoformat()]]))
    assert text == f"Dernier DELETE sur toute la période : le 26/11/{YEAR} à 23:59."
    assert answers.write(last, result(["last"], [[None]])) == "Aucun DELETE sur toute la période."
    grouped = Plan(measure="last", group_by=["dbusername"])
    text = answers.write(grouped, result(["dbusername", "last"], [["SCOTT", at(11, 26, 9)]]))
    assert f"SCOTT (26/11/{YEAR} 09:00)" in text


def test_share_and_coverage():
    share = Plan(measure="share", share_of=Filters(include={"action_name": ["SELECT"]}))
    assert answers.write(share, result(["part", "total", "percent"], [[13_640, 20_000, 68.2]])) == (
        f"SELECT : 68,2{S}% des événements sur toute la période, soit 13{S}640 sur 20{S}000."
    )
    assert answers.understood(share) == "part des SELECT parmi les événements sur toute la période"
    errors = Plan(measure="share", share_of=Filters(failed=True), group_by=["dbusername"])
    text = answers.write(
        errors, result(["dbusername", "part", "total", "percent"], [["SCOTT", 13, 100, 13.0]])
    )
    assert f"SCOTT (13,0{S}%, 13 sur 100)" in text
    coverage = Plan(measure="coverage")
    row = [at(10, 28, 14, 6), at(11, 27, 14, 53), 20_000]
    assert answers.write(coverage, result(["first", "last", "count"], [row])) == (
        f"Les données couvrent du 28/10/{YEAR} 14:06 au 27/11/{YEAR} 14:53 (20{S}000 événements)."
    )


def test_compare_gives_both_periods_and_the_change():
    plan = Plan(period=SEMAINE, compare=SEMAINE_DERNIERE)
    text = answers.write(plan, result(["period", "count"], [["p1", 1200], ["p2", 1500]]))
    assert text == (
        f"Événements — cette semaine (23/11–29/11) : 1{S}200 ; "
        f"la semaine dernière (16/11–22/11) : 1{S}500 (\u221220,0{S}%)."
    )
    up = answers.write(plan, result(["period", "count"], [["p1", 150], ["p2", 100]]))
    assert up.endswith(f"(+50,0{S}%).")
    none_before = answers.write(plan, result(["period", "count"], [["p1", 3]]))
    assert none_before.endswith("la semaine dernière (16/11–22/11) : 0.")
    assert answers.write(plan, result(["period", "count"], [])) == (
        "Aucun événement cette semaine (23/11–29/11) ni la semaine dernière (16/11–22/11)."
    )
    grouped = Plan(period=SEMAINE, compare=SEMAINE_DERNIERE, group_by=["dbusername"])
    rows = [["p1", "A", 1200], ["p2", "A", 1500], ["p1", "B", 10]]
    text = answers.write(grouped, result(["period", "dbusername", "count"], rows))
    assert f": 2 utilisateurs — A (1{S}200 contre 1{S}500, \u221220,0{S}%), B (10 contre 0)." in text


def test_thresholds_and_having():
    plan = Plan(
        filters=FAILED_LOGONS, group_by=["dbusername"], threshold=Threshold(value=5, window_minutes=10)
    )
    text = answers.write(plan, result(["dbusername", "count", "windows"], [["SCOTT", 12, 4]]))
    assert text.endswith(": 1 utilisateur — SCOTT (12 en 10 min, 4 fois).")
    assert answers.write(plan, result(["dbusername", "count", "windows"], [])) == (
        "Aucun utilisateur avec plus de 5 connexions échouées en 10 minutes sur toute la période."
    )
    single = Plan(filters=FAILED_LOGONS, threshold=Threshold(value=5, window_minutes=10), period=HIER)
    assert answers.write(single, count(12)) == (
        "Au plus fort, 12 connexions échouées en 10 minutes hier (26/11) : "
        "la condition « plus de 5 en 10 minutes » est remplie."
    )
    assert "n'est pas remplie" in answers.write(single, count(3))
    both = Plan(group_by=["dbusername"], having=Having(kind="both", values=["GRANT", "REVOKE"]))
    assert answers.write(both, result(["dbusername", "count"], [])) == (
        "Aucun utilisateur n'a fait à la fois GRANT et REVOKE sur toute la période."
    )
    never = Plan(group_by=["dbusername"], having=Having(kind="never", values=["DELETE"]), period=SEMAINE)
    assert answers.write(never, result(["dbusername", "count"], [])) == (
        "Aucun utilisateur sans DELETE cette semaine (23/11–29/11)."
    )
    assert "n'ayant jamais fait DELETE" in answers.understood(never)


def test_detail_lists_a_few_events_or_sessions():
    plan = Plan(detail=True, filters=scott(include={"action_name": ["DELETE"]}), period=HIER)
    cols = ["event_timestamp", "dbusername", "action_name", "object_schema", "object_name", "return_code"]
    rows = [[at(11, 26, 18, 10 - i), "SCOTT", "DELETE", "HR", "EMP", 0] for i in range(10)]
    text = answers.write(plan, result(cols, rows, total=42))
    assert text.startswith("42 DELETE de SCOTT hier (26/11). Les 10 derniers : ")
    assert text.count(" ; ") == 5 and text.endswith(" ; …")
    assert f"26/11/{YEAR} 18:10 HR.EMP par SCOTT" in text
    oldest = plan.model_copy(update={"order": "oldest"})
    assert "Les 10 premiers : " in answers.write(oldest, result(cols, rows, total=42))
    failed = Plan(detail=True, filters=Filters(failed=True))
    text = answers.write(failed, result(cols, [[at(11, 26, 9), "BOB", "SELECT", "HR", "EMP", 942]]))
    assert text == f"1 erreur sur toute la période : 26/11/{YEAR} 09:00 SELECT HR.EMP par BOB (ORA-00942)."
    sessions = Plan(detail=True, measure="sessions", filters=scott())
    cols = list(SESSION_COLUMNS)
    row = [123, "SCOTT", "PC01", "sqlplus", at(11, 26, 8), at(11, 26, 9, 5), 3900, 42]
    assert answers.write(sessions, result(cols, [row])) == (
        f"1 session de SCOTT sur toute la période : session 123 de SCOTT depuis PC01 "
        f"(26/11/{YEAR} 08:00, 1 h 05 min, 42 événements)."
    )
    assert answers.write(plan, result(cols, [])) == "SCOTT n'a fait aucun DELETE hier (26/11)."


# ---------------------------------------------------------------------------- follow-ups and view


def test_next_questions_come_from_the_rows():
    plan = Plan(group_by=["dbusername"], period=HIER_SOIR)
    questions = suggestions.next_questions(
        plan, result(["dbusername", "count"], [["ETL_BATCH", 9], ["HR", 2]])
    )
    assert questions[0] == "Qu'a fait ETL_BATCH hier soir ?"
    assert 2 <= len(questions) <= 3
    counted = suggestions.next_questions(
        Plan(filters=Filters(categories=["destructive"]), period=HIER), count(4)
    )
    assert "Montre les événements correspondants" in counted
    empty = suggestions.next_questions(Plan(filters=scott(), period=HIER), count(0))
    assert empty[0] == "Et sur les 30 derniers jours ?"
    assert "Qu'a fait SCOTT hier ?" in empty
    whole = suggestions.next_questions(Plan(filters=scott()), count(0))
    assert "Et sur les 30 derniers jours ?" not in whole and len(whole) >= 2
    actions = suggestions.next_questions(
        Plan(group_by=["action_name"]), result(["action_name", "count"], [["INSERT", 3]])
    )
    assert actions[0] == "Qui a fait le plus d'INSERT ?"
    for q in [*questions, *counted, *empty, *actions]:
        assert "(s)" not in q and "None" not in q


@pytest.mark.parametrize(
    ("filters", "op", "values", "label"),
    [
        (Filters(include={"dbusername": ["SCOTT"]}), "in", ["SCOTT"], "utilisateur : SCOTT"),
        (Filters(exclude={"dbusername": ["A", "B"]}), "not_in", ["A", "B"], "utilisateurs : sauf A et B"),
        (Filters(categories=["ddl"]), "category", ["ddl"], "DDL (CREATE, ALTER, DROP, TRUNCATE, RENAME)"),
        (Filters(exclude_categories=["read"]), "not_category", ["read"], "sauf lectures (SELECT)"),
        (Filters(failed=True), "failed", [True], "en échec"),
        (Filters(sql_contains=["salary"]), "contains", ["salary"], "SQL contient « salary »"),
        (Filters(hours=(20, 6)), "hours", [20, 6], "entre 20:00 et 06:00"),
        (Filters(off_hours=True), "off_hours", [True], "hors heures ouvrées"),
        (Filters(include={"return_code": [1017]}), "in", [1017], "code retour : ORA-01017"),
    ],
)
def test_plan_view_filters(filters, op, values, label):
    (chip,) = answers.plan_view(Plan(filters=filters))["filters"]
    assert (chip["op"], chip["values"], chip["label"]) == (op, values, label)


def test_plan_view():
    plan = Plan(
        filters=FAILED_LOGONS,
        group_by=["dbusername"],
        threshold=Threshold(value=5, window_minutes=10),
        period=HIER_SOIR,
        limit=10,
        order="desc",
    )
    view = answers.plan_view(plan)
    assert view["measure"] == "events" and view["field"] is None
    assert view["group_by"] == ["dbusername"] and view["group_label"] == "par utilisateur"
    assert [c["op"] for c in view["filters"]] == ["in", "failed"]
    assert view["period"] == {
        "start": at(11, 26, 18).isoformat(),
        "end": at(11, 27).isoformat(),
        "label": "hier soir",
        "text": "hier soir (26/11 18:00–24:00)",
    }
    assert view["compare"] is None and view["order"] == "desc" and view["limit"] == 10
    assert view["threshold"]["value"] == 5 and view["threshold"]["label"] == "plus de 5 en 10 minutes"
    assert view["text"] == answers.understood(plan)
    compared = answers.plan_view(Plan(period=SEMAINE, compare=SEMAINE_DERNIERE))
    assert compared["compare"]["label"] == "la semaine dernière"
    assert answers.plan_view(Plan())["period"] is None
