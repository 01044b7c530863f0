"""The French answer to a plan: what was understood, the fact first, then the detail.

One writer for every plan. The wording comes from the plan (plan.py); every figure comes from the
compiler's result, whose columns follow plan.py's table of result shapes. Nothing here queries the
store or knows about HTTP.

- `understood(plan)`: the phrase stating what was understood ("connexions échouées de SCOTT hier
  (26/11)").
- `write(plan, result, notes=..., absent=..., closest=...)`: the answer.
- `next_questions(plan, result)`: two or three follow-up questions built from the result's rows.
- `plan_view(plan)`: what was understood, as data for clients (chips).
"""

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any

import french as fr
from answers_lexicon import (
    ACTION_UNITS,
    CATEGORY_UNITS,
    DDL_KINDS,
    DDL_VERBS,
    EVENT,
    FIELD_NOUNS,
    INCLUDE_PHRASES,
    MEASURE_LABELS,
    SAME_PHRASES,
    SESSION,
    THRESHOLD_WORDS,
    VALUE_COLUMNS,
    Unit,
)
from models import QueryResult
from plan import CATEGORIES, FIELDS, TIME_BUCKETS, Filters, Having, Period, Plan, Threshold
from plan import Sequence as Chain
from time_parser import fold

MAX_NAMED = 5  # groups named in a breakdown
MAX_LISTED = 5  # events listed in a detail answer
WIDE_DAYS = 29  # a period at least this long is not widened to "the last 30 days"


def action_unit(action: str) -> Unit:
    """'connexion', 'suppression de table', 'DELETE' (an action with no French noun is its own name)."""
    if action in ACTION_UNITS:
        return replace(ACTION_UNITS[action], says_actions=True)
    verb, _, kind = action.partition(" ")
    if verb in DDL_VERBS and kind in DDL_KINDS:
        one, many = DDL_VERBS[verb]
        noun = DDL_KINDS[kind]
        return Unit(f"{one} {fr.de(noun)}", f"{many} {fr.de(noun)}", True, True, says_actions=True)
    return Unit(action, action, False, True, says_actions=True)


def unit_of(filters: Filters) -> Unit:
    """What a count of events under `filters` counts, and which filters that noun already says."""
    actions = filters.include.get("action_name", [])
    codes = filters.include.get("return_code", [])
    base = EVENT
    if len(actions) == 1:
        base = action_unit(str(actions[0]))
    elif not actions and len(filters.categories) == 1 and filters.categories[0] in CATEGORY_UNITS:
        base = replace(CATEGORY_UNITS[filters.categories[0]], says_category=True)
    one_code = len(codes) == 1 and codes[0] not in (0, "0", None)
    if filters.failed is False:
        if base == EVENT:
            return Unit("événement réussi", "événements réussis", says_failed=True)
        tail = ("réussie", "réussies") if base.feminine else ("réussi", "réussis")
        return replace(base, one=f"{base.one} {tail[0]}", many=f"{base.many} {tail[1]}", says_failed=True)
    if filters.failed or one_code:
        if base == EVENT:
            if one_code:
                code = fr.ora(codes[0])
                return Unit(f"erreur {code}", f"erreurs {code}", True, says_failed=True, says_codes=True)
            return Unit("erreur", "erreurs", True, says_failed=True)
        if not filters.failed:
            return base  # one error code on a named action: said as a filter
        if base.one in ("connexion", "déconnexion"):
            return replace(base, one=base.one + " échouée", many=base.many + " échouées", says_failed=True)
        return replace(base, one=base.one + " en échec", many=base.many + " en échec", says_failed=True)
    return base


# ---------------------------------------------------------------------------- words for plan parts


def field_noun(name: str) -> tuple[str, str, bool]:
    return FIELD_NOUNS.get(name, (name, name, False))


def value_text(field: str, value: Any) -> str:
    """A stored value as said: return codes as ORA-xxxxx, time buckets in words."""
    if value is None or value == "":
        return "(vide)"
    if field == "return_code":
        return fr.ora(value)
    if field in TIME_BUCKETS:
        return bucket_text(field, value)
    return str(value)


def bucket_text(bucket: str, value: Any) -> str:
    """'14 h', 'lundi', '26/11/2026', 'semaine du 23/11/2026', 'novembre 2026'."""
    try:
        if bucket == "hour":
            return f"{int(value)} h"
        if bucket == "weekday":
            return fr.weekday_name(int(value))
        if bucket == "day":
            return date.fromisoformat(str(value)).strftime("%d/%m/%Y")
        if bucket == "week":
            year, week = str(value).split("-W")
            return "semaine du " + date.fromisocalendar(int(year), int(week), 1).strftime("%d/%m/%Y")
        if bucket == "month":
            year, month = str(value).split("-")
            return fr.month_name(int(year), int(month))
    except (ValueError, TypeError):
        pass
    return str(value)


def _values(field: str, values: Sequence[Any], word: str = "ou") -> str:
    return fr.join_words([value_text(field, v) for v in values], word)


def _noun_with_values(field: str, values: Sequence[Any], word: str = "et") -> str:
    """'le schéma SYS', 'les machines A et B', "l'utilisateur SCOTT"."""
    one, many, fem = field_noun(field)
    if len(values) == 1:
        return f"{fr.article(one, feminine=fem)} {value_text(field, values[0])}"
    return f"{fr.article(many, many=True)} {_values(field, values, word)}"


def _include_phrases(filters: Filters, unit: Unit, *, skip_user: bool = False) -> list[str]:
    """'de SCOTT', 'depuis la machine PC01', 'sur HR.EMP', '(actions X ou Y)', 'avec l'erreur ORA-01017'."""
    inc = filters.include
    parts: list[str] = []
    users = inc.get("dbusername", [])
    if users and not skip_user:
        parts.append(fr.de(_values("dbusername", users)))
    for name in FIELDS:
        values = inc.get(name, [])
        if values and name in INCLUDE_PHRASES:
            one, many = INCLUDE_PHRASES[name]
            parts.append(f"{one if len(values) == 1 else many} {_values(name, values)}")
    schemas, objects = inc.get("object_schema", []), inc.get("object_name", [])
    if len(schemas) == 1 and len(objects) == 1:
        parts.append(f"sur {schemas[0]}.{objects[0]}")
    else:
        if schemas:
            parts.append(
                ("dans le schéma " if len(schemas) == 1 else "dans les schémas ") + _values("", schemas)
            )
        if objects:
            parts.append(("sur l'objet " if len(objects) == 1 else "sur les objets ") + _values("", objects))
    actions = inc.get("action_name", [])
    if actions and not unit.says_actions:
        parts.append(("(action " if len(actions) == 1 else "(actions ") + _values("", actions) + ")")
    codes = inc.get("return_code", [])
    if codes and not unit.says_codes:
        if all(c not in (0, "0") for c in codes):
            parts.append(
                ("avec l'erreur " if len(codes) == 1 else "avec les erreurs ") + _values("return_code", codes)
            )
        else:
            parts.append(
                ("avec le code retour " if len(codes) == 1 else "avec les codes retour ")
                + _values("return_code", codes)
            )
    sql = inc.get("sql_text", [])
    if sql:
        parts.append(
            ("avec la requête SQL " if len(sql) == 1 else "avec les requêtes SQL ") + fr.quoted(sql, "ou")
        )
    return parts


def _other_phrases(filters: Filters, unit: Unit) -> list[str]:
    """Categories, failure, SQL text, hours: the conditions that are not field values."""
    parts: list[str] = []
    cats = [c for c in filters.categories if not (unit.says_category and c == filters.categories[0])]
    if cats:
        labels = [CATEGORIES[c].label for c in cats]
        parts.append(
            ("de la catégorie " if len(labels) == 1 else "des catégories ") + fr.quoted(labels, "et")
        )
    if filters.failed is not None and not unit.says_failed:
        parts.append("en échec" if filters.failed else "réussis")
    if filters.sql_contains:
        parts.append("dont le SQL contient " + fr.quoted(filters.sql_contains, "et"))
    if filters.hours is not None:
        parts.append(fr.hours_window(*filters.hours))
    if filters.off_hours is not None:
        parts.append("hors heures ouvrées" if filters.off_hours else "pendant les heures ouvrées")
    return parts


def _exclusions(filters: Filters) -> list[str]:
    """'ETL_BATCH', 'le schéma SYS', 'les lectures (SELECT)': what 'sauf' is followed by."""
    items: list[str] = []
    for name, values in filters.exclude.items():
        if name in ("dbusername", "action_name", "return_code"):
            items.extend(value_text(name, v) for v in values)
        else:
            items.append(_noun_with_values(name, values))
    for cat in filters.exclude_categories:
        label = CATEGORIES[cat].label
        first = label.split(" ")[0]
        items.append(f"les {label}" if first.islower() and first.endswith(("s", "x")) else label)
    return items


def filters_phrase(filters: Filters, unit: Unit, *, skip_user: bool = False) -> str:
    """The conditions in words after the counted noun, with a leading space: ' de SCOTT, sauf HR,'."""
    text = "".join(
        " " + p
        for p in [*_include_phrases(filters, unit, skip_user=skip_user), *_other_phrases(filters, unit)]
    )
    excluded = _exclusions(filters)
    if excluded:
        text += ", sauf " + fr.join_words(excluded, "et") + ","
    return text


def grouping_phrase(group_by: Sequence[str]) -> str:
    """'par utilisateur', 'par utilisateur et par action'."""
    return " et ".join(f"par {field_noun(g)[0]}" for g in group_by)


def _threshold_value(plan: Plan, value: float) -> str:
    if plan.measure == "duration":
        return fr.duration(value)
    if plan.measure == "share":
        return fr.percent(value)
    return fr.fmt_int(value)


def threshold_phrase(plan: Plan, threshold: Threshold, unit: Unit | None = None) -> str:
    """'plus de 5 en 10 minutes'; with `unit`: 'plus de 5 connexions échouées en 10 minutes'."""
    text = f"{THRESHOLD_WORDS[threshold.op]} {_threshold_value(plan, threshold.value)}"
    if unit is not None and plan.measure == "events":
        many = threshold.value >= 2 or (threshold.op in ("gt", "gte") and threshold.value >= 1)
        text += " " + (unit.many if many else unit.one)
    if threshold.window_minutes:
        text += " en " + fr.plural(threshold.window_minutes, "minute", "minutes")
    return text


def having_phrase(having: Having, *, negative: bool = False) -> str:
    """'ayant fait à la fois GRANT et REVOKE', "n'ayant fait que SELECT", "n'ayant jamais fait DELETE".

    `negative`: the words after 'Aucun utilisateur': "n'a fait à la fois GRANT et REVOKE",
    "n'a fait uniquement SELECT", 'sans DELETE ni DROP TABLE'.
    """
    values = having.values
    if having.field == "action_name":
        verb = "fait"
        all_of, none_of = _values("", values, "et"), _values("", values, "ni")
    else:
        verb = "utilisé"
        all_of, none_of = (
            _noun_with_values(having.field, values, "et"),
            _noun_with_values(having.field, values, "ni"),
        )
    both = f"à la fois {all_of}" if len(values) > 1 else all_of
    if negative:
        if having.kind == "both":
            return f"n'a {verb} {both}"
        if having.kind == "only":
            return f"n'a {verb} uniquement {all_of}"
        return f"sans {none_of}"
    if having.kind == "both":
        return f"ayant {verb} {both}"
    if having.kind == "only":
        return f"n'ayant {verb} que {all_of}"
    return f"n'ayant jamais {verb} {none_of}"


def sequence_phrase(seq: Chain) -> str:
    """'DELETE après un SELECT sur le même objet, en moins de 10 minutes'."""
    same = SAME_PHRASES.get(tuple(seq.same))
    if same is None:
        same = "avec " + fr.join_words(
            [fr.article(field_noun(f)[0], feminine=field_noun(f)[2]) for f in seq.same], "et"
        )
        same += " identiques" if len(seq.same) > 1 else " identique"
    text = f"{fr.join_words(seq.then)} après un {fr.join_words(seq.first)} {same}"
    if seq.within_minutes:
        text += ", en moins de " + fr.plural(seq.within_minutes, "minute", "minutes")
    return text


def period_phrase(period: Period | None) -> str:
    """'hier soir (26/11 18:00–24:00)', 'cette semaine (23/11–29/11)', 'sur toute la période'."""
    if period is None or (period.start is None and period.end is None):
        return period.label if period is not None and period.label else "sur toute la période"
    if not period.label:
        return fr.span_phrase(period.start, period.end)
    short = fr.span_short(period.start, period.end)
    label = period.label
    said = fold(label)
    for lead in ("depuis le ", "avant le "):
        if short.startswith(lead) and said.startswith(lead.split(" ")[0]):
            short = short.removeprefix(lead)
    if short in label or any(fr.fmt_day(b) in label for b in (period.start, period.end) if b):
        return label
    return f"{label} ({short})"


def _head(plan: Plan, unit: Unit, n: Any = None) -> str:
    """The measure as a noun phrase, with its figure when `n` is given: '7 terminaux différents'."""
    measure = plan.measure
    with_n = n is not None
    if measure in ("sessions", "duration"):
        one, many = (
            ("session ouverte", "sessions ouvertes")
            if plan.session_state == "open"
            else ("session", "sessions")
        )
        noun = fr.count_noun(n, one, many, feminine=True) if with_n else many
        if plan.session_state == "open":
            noun += " (LOGON sans LOGOFF)"
        if unit != EVENT:
            noun += f" avec des {unit.many}"
        if measure == "duration" and not with_n:
            noun = "durée des " + noun
        return noun
    if measure == "distinct":
        one, many, fem = field_noun(plan.field or "")
        if not with_n:
            noun = f"{many} {'différentes' if fem else 'différents'}"
        elif n == 0:
            noun = ("aucune " if fem else "aucun ") + one
        elif n == 1:
            noun = f"1 {'seule' if fem else 'seul'} {one}"
        else:
            noun = f"{fr.fmt_int(n)} {many} {'différentes' if fem else 'différents'}"
        if unit != EVENT or _include_phrases(plan.filters, unit):
            noun += f" pour les {unit.many}"
        return noun
    if measure in ("first", "last"):
        word = {("first", False): "premier", ("first", True): "première",
                ("last", False): "dernier", ("last", True): "dernière"}[(measure, unit.feminine)]  # fmt: skip
        return f"{word} {unit.one}"
    if measure == "share":
        return f"part {fr.de('les ' + _part_text(plan))} parmi les {unit.many}"
    if measure == "coverage":
        if plan.filters.is_empty():
            return "période couverte par les données"
        return f"période couverte par les {unit.many}"
    if plan.detail and not with_n:
        return "liste " + fr.de("les " + unit.many)
    return unit.of(n) if with_n else unit.many


def _part_text(plan: Plan) -> str:
    """The part of a share: 'SELECT', 'erreurs', 'événements de SCOTT'."""
    part = plan.share_of or Filters()
    unit = unit_of(part)
    return unit.many + filters_phrase(part, unit).rstrip(",")


def _where(
    plan: Plan,
    unit: Unit,
    *,
    skip_user: bool = False,
    grouping: bool = True,
    threshold: bool = True,
    period: bool = True,
    versus: str = "par rapport à",
) -> str:
    """Everything after the measure, with a leading space: filters, grouping, conditions, period.

    `versus` joins the compared period: 'par rapport à', or 'ni' in an empty answer.
    """
    text = filters_phrase(plan.filters, unit, skip_user=skip_user)
    if plan.sequence is not None:
        text += f" ({sequence_phrase(plan.sequence)})"
    if grouping and plan.group_by:
        text += " " + grouping_phrase(plan.group_by)
    if grouping and plan.having is not None and plan.group_by:
        text += " " + having_phrase(plan.having)
    if threshold and plan.threshold is not None:
        text += f" ({threshold_phrase(plan, plan.threshold)})"
    if period:
        text += " " + period_phrase(plan.period)
        if plan.compare is not None:
            text += f" {versus} " + period_phrase(plan.compare)
    return text.rstrip(",").replace(",,", ",")


def understood(plan: Plan) -> str:
    """What was understood, as one phrase: 'connexions échouées de SCOTT sur toute la période'."""
    unit = unit_of(plan.filters)
    if plan.measure == "anomalies":
        return f"activités suspectes {period_phrase(plan.period)}"
    if plan.measure == "coverage" and plan.period is None:
        return _head(plan, unit) + _where(plan, unit, period=False)
    return _head(plan, unit) + _where(plan, unit)


# ---------------------------------------------------------------------------- reading the result


def _index(result: QueryResult) -> dict[str, int]:
    return {c: i for i, c in enumerate(result.columns)}


def _cell(result: QueryResult, row: Sequence[Any], column: str) -> Any:
    idx = _index(result)
    return row[idx[column]] if column in idx and idx[column] < len(row) else None


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _when_text(value: Any) -> str:
    when = fr.as_datetime(value)
    return fr.fmt_dt(when) if when else str(value)


def _is_empty(plan: Plan, result: QueryResult) -> bool:
    """No matching event at all (so the answer is the empty sentence)."""
    if not result.rows:
        return True
    if plan.group_by or plan.detail or plan.compare is not None:
        return False
    row = result.rows[0]
    match plan.measure:
        case "duration":
            return not _number(_cell(result, row, "sessions"))
        case "first" | "last":
            return _cell(result, row, plan.measure) is None
        case "share":
            return not _number(_cell(result, row, "total"))
        case _:
            return not _number(_cell(result, row, VALUE_COLUMNS[plan.measure]))


def _single_user(plan: Plan) -> str | None:
    users = plan.filters.include.get("dbusername", [])
    return str(users[0]) if len(users) == 1 else None


# ---------------------------------------------------------------------------- sentences


def _empty(plan: Plan, unit: Unit) -> str:
    """'Aucune connexion échouée de SCOTT hier (26/11).', 'SCOTT n'a fait aucun DELETE hier (26/11).'"""
    if plan.group_by and (plan.threshold is not None or plan.having is not None):
        one, _, fem = field_noun(plan.group_by[0])
        text = ("Aucune " if fem else "Aucun ") + one
        if plan.having is not None:
            text += " " + having_phrase(plan.having, negative=True)
        if plan.threshold is not None:
            text += " avec " + threshold_phrase(plan, plan.threshold, unit)
        return text + _where(plan, unit, grouping=False, threshold=False, versus="ni") + "."
    if plan.threshold is not None:
        where = _where(plan, unit, threshold=False, versus="ni")
        condition = threshold_phrase(plan, plan.threshold)
        return f"{fr.cap(unit.many)}{where} : la condition « {condition} » n'est pas remplie."
    counted = SESSION if plan.measure in ("sessions", "duration") else unit
    if plan.measure in ("sessions", "duration") and unit != EVENT:
        counted = replace(SESSION, one=f"session avec des {unit.many}")
    user = _single_user(plan)
    if user and counted.done:
        where = _where(plan, unit, skip_user=True, grouping=False, versus="ni")
        return f"{user} n'a fait {counted.none()}{where}."
    return f"{fr.cap(counted.none())}{_where(plan, unit, grouping=False, versus='ni')}."


def _who_what(result: QueryResult, row: Sequence[Any]) -> str:
    """', par SCOTT (DELETE sur HR.EMP, depuis PC01)' from whichever of those columns the row has."""
    user = _cell(result, row, "dbusername")
    bits = []
    action = _cell(result, row, "action_name")
    obj = _object(result, row)
    if action and obj:
        bits.append(f"{action} sur {obj}")
    elif action or obj:
        bits.append(str(action or obj))
    host = _cell(result, row, "userhost")
    if host:
        bits.append(f"depuis {host}")
    program = _cell(result, row, "client_program_name")
    if program:
        bits.append(f"avec {program}")
    code = _cell(result, row, "return_code")
    if code:
        bits.append(fr.ora(code))
    text = f", par {user}" if user else ""
    return text + (f" ({', '.join(bits)})" if bits else "")


def _object(result: QueryResult, row: Sequence[Any]) -> str | None:
    name = _cell(result, row, "object_name")
    if not name:
        return None
    schema = _cell(result, row, "object_schema")
    return f"{schema}.{name}" if schema else str(name)


def _single(plan: Plan, result: QueryResult, unit: Unit) -> str:
    """An ungrouped, non-empty result, one sentence per measure."""
    row = result.rows[0]
    where = _where(plan, unit)
    match plan.measure:
        case "events" | "distinct" | "sessions":
            n = _cell(result, row, VALUE_COLUMNS[plan.measure])
            if plan.threshold is not None:
                return _single_threshold(plan, unit, n)
            return f"{fr.cap(_head(plan, unit, n))}{where}."
        case "duration":
            n = _cell(result, row, "sessions")
            avg, longest = _cell(result, row, "avg_s"), _cell(result, row, "max_s")
            text = f"{fr.cap(_head(plan, unit, n))}{where} : "
            if _number(n) < 2:
                return text + f"durée {fr.duration(avg)}."
            return text + f"durée moyenne {fr.duration(avg)}, la plus longue {fr.duration(longest)}."
        case "first" | "last":
            when = fr.as_datetime(_cell(result, row, plan.measure))
            at = fr.at_time(when) if when else str(_cell(result, row, plan.measure))
            return f"{fr.cap(_head(plan, unit))}{where} : {at}{_who_what(result, row)}."
        case "share":
            part, total = _cell(result, row, "part"), _cell(result, row, "total")
            pct = fr.percent(_number(_cell(result, row, "percent")))
            whole = fr.de("les " + unit.many)
            return (
                f"{fr.cap(_part_text(plan))} : {pct} {whole}{where}, "
                f"soit {fr.fmt_int(part)} sur {fr.fmt_int(total)}."
            )
        case "coverage":
            first, last = _when_text(_cell(result, row, "first")), _when_text(_cell(result, row, "last"))
            n = _cell(result, row, "count")
            if plan.filters.is_empty() and plan.period is None:
                return f"Les données couvrent du {first} au {last} ({unit.of(n)})."
            return f"{fr.cap(unit.many)}{where} : du {first} au {last} ({unit.of(n)})."
    return f"{fr.cap(fr.plural(result.total, 'résultat', 'résultats'))}{where}."


def _passes(value: float, threshold: Threshold) -> bool:
    match threshold.op:
        case "gt":
            return value > threshold.value
        case "gte":
            return value >= threshold.value
        case "lt":
            return value < threshold.value
        case _:
            return value <= threshold.value


def _single_threshold(plan: Plan, unit: Unit, n: Any) -> str:
    assert plan.threshold is not None
    threshold = plan.threshold
    where = _where(plan, unit, threshold=False)
    head = _head(plan, unit, n)
    if threshold.window_minutes:
        head = f"au plus fort, {head} en {fr.plural(threshold.window_minutes, 'minute', 'minutes')}"
    verdict = "est remplie" if _passes(_number(n), threshold) else "n'est pas remplie"
    return f"{fr.cap(head)}{where} : la condition « {threshold_phrase(plan, threshold)} » {verdict}."


def _measure_text(plan: Plan, result: QueryResult, row: Sequence[Any]) -> str:
    """A group's figure, as put in brackets after its name."""
    match plan.measure:
        case "duration":
            n = _cell(result, row, "sessions")
            text = fr.plural(n, "session", "sessions")
            text += f", moyenne {fr.duration(_cell(result, row, 'avg_s'))}"
            if _number(n) >= 2:
                text += f", max {fr.duration(_cell(result, row, 'max_s'))}"
            return text
        case "first" | "last":
            return _when_text(_cell(result, row, plan.measure))
        case "share":
            pct = fr.percent(_number(_cell(result, row, "percent")))
            part, total = _cell(result, row, "part"), _cell(result, row, "total")
            return f"{pct}, {fr.fmt_int(part)} sur {fr.fmt_int(total)}"
    text = fr.fmt_int(_cell(result, row, VALUE_COLUMNS.get(plan.measure, "count")))
    windows = _cell(result, row, "windows")
    if plan.threshold is not None and plan.threshold.window_minutes:
        text += f" en {plan.threshold.window_minutes} min"
        if windows is not None:
            text += f", {fr.plural(windows, 'fois', 'fois')}"
    return text


def _group_label(plan: Plan, result: QueryResult, row: Sequence[Any]) -> str:
    return " / ".join(value_text(g, _cell(result, row, g)) for g in plan.group_by)


def _groups_noun(plan: Plan, n: int) -> str:
    if len(plan.group_by) == 1:
        one, many, _ = field_noun(plan.group_by[0])
        return fr.plural(n, one, many)
    return fr.plural(n, "groupe", "groupes")


def _grouped(plan: Plan, result: QueryResult, unit: Unit) -> str:
    """'Événements par utilisateur hier (26/11) : 20 utilisateurs — A (4 210), ... (et 15 autres).'"""
    header = fr.cap(_head(plan, unit) + _where(plan, unit))
    rows = result.rows
    value_col = VALUE_COLUMNS.get(plan.measure, "count")
    if plan.group_by[0] in TIME_BUCKETS and len(plan.group_by) == 1 and plan.measure not in ("first", "last"):
        filled = [r for r in rows if _number(_cell(result, r, value_col))]
        if not filled:
            return _empty(plan, unit)
        busiest = sorted(filled, key=lambda r: -_number(_cell(result, r, value_col)))[:MAX_NAMED]
        _, _, fem = field_noun(plan.group_by[0])
        items = ", ".join(
            f"{_group_label(plan, result, r)} ({_measure_text(plan, result, r)})" for r in busiest
        )
        text = f"{header} : {_groups_noun(plan, len(rows))}"
        if len(filled) < len(rows):
            text += f", dont {fr.plural(len(filled), 'non vide', 'non vides')}"
        if len(filled) == 1:
            return f"{text} : {items}."
        return f"{text} ; {'les plus chargées' if fem else 'les plus chargés'} : {items}."
    n_groups = max(result.total, len(rows))
    shown = rows[:MAX_NAMED]
    items = ", ".join(f"{_group_label(plan, result, r)} ({_measure_text(plan, result, r)})" for r in shown)
    more = n_groups - len(shown)
    tail = f" (et {fr.plural(more, 'autre', 'autres')})" if more > 0 else ""
    return f"{header} : {_groups_noun(plan, n_groups)} — {items}{tail}."


def _compare_value(plan: Plan, value: Any) -> str:
    if plan.measure in ("first", "last"):
        return _when_text(value) if value is not None else "aucun"
    if plan.measure == "duration":
        return fr.duration(value) if value is not None else "aucune session"
    if plan.measure == "share":
        return fr.percent(_number(value))
    return fr.fmt_int(value if value is not None else 0)


def _delta(plan: Plan, v1: Any, v2: Any) -> str:
    """' (−20,0 %)': the change from the compared period to the period; '' when it has no meaning."""
    if plan.measure in ("first", "last") or v1 is None or v2 is None:
        return ""
    a, b = _number(v1), _number(v2)
    if plan.measure == "share":
        diff = a - b
        sign = "" if round(diff, 1) == 0 else ("+" if diff > 0 else fr.MINUS)
        return f" ({sign}{fr.fmt_decimal(abs(diff))} point{'s' if abs(diff) >= 2 else ''})"
    if not b:
        return ""
    return f" ({fr.signed_percent((a - b) / b * 100)})"


def _compare(plan: Plan, result: QueryResult, unit: Unit) -> str:
    """'Événements — cette semaine (23/11–29/11) : 1 200 ; la semaine dernière (…) : 1 500 (−20,0 %).'"""
    value_col = VALUE_COLUMNS.get(plan.measure, "count")
    p1, p2 = period_phrase(plan.period), period_phrase(plan.compare)
    head = _head(plan, unit) + _where(plan, unit, period=False)
    if not plan.group_by:
        values: dict[str, Any] = {}
        for row in result.rows:
            values[str(_cell(result, row, "period"))] = _cell(result, row, value_col)
        v1, v2 = values.get("p1"), values.get("p2")
        if plan.measure not in ("first", "last", "duration", "share"):
            v1, v2 = v1 or 0, v2 or 0
        return (
            f"{fr.cap(head)} — {p1} : {_compare_value(plan, v1)} ; "
            f"{p2} : {_compare_value(plan, v2)}{_delta(plan, v1, v2)}."
        )
    groups: dict[str, dict[str, Any]] = {}
    for row in result.rows:
        key = _group_label(plan, result, row)
        groups.setdefault(key, {})[str(_cell(result, row, "period"))] = _cell(result, row, value_col)
    if not groups:
        return _empty(plan, unit)
    items = []
    for key, per in list(groups.items())[:MAX_NAMED]:
        v1, v2 = per.get("p1"), per.get("p2")
        if plan.measure not in ("first", "last", "duration", "share"):
            v1, v2 = v1 or 0, v2 or 0
        delta = _delta(plan, v1, v2).strip(" ()")
        versus = f"{_compare_value(plan, v1)} contre {_compare_value(plan, v2)}"
        items.append(f"{key} ({versus}{', ' + delta if delta else ''})")
    more = len(groups) - len(items)
    tail = f" (et {fr.plural(more, 'autre', 'autres')})" if more > 0 else ""
    count = _groups_noun(plan, len(groups))
    return f"{fr.cap(head)}, {p1} par rapport à {p2} : {count} — {', '.join(items)}{tail}."


def _event_item(result: QueryResult, row: Sequence[Any], unit: Unit) -> str:
    """'26/11/2026 18:05 DELETE HR.EMP par SCOTT (ORA-01031)'."""
    bits = [_when_text(_cell(result, row, "event_timestamp"))]
    action = _cell(result, row, "action_name")
    if action and not unit.says_actions:
        bits.append(str(action))
    obj = _object(result, row)
    if obj:
        bits.append(obj)
    user = _cell(result, row, "dbusername")
    if user:
        bits.append(f"par {user}")
    host = _cell(result, row, "userhost")
    if host and not obj:
        bits.append(f"depuis {host}")
    text = " ".join(bits)
    code = _cell(result, row, "return_code")
    if code:
        text += f" ({fr.ora(code)})"
    return text


def _session_item(result: QueryResult, row: Sequence[Any]) -> str:
    """'session 123 de SCOTT depuis PC01 (26/11/2026 08:00, 1 h 05 min, 42 événements)'."""
    text = f"session {_cell(result, row, 'session_id')}"
    user = _cell(result, row, "dbusername")
    if user:
        text += " " + fr.de(str(user))
    host = _cell(result, row, "userhost")
    if host:
        text += f" depuis {host}"
    bits = []
    start = _cell(result, row, "start")
    if start is not None:
        bits.append(_when_text(start))
    length = _cell(result, row, "duration_s")
    if length is not None:
        bits.append(fr.duration(length))
    events = _cell(result, row, "events")
    if events is not None:
        bits.append(fr.plural(events, "événement", "événements"))
    return text + (f" ({', '.join(bits)})" if bits else "")


def _detail(plan: Plan, result: QueryResult, unit: Unit) -> str:
    """'42 DELETE de SCOTT hier (26/11). Les 10 derniers : ... ; ... ; …'"""
    if not result.rows:
        return _empty(plan, unit)
    sessions = "duration_s" in result.columns or plan.measure in ("sessions", "duration")
    noun = SESSION if sessions else unit
    total = max(result.total, len(result.rows))
    head = _head(plan, unit, total) if sessions else unit.of(total)
    items = [
        _session_item(result, r) if sessions else _event_item(result, r, unit)
        for r in result.rows[:MAX_LISTED]
    ]
    listed = " ; ".join(items) + (" ; …" if len(result.rows) > MAX_LISTED else ".")
    text = f"{fr.cap(head)}{_where(plan, unit)}"
    if len(result.rows) >= total:
        return f"{text} : {listed}"
    oldest = plan.order == "oldest"
    word = (
        ("premières" if noun.feminine else "premiers")
        if oldest
        else ("dernières" if noun.feminine else "derniers")
    )
    return f"{text}. Les {fr.fmt_int(len(result.rows))} {word} : {listed}"


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?…" else text + "."


def absent_sentences(
    absent: Mapping[str, Sequence[Any]] | None, closest: Mapping[str, Sequence[Any]] | None = None
) -> list[str]:
    """ "L'utilisateur XYZ n'apparaît pas dans la piste d'audit. Valeurs proches : XYA, XYB."."""
    out = []
    for name, values in (absent or {}).items():
        if not values:
            continue
        one, many, fem = field_noun(name)
        if len(values) == 1:
            text = f"{fr.cap(fr.article(one, feminine=fem))} {value_text(name, values[0])} n'apparaît pas"
        else:
            text = f"{fr.cap(fr.article(many, many=True))} {_values(name, values, 'et')} n'apparaissent pas"
        text += " dans la piste d'audit."
        near = (closest or {}).get(name) or []
        if near:
            text += " Valeurs proches : " + ", ".join(value_text(name, v) for v in near) + "."
        out.append(text)
    return out


def write(
    plan: Plan,
    result: QueryResult,
    *,
    notes: Sequence[str] = (),
    absent: Mapping[str, Sequence[Any]] | None = None,
    closest: Mapping[str, Sequence[Any]] | None = None,
) -> str:
    """The French answer: the fact (with what was understood), absent values, then the notes."""
    unit = unit_of(plan.filters)
    if plan.measure == "anomalies":
        body = _anomalies(plan, result)
    elif plan.detail:
        body = _detail(plan, result, unit)
    elif plan.compare is not None:
        body = _compare(plan, result, unit) if result.rows else _empty(plan, unit)
    elif _is_empty(plan, result):
        body = _empty(plan, unit)
    elif plan.group_by:
        body = _grouped(plan, result, unit)
    else:
        body = _single(plan, result, unit)
    parts = [body, *absent_sentences(absent, closest), *(_sentence(n) for n in notes if n.strip())]
    return " ".join(parts)


SEVERITIES = {"critical": "critique", "high": "élevée", "medium": "moyenne", "low": "faible"}


def _anomalies(plan: Plan, result: QueryResult) -> str:
    """The findings of the detectors: how many per severity, every high one (an auditor must not miss
    one), then the next few, with their severity and time."""
    period = period_phrase(plan.period)
    if not result.rows:
        return f"Aucune activité suspecte détectée {period}."
    found = fr.count_noun(result.total, "anomalie détectée", "anomalies détectées", feminine=True)
    severities = [str(_cell(result, row, "severity")) for row in result.rows]
    counts = [
        f"{fr.fmt_int(severities.count(key))} de gravité {label}"
        for key, label in SEVERITIES.items()
        if severities.count(key)
    ]
    head = f"{fr.cap(found)} {period}" + (f" ({', '.join(counts)})" if len(counts) > 1 else "")
    lines = [f"{head} :"]
    high = [row for row, sev in zip(result.rows, severities, strict=True) if sev in ("critical", "high")]
    others = [
        row for row, sev in zip(result.rows, severities, strict=True) if sev not in ("critical", "high")
    ]
    listed = high + others[: max(0, MAX_LISTED - len(high))]
    for row in listed:
        severity = SEVERITIES.get(str(_cell(result, row, "severity")), str(_cell(result, row, "severity")))
        start = fr.as_datetime(_cell(result, row, "start"))
        when = f"{fr.fmt_dt(start)} — " if start else ""
        lines.append(f"- [{severity}] {when}{_cell(result, row, 'title')}")
    more = (
        "Le détail et les autres anomalies sont"
        if result.total > len(listed)
        else "Le détail de chaque anomalie est"
    )
    lines.append(f"{more} dans le tableau.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- follow-up questions


def _iso(value: datetime | None) -> str | None:
    return fr.local(value).isoformat(timespec="seconds") if value is not None else None


def _period_view(period: Period | None) -> dict[str, Any] | None:
    if period is None:
        return None
    return {
        "start": _iso(period.start),
        "end": _iso(period.end),
        "label": period.label or fr.span_short(period.start, period.end),
        "text": period_phrase(period),
    }


def filters_view(filters: Filters) -> list[dict[str, Any]]:
    """The filters as chips: field, op, values, French label."""
    chips: list[dict[str, Any]] = []
    for name, values in filters.include.items():
        one, many, _ = field_noun(name)
        label = f"{one if len(values) == 1 else many} : {_values(name, values)}"
        chips.append({"field": name, "op": "in", "values": list(values), "label": label})
    for name, values in filters.exclude.items():
        one, many, _ = field_noun(name)
        label = f"{one if len(values) == 1 else many} : sauf {_values(name, values, 'et')}"
        chips.append({"field": name, "op": "not_in", "values": list(values), "label": label})
    for cat in filters.categories:
        chips.append({"field": None, "op": "category", "values": [cat], "label": CATEGORIES[cat].label})
    for cat in filters.exclude_categories:
        chips.append(
            {"field": None, "op": "not_category", "values": [cat], "label": "sauf " + CATEGORIES[cat].label}
        )
    if filters.failed is not None:
        chips.append({
            "field": "return_code", "op": "failed", "values": [filters.failed],
            "label": "en échec" if filters.failed else "réussis",
        })  # fmt: skip
    if filters.sql_contains:
        chips.append({
            "field": "sql_text", "op": "contains", "values": list(filters.sql_contains),
            "label": "SQL contient " + fr.quoted(filters.sql_contains, "et"),
        })  # fmt: skip
    if filters.hours is not None:
        chips.append({
            "field": "event_timestamp", "op": "hours", "values": list(filters.hours),
            "label": fr.hours_window(*filters.hours),
        })  # fmt: skip
    if filters.off_hours is not None:
        chips.append({
            "field": "event_timestamp", "op": "off_hours", "values": [filters.off_hours],
            "label": "hors heures ouvrées" if filters.off_hours else "pendant les heures ouvrées",
        })  # fmt: skip
    return chips


def plan_view(plan: Plan) -> dict[str, Any]:
    """What was understood, as JSON-ready data for clients (chips), with the phrase as `text`."""
    threshold = None
    if plan.threshold is not None:
        threshold = {**plan.threshold.model_dump(), "label": threshold_phrase(plan, plan.threshold)}
    return {
        "measure": plan.measure,
        "measure_label": MEASURE_LABELS.get(plan.measure, plan.measure),
        "field": plan.field,
        "group_by": list(plan.group_by),
        "group_label": grouping_phrase(plan.group_by) if plan.group_by else None,
        "filters": filters_view(plan.filters),
        "share_of": filters_view(plan.share_of) if plan.share_of is not None else None,
        "period": _period_view(plan.period),
        "compare": _period_view(plan.compare),
        "order": plan.order,
        "limit": plan.limit,
        "threshold": threshold,
        "having": {**plan.having.model_dump(), "label": having_phrase(plan.having)} if plan.having else None,
        "sequence": {**plan.sequence.model_dump(), "label": sequence_phrase(plan.sequence)}
        if plan.sequence
        else None,
        "session_state": plan.session_state,
        "detail": plan.detail,
        "text": understood(plan),
        "spec": plan.model_dump(mode="json", exclude_defaults=True),  # the plan itself, to ask it again
    }
