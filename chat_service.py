"""The chat: a French question → its plan (understand) → one store query (plan_compiler) → French
(answers), or an honest answer without figures (replies): not understood, out of scope, help.

The answer is written from the query's table (every figure comes from that table), then optionally
reworded by the LLM (openai_service), which is checked against the same figures. Answers are cached by
the resolved plan (cache_service); conversations keep each turn's plan so a follow-up question
("et hier ?", "sauf SYS", "montre-les") starts from the previous one. Anomaly questions still go
through the earlier analysis path (nlp_service → anomalies).
"""

import asyncio
import math
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from typing import Any

from bson import ObjectId
from loguru import logger
from pymongo.errors import PyMongoError

import analytics
import anomalies
import answers
import conversations
import files_service
import nlp_service
import openai_service
import plan_compiler
import replies
import understand
from cache_service import AnswerCache, cache_key, normalize_question, plan_cache_key
from config import settings
from french import as_datetime as _when
from french import fmt_clock as _clock
from french import fmt_day as _day
from french import (
    fmt_dt,
    fmt_int,
    local,
    ora,
    plural,
    span_text,
)
from french import join_words as _names
from models import (
    DIMENSIONS,
    TIME_BUCKETS,
    Analysis,
    AuditFilters,
    ChatData,
    ChatRequest,
    ChatResponse,
    Intent,
    QueryResult,
    TimeRange,
)
from nlp_lexicon import gazetteer
from plan import Plan
from suggestions import next_questions as next_questions_for_plan
from time_parser import fold

EXAMPLES = replies.EXAMPLES  # questions known to work (suggestions, help, "not understood")

DEFAULT_NEXT = [
    "Quels sont les utilisateurs les plus actifs ?",
    "Y a-t-il des activités suspectes cette semaine ?",
    "Combien de connexions échouées hier ?",
    "Quelles sont les actions les plus fréquentes ?",
]

FIELD_LABELS = {
    "dbusername": ("utilisateur", "utilisateurs"),
    "os_username": ("utilisateur système", "utilisateurs système"),
    "userhost": ("machine", "machines"),
    "terminal": ("terminal", "terminaux"),
    "client_program_name": ("programme client", "programmes clients"),
    "action_name": ("action", "actions"),
    "object_schema": ("schéma", "schémas"),
    "object_name": ("objet", "objets"),
    "authentication_type": ("type d'authentification", "types d'authentification"),
    "unified_audit_policies": ("politique d'audit", "politiques d'audit"),
    "system_privilege_used": ("privilège système", "privilèges système"),
    "return_code": ("code retour", "codes retour"),
    "session_id": ("session", "sessions"),
    "hour": ("heure", "heures"),
    "day": ("jour", "jours"),
    "weekday": ("jour de la semaine", "jours de la semaine"),
    "week": ("semaine", "semaines"),
}
PRIVILEGE_ACTIONS = ["GRANT", "REVOKE", "ALTER USER", "CREATE USER", "DROP USER", "CREATE ROLE", "SET ROLE"]
DEFAULT_LIMIT = 10
EVENTS_LIMIT = 20
MAX_SUMMARY_ITEMS = 5
STREAM_PIECE_WORDS = 3
ANOMALY_DEFAULT_DAYS = 7
# Part of the cache key: bump it when the wording of template answers changes.
TEMPLATES_VERSION = 2


class ChatError(RuntimeError):
    """A chat request that cannot be served (not a question the user got wrong)."""


@dataclass
class Prepared:
    """An answer before wording: the template text and the response around it."""

    response: ChatResponse
    template: str
    key: str | None = None
    started: float = field(default_factory=time.perf_counter)
    analysis: Analysis | None = None
    files_text: str | None = None  # the attached files' text, for the LLM
    plan: Plan | None = None  # the question's reading, kept in the conversation for follow-ups
    question: str = ""


# ---------------------------------------------------------------------------- formatting


def jsonable(value: Any) -> Any:
    """A cell of `data`: datetimes as ISO strings in local time; ids as strings."""
    if isinstance(value, datetime):
        return local(value).isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def period_text(filters: AuditFilters, analysis: Analysis | None = None) -> str:
    """' hier (vendredi 20/11/2026)': the period as said, then the absolute window it was read as."""
    start, end = filters.start, filters.end
    if not start and not end:
        return " sur toute la période"
    said = analysis.time_range.text if analysis and analysis.time_range and analysis.time_range.text else ""
    span = span_text(start, end)
    if not said:
        return f" {span}" if span.startswith(("du ", "le ", "depuis ", "avant ")) else f" ({span})"
    if fold(span) in fold(said) or _day(start or end) in said:
        return f" {said}"  # the said period already names the window: 'en mars 2025', 'le 20/11/2026'
    if span.startswith("année") and span[-4:] in said:
        return f" {said}"  # 'en 2019'
    return f" {said} ({span})"


# How each filter reads in a sentence: (one value, several values), the values follow.
FILTER_PHRASES = {
    "dbusername": ("pour", "pour"),
    "os_username": ("pour l'utilisateur système", "pour les utilisateurs système"),
    "userhost": ("depuis la machine", "depuis les machines"),
    "terminal": ("depuis le terminal", "depuis les terminaux"),
    "client_program_name": ("avec", "avec"),
    "authentication_type": ("avec l'authentification", "avec les authentifications"),
    "unified_audit_policies": ("relevant de la politique d'audit", "relevant des politiques d'audit"),
    "system_privilege_used": ("avec le privilège", "avec les privilèges"),
    "session_id": ("dans la session", "dans les sessions"),
}


@dataclass(frozen=True)
class Unit:
    """What a count counts, in French: '1 connexion échouée', '39 connexions échouées'."""

    one: str
    many: str
    feminine: bool = False
    uses_actions: bool = False  # the action filter is said by the unit
    uses_failed: bool = False  # the failed filter is said by the unit
    uses_codes: bool = False  # the return code filter is said by the unit

    def of(self, n: Any) -> str:
        if n == 0:
            return ("aucune " if self.feminine else "aucun ") + self.one
        return plural(n, self.one, self.many)

    def de(self) -> str:
        """'de connexions', "d'événements" (after 'le plus', 'des')."""
        return ("d'" if fold(self.many[:1]) in "aeiouyh" else "de ") + self.many


EVENT = Unit("événement", "événements")
# Actions as nouns; anything else is 'instruction X' (feminine).
ACTION_UNITS = {
    "LOGON": Unit("connexion", "connexions", True, True),
    "LOGOFF": Unit("déconnexion", "déconnexions", True, True),
    "GRANT": Unit("attribution de privilège (GRANT)", "attributions de privilèges (GRANT)", True, True),
    "REVOKE": Unit("retrait de privilège (REVOKE)", "retraits de privilèges (REVOKE)", False, True),
    "ALTER USER": Unit(
        "modification de compte (ALTER USER)", "modifications de compte (ALTER USER)", True, True
    ),
    "CREATE USER": Unit("création de compte", "créations de compte", True, True),
    "DROP USER": Unit("suppression de compte", "suppressions de compte", True, True),
    "CREATE ROLE": Unit("création de rôle", "créations de rôle", True, True),
    "SET ROLE": Unit("activation de rôle (SET ROLE)", "activations de rôle (SET ROLE)", True, True),
    "TRUNCATE TABLE": Unit("vidage de table (TRUNCATE)", "vidages de table (TRUNCATE)", False, True),
}
DDL_VERBS = {"CREATE": ("création", "créations"), "ALTER": ("modification", "modifications"),
             "DROP": ("suppression", "suppressions")}  # fmt: skip
DDL_KINDS = {"TABLE": "table", "INDEX": "index", "VIEW": "vue", "PROCEDURE": "procédure",
             "FUNCTION": "fonction", "PACKAGE": "package", "TRIGGER": "déclencheur", "SEQUENCE": "séquence",
             "SYNONYM": "synonyme", "USER": "compte", "ROLE": "rôle"}  # fmt: skip


def action_unit(action: str) -> Unit:
    if action in ACTION_UNITS:
        return ACTION_UNITS[action]
    verb, _, kind = action.partition(" ")
    if verb in DDL_VERBS and kind in DDL_KINDS:
        one, many = DDL_VERBS[verb]
        return Unit(f"{one} de {DDL_KINDS[kind]}", f"{many} de {DDL_KINDS[kind]}", True, True)
    return Unit(f"instruction {action}", f"instructions {action}", True, True)


def unit_for(analysis: Analysis, filters: AuditFilters) -> Unit:
    """What the answer counts, from the intent and the filters actually applied."""
    intent, actions, failed = analysis.intent, filters.action_name, filters.failed
    if actions == ["LOGON"] and failed:
        return Unit("connexion échouée", "connexions échouées", True, True, True)
    if intent == Intent.ERRORS and failed and not actions:
        if len(filters.return_code) == 1:
            code = ora(filters.return_code[0])
            return Unit(f"erreur {code}", f"erreurs {code}", True, uses_failed=True, uses_codes=True)
        return Unit("erreur", "erreurs", True, uses_failed=True)
    if actions and set(actions) == set(PRIVILEGE_ACTIONS):
        return Unit(
            "opération sur les privilèges ou les comptes",
            "opérations sur les privilèges ou les comptes",
            True,
            True,
        )
    if intent == Intent.OBJECT_CHANGES and not actions:
        return Unit("modification de structure (DDL)", "modifications de structure (DDL)", True, True)
    if intent == Intent.OBJECT_CHANGES and len(actions) > 1:
        verbs = {a.split(" ")[0] for a in actions}
        if len(verbs) == 1 and next(iter(verbs)) in DDL_VERBS:
            one, many = DDL_VERBS[next(iter(verbs))]
            return Unit(f"{one} d'objet", f"{many} d'objets", True, True)
    if len(actions) == 1:
        unit = action_unit(actions[0])
        if failed is not None:
            tail = (" en échec", " en échec") if failed else (" réussie", " réussies")
            if not unit.feminine and not failed:
                tail = (" réussi", " réussis")
            return Unit(unit.one + tail[0], unit.many + tail[1], unit.feminine, True, True)
        return unit
    if failed:
        return Unit("événement en échec", "événements en échec", uses_failed=True)
    if failed is False:
        return Unit("événement réussi", "événements réussis", uses_failed=True)
    return EVENT


def filters_text(filters: AuditFilters, unit: Unit | None = None) -> str:
    """' pour SCOTT sur SALES.ORDERS hors TPETIT': the filters in words (leading space), minus the unit's."""
    unit = unit or EVENT
    parts: list[str] = []
    for name, (one, many) in FILTER_PHRASES.items():
        values = getattr(filters, name, None)
        if values and name not in ("object_schema", "object_name"):
            parts.append(f"{one if len(values) == 1 else many} {_names(values)}")
    schemas, objects = filters.object_schema, filters.object_name
    if len(schemas) == 1 and len(objects) == 1:
        parts.append(f"sur {schemas[0]}.{objects[0]}")
    else:
        if schemas:
            parts.append(("dans le schéma " if len(schemas) == 1 else "dans les schémas ") + _names(schemas))
        if objects:
            parts.append(("sur l'objet " if len(objects) == 1 else "sur les objets ") + _names(objects))
    if filters.action_name and not unit.uses_actions:
        parts.append(
            ("(action " if len(filters.action_name) == 1 else "(actions ") + _names(filters.action_name) + ")"
        )
    if filters.return_code and not unit.uses_codes:
        codes = [ora(c) for c in filters.return_code]
        parts.append(("avec l'erreur " if len(codes) == 1 else "avec les erreurs ") + _names(codes))
    elif filters.failed is not None and not unit.uses_failed and not filters.return_code:
        parts.append("en échec" if filters.failed else "réussis")
    if filters.sql_text_contains:
        parts.append("dont le SQL contient « " + " » et « ".join(filters.sql_text_contains) + " »")
    excluded = getattr(filters, "exclude", None) or {}
    if isinstance(excluded, dict):
        for name, values in excluded.items():
            if not values:
                continue
            shown = [ora(v) if name == "return_code" else v for v in values]
            if name == "action_name":
                parts.append("sauf les " + _names(shown, "et"))
            else:
                parts.append("hors " + _names(shown, "et"))
    return (" " + " ".join(parts)) if parts else ""


ENTITY_LABELS = {
    "users": "utilisateur", "os_users": "utilisateur système", "hosts": "machine", "terminals": "terminal",
    "programs": "programme", "actions": "action", "schemas": "schéma", "objects": "objet",
    "sessions": "session", "return_codes": "code d'erreur", "sql_text": "texte SQL",
    "authentication": "authentification", "policies": "politique d'audit", "privileges": "privilège",
    "time": "période",
}  # fmt: skip


def entities_text(analysis: Analysis) -> str:
    """What was recognised, in French: 'utilisateur : SCOTT ; période : hier'."""
    bits = []
    for key, values in analysis.entities.items():
        if values and key in ENTITY_LABELS and key != "time":
            bits.append(f"{ENTITY_LABELS[key]} : {', '.join(str(v) for v in values)}")
    if analysis.time_range and analysis.time_range.text:
        bits.append(f"période : {analysis.time_range.text}")
    return " ; ".join(bits)


# ---------------------------------------------------------------------------- the query per intent


def _limit(analysis: Analysis, default: int = DEFAULT_LIMIT) -> int:
    return max(1, min(analysis.top_n or default, 100))


def _group_field(analysis: Analysis, default: str) -> str:
    return analysis.group_by if analysis.group_by in DIMENSIONS else default


def effective_filters(analysis: Analysis) -> AuditFilters:
    """The analysis' filters with what its intent implies when the NLP left it out."""
    intent, f = analysis.intent, analysis.filters
    if intent == Intent.FAILED_LOGINS and not f.action_name:
        return f.model_copy(update={"action_name": ["LOGON"], "failed": True})
    if intent == Intent.ERRORS and f.failed is None and not f.return_code:
        return f.model_copy(update={"failed": True})
    if intent == Intent.PRIVILEGES and not (f.action_name or f.system_privilege_used):
        return f.model_copy(update={"action_name": PRIVILEGE_ACTIONS})
    return f


async def run_query(store, analysis: Analysis) -> QueryResult | None:
    """The analytics call matching the intent (None for help, small talk and unknown)."""
    intent, f = analysis.intent, effective_filters(analysis)
    limit = _limit(analysis)
    group = analysis.group_by
    if intent in (Intent.HELP, Intent.SMALL_TALK, Intent.UNKNOWN):
        return None
    if intent == Intent.ANOMALIES:
        found = await anomalies.detect_anomalies(store, start=f.start, end=f.end)
        return anomalies_table(found, start=f.start, end=f.end)
    if group in TIME_BUCKETS and intent != Intent.SESSIONS:
        return await analytics.time_distribution(store, f, group)
    if intent == Intent.SESSIONS:
        # "les sessions les plus longues": the NLP puts the ranking wish in entities["sort"]
        wished = [s for s in analysis.entities.get("sort", []) if s in analytics.SESSION_SORTS]
        return await analytics.sessions(store, f, limit=limit, sort=wished[0] if wished else "-start")
    if intent == Intent.LIST_USERS:
        return await analytics.distinct_values(store, f, _group_field(analysis, "dbusername"), limit=100)
    if analysis.count_only and group is None:
        return await analytics.count_events(store, f)
    match intent:
        case Intent.TOP_USERS:
            return await analytics.count_by(store, f, _group_field(analysis, "dbusername"), limit=limit)
        case Intent.USER_ACTIVITY:
            if group and group != "dbusername":
                return await analytics.count_by(store, f, _group_field(analysis, "action_name"), limit=limit)
            return await analytics.user_activity(store, f, limit=limit)
        case Intent.TOP_ACTIONS:
            return await analytics.count_by(store, f, _group_field(analysis, "action_name"), limit=limit)
        case Intent.COUNT_EVENTS:
            return await analytics.count_by(store, f, _group_field(analysis, "action_name"), limit=limit)
        case Intent.TOP_OBJECTS:
            if group and group not in ("object_name", "object_schema"):
                return await analytics.count_by(store, f, _group_field(analysis, "object_name"), limit=limit)
            return await analytics.top_objects(store, f, limit=limit)
        case Intent.SCHEMA_OBJECTS:
            return await analytics.count_by(store, f, _group_field(analysis, "object_name"), limit=limit)
        case Intent.SCHEMA_ACTIVITY:
            return await analytics.count_by(store, f, _group_field(analysis, "object_schema"), limit=limit)
        case Intent.OBJECT_CHANGES:
            return await analytics.object_changes(store, f, limit=_limit(analysis, EVENTS_LIMIT))
        case Intent.FAILED_LOGINS | Intent.ERRORS:
            one_code = len(f.return_code) == 1
            default = "dbusername" if intent == Intent.FAILED_LOGINS or one_code else "return_code"
            return await analytics.count_by(store, f, _group_field(analysis, default), limit=limit)
        case Intent.OFF_HOURS:
            return await analytics.off_hours(store, f, limit=limit)
        case Intent.TIME_DISTRIBUTION:
            return await analytics.time_distribution(store, f, "hour")
        case Intent.CLIENTS:
            return await analytics.count_by(
                store, f, _group_field(analysis, "client_program_name"), limit=limit
            )
        case _:  # SEARCH_EVENTS, PRIVILEGES and anything new: the events themselves
            return await analytics.search_events(
                store, f, sort="-event_timestamp", limit=_limit(analysis, EVENTS_LIMIT), page=1
            )


def anomalies_table(found: list[Any], *, start: datetime, end: datetime) -> QueryResult:
    rows = []
    for a in found:
        item = a.model_dump() if hasattr(a, "model_dump") else dict(a)
        rows.append(
            [
                item.get("type"),
                item.get("severity"),
                item.get("title"),
                item.get("explanation"),
                item.get("dbusername"),
                item.get("userhost"),
                item.get("start"),
                item.get("end"),
                item.get("count"),
            ]
        )
    return QueryResult(
        columns=[
            "type",
            "severity",
            "title",
            "explanation",
            "dbusername",
            "userhost",
            "start",
            "end",
            "count",
        ],
        rows=rows,
        total=len(rows),
        query={"detector": "anomalies.detect_anomalies", "start": start, "end": end},
    )


# ---------------------------------------------------------------------------- template answers


def _cell(value: Any) -> str:
    if value is None:
        return "(vide)"
    if isinstance(value, datetime):
        return fmt_dt(value)
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
        try:
            return fmt_dt(datetime.fromisoformat(value))
        except ValueError:
            return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return fmt_int(value)
    if isinstance(value, dict):
        return ", ".join(f"{k} ({_cell(v)})" for k, v in list(value.items())[:4])
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value[:4])
    return str(value)


def _name(value: Any, column: str | None = None) -> str:
    """A value used as a name (a user, a return code, a session id): never a formatted number."""
    if column == "return_code":
        return ora(value)
    return str(value) if isinstance(value, int) else _cell(value)


def _pairs(rows: list[list[Any]], n: int = MAX_SUMMARY_ITEMS, *, label=None) -> str:
    """'A (12), B (7), C (3)' from [name, count] rows."""
    label = label or (lambda row: _name(row[0]))
    return ", ".join(f"{label(r)} ({fmt_int(r[1])})" for r in rows[:n])


def _bucket_label(bucket: str, value: Any) -> str:
    if bucket == "hour":
        return f"{value} h"
    if bucket == "day" and isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value).strftime("%d/%m/%Y")
        except ValueError:
            return value
    return str(value)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


# Ranked counts per dimension with the default unit: the headline.
GROUP_HEADLINES = {
    "dbusername": "Utilisateurs les plus actifs",
    "os_username": "Utilisateurs système les plus actifs",
    "userhost": "Machines les plus actives",
    "terminal": "Terminaux les plus actifs",
    "client_program_name": "Programmes clients les plus utilisés",
    "action_name": "Actions les plus fréquentes",
    "object_schema": "Activité par schéma",
    "object_name": "Objets les plus utilisés",
    "authentication_type": "Types d'authentification",
    "unified_audit_policies": "Politiques d'audit déclenchées",
    "system_privilege_used": "Privilèges système les plus utilisés",
    "return_code": "Codes retour",
    "session_id": "Sessions les plus actives",
}
BUCKET_HEADLINES = {
    "hour": "Heures les plus chargées",
    "day": "Jours les plus chargés",
    "weekday": "Jours de la semaine les plus chargés",
    "week": "Semaines les plus chargées",
}
SEVERITIES = {"high": "élevée", "medium": "moyenne", "low": "faible", "critical": "critique"}


def empty_answer(analysis: Analysis, unit: Unit, where: str) -> str:
    """'Aucune connexion échouée pour SCOTT hier (vendredi 20/11/2026).' and how to widen."""
    text = _cap(unit.of(0)) + where + "."
    if widen_question(analysis):
        text += f" Élargissez la période, par exemple : « {widen_question(analysis)} »"
    return text


def widen_question(analysis: Analysis) -> str | None:
    """A follow-up that asks the same with a wider period, when the period can be widened."""
    f = analysis.filters
    if not f.start and not f.end:
        return None
    now = datetime.now(settings.tz)
    if f.start and f.start <= now - timedelta(days=29) and (not f.end or f.end >= now):
        return None  # already the last 30 days or more
    return "Et sur les 30 derniers jours ?"


def template_answer(analysis: Analysis, result: QueryResult) -> str:
    """The French answer, every figure taken from `result`: the fact first, then the detail."""
    intent = analysis.intent
    f = effective_filters(analysis)
    unit = unit_for(analysis, f)
    period = period_text(f, analysis)
    where = filters_text(f, unit) + period
    cols = result.columns
    if intent == Intent.ANOMALIES:
        return _anomalies_answer(result, period)
    if cols == ["count"]:
        n = result.rows[0][0] if result.rows else result.total
        if not n:
            return empty_answer(analysis, unit, where)
        return f"{_cap(unit.of(n))}{where}."
    if not result.rows:
        if intent == Intent.USER_ACTIVITY and f.dbusername:
            return empty_answer(analysis, Unit("activité", "activités", True), where)
        if intent == Intent.LIST_USERS:
            return empty_answer(analysis, Unit("utilisateur", "utilisateurs"), where)
        if intent == Intent.SESSIONS:
            return empty_answer(analysis, Unit("session", "sessions", True), where)
        return empty_answer(analysis, unit, where)
    if len(cols) == 2 and cols[1] == "count" and cols[0] in TIME_BUCKETS:
        busiest = sorted((r for r in result.rows if r[1]), key=lambda r: -r[1])[:3]
        label = lambda r: _bucket_label(cols[0], r[0])  # noqa: E731
        headline = BUCKET_HEADLINES.get(cols[0], "Répartition dans le temps")
        return f"{headline}{where} : {_pairs(busiest, 3, label=label)}, sur {unit.of(result.total)}."
    if len(cols) == 2 and cols[1] == "count":
        return _ranked_answer(analysis, result, unit, where)
    if cols[:3] == ["object_schema", "object_name", "count"]:
        rows = [[f"{r[0]}.{r[1]}" if r[0] else str(r[1]), r[2]] for r in result.rows]
        headline = (
            "Objets les plus consultés" if unit is EVENT else f"Objets les plus visés par des {unit.many}"
        )
        return f"{headline}{where} : {_pairs(rows)}."
    if cols[:2] == ["dbusername", "events"]:
        return _per_user(analysis, result, unit, where)
    if cols[:2] == ["session_id", "dbusername"]:
        return _sessions_answer(analysis, result, where)
    if "event_timestamp" in cols:  # a list of events
        return _events_answer(analysis, result, unit, where)
    return f"{_cap(plural(result.total, 'résultat', 'résultats'))}{where}."


def _ranked_answer(analysis: Analysis, result: QueryResult, unit: Unit, where: str) -> str:
    """[value, count] rows, ranked."""
    col = result.columns[0]
    one, many = FIELD_LABELS.get(col, ("élément", "éléments"))
    rows = result.rows
    label = lambda r: _name(r[0], col)  # noqa: E731
    if analysis.intent == Intent.LIST_USERS:  # distinct_values: total is the number of values
        n = result.total
        who = plural(n, one, many)
        if col == "dbusername":
            if unit is EVENT:
                who += " actif" if n < 2 else " actifs"
            elif unit.one == "connexion":
                who += " connecté" if n < 2 else " connectés"
            else:
                who += f" avec des {unit.many}"
        if analysis.count_only:
            return f"{_cap(who)}{where}."
        shown = 15
        text = f"{_cap(who)}{where} : {_pairs(rows, shown, label=label)}"
        if len(rows) > shown:
            text += f" et {plural(len(rows) - shown, 'autre', 'autres')}"
        return text + f" (nombre {unit.de()} entre parenthèses)." if n > 1 else text + "."
    if analysis.intent in (Intent.FAILED_LOGINS, Intent.ERRORS, Intent.COUNT_EVENTS):
        text = f"{_cap(unit.of(result.total))}{where}."
        said = getattr(effective_filters(analysis), col, None)
        if len(rows) == 1 and isinstance(said, list) and said == [rows[0][0]]:
            return text  # 'Par utilisateur : JDUPONT (2)' would only repeat the filter
        return text + f" Par {one} : {_pairs(rows, label=label)}."
    if analysis.top_n == 1 or len(rows) == 1:
        top = rows[0]
        if col == "dbusername":
            lead = (
                "L'utilisateur le plus actif" if unit is EVENT else f"L'utilisateur ayant le plus {unit.de()}"
            )
        else:
            lead = f"Premier {one}" if one not in FEMININE_FIELDS else f"Première {one}"
        return f"{lead}{where} : {label(top)} ({fmt_int(top[1])}), sur {unit.of(result.total)}."
    if unit is EVENT:
        headline = GROUP_HEADLINES.get(col, f"Répartition par {one}")
    elif col == "dbusername":
        headline = f"Utilisateurs ayant le plus {unit.de()}"
    else:
        headline = f"{_cap(unit.many)} par {one}"
    return f"{headline}{where} : {_pairs(rows, label=label)}, sur {unit.of(result.total)}."


FEMININE_FIELDS = {"machine", "action", "politique d'audit", "session", "heure", "semaine"}


def _span_of(first: Any, last: Any, filters: AuditFilters) -> str:
    """When the activity took place: 'de 10:00 à 16:05' (the day is said by the period)."""
    a, b = _when(first), _when(last)
    if not a or not b:
        return ""
    if local(a).date() == local(b).date():
        one_day = filters.start and filters.end and filters.end - filters.start <= timedelta(days=1)
        day = "" if one_day else f"le {_day(a)} "
        return f"{day}de {_clock(a)} à {_clock(b)}" if a != b else f"{day}à {_clock(a)}".strip()
    return f"du {fmt_dt(a)} au {fmt_dt(b)}"


def _per_user(analysis: Analysis, result: QueryResult, unit: Unit, where: str) -> str:
    """user_activity rows (total: users) and off_hours rows (total: events): [dbusername, events, ...]."""
    idx = {c: i for i, c in enumerate(result.columns)}
    single_action = len(analysis.filters.action_name) == 1

    def detail(row: list[Any]) -> str:
        bit = unit.of(row[1])
        if "failed" in idx and row[idx["failed"]] and not unit.uses_failed:
            bit += f" dont {fmt_int(row[idx['failed']])} en échec"
        if "weekend_events" in idx and row[idx["weekend_events"]]:
            bit += f" dont {fmt_int(row[idx['weekend_events']])} le week-end"
        return bit

    if "first_activity" in idx:  # user_activity
        if len(result.rows) == 1:
            row = result.rows[0]
            text = f"{row[0]}{filters_text(analysis.filters.model_copy(update={'dbusername': []}), unit)}"
            text += f"{period_text(analysis.filters, analysis)} : {detail(row)}"
            if row[idx["distinct_objects"]]:
                text += " sur " + plural(row[idx["distinct_objects"]], "objet", "objets")
            span = _span_of(row[idx["first_activity"]], row[idx["last_activity"]], analysis.filters)
            if span:
                text += f", {span}"
            hosts, programs = row[idx["hosts"]] or [], row[idx["programs"]] or []
            if hosts:
                text += f", depuis {_names(hosts[:3], 'et')}"
            if programs:
                text += f" avec {_names(programs[:3], 'et')}"
            text += "."
            actions = row[idx["actions"]]
            if isinstance(actions, dict) and actions and not single_action:
                text += " Actions : " + ", ".join(f"{k} ({fmt_int(v)})" for k, v in list(actions.items())[:6])
                text += "." if len(actions) <= 6 else "…"
            return text
        lead = f"Activité de {plural(result.total, 'utilisateur', 'utilisateurs')}{where} : "
    else:  # off hours
        start, end = settings.BUSINESS_HOURS_START, settings.BUSINESS_HOURS_END
        hours = f"avant {start} h, à partir de {end} h ou le week-end"
        lead = f"{_cap(unit.of(result.total))} hors heures de bureau ({hours}){where}. "
    parts = []
    for row in result.rows[:3]:
        bit = f"{row[0]} : {detail(row)}"
        if row[idx["actions"]] and not single_action:
            bit += f" ({_cell(row[idx['actions']])})"
        parts.append(bit)
    more = len(result.rows) - 3
    tail = (
        f" ; {plural(more, 'autre utilisateur', 'autres utilisateurs')} dans le tableau" if more > 0 else ""
    )
    return lead + " ; ".join(parts) + tail + "."


def _sessions_answer(analysis: Analysis, result: QueryResult, where: str) -> str:
    idx = {c: i for i, c in enumerate(result.columns)}
    text = f"{_cap(plural(result.total, 'session', 'sessions'))}{where}."
    if analysis.count_only:
        return text
    shown = []
    for r in result.rows[:3]:
        start = _when(r[idx["start"]])
        bit = f"{r[idx['dbusername']]} (session {r[0]}"
        if start:
            bit += f", {fmt_dt(start)}"
        shown.append(bit + f", {plural(r[idx['events']], 'événement', 'événements')})")
    return text + " Les plus récentes : " + " ; ".join(shown) + "."


def _events_answer(analysis: Analysis, result: QueryResult, unit: Unit, where: str) -> str:
    shown = len(result.rows)
    text = f"{_cap(unit.of(result.total))}{where}."
    feminine = unit.feminine
    recent = "récentes" if feminine else "récents"
    if shown < result.total:
        text += f" Les {fmt_int(shown)} plus {recent} sont dans le tableau ; en tête"
    elif result.total > 1:
        text += f" Les plus {recent}"
    else:
        text += " Détail"
    return text + " : " + _events_summary(analysis, result, unit) + "."


def _events_summary(analysis: Analysis, result: QueryResult, unit: Unit) -> str:
    idx = {c: i for i, c in enumerate(result.columns)}
    one_action = len(analysis.filters.action_name) == 1 or (
        unit.uses_actions
        and len({r[idx["action_name"]] for r in result.rows} if "action_name" in idx else ()) == 1
    )
    privileges = analysis.intent == Intent.PRIVILEGES
    parts = []
    for row in result.rows[:3]:
        when = _cell(row[idx["event_timestamp"]])
        user = row[idx["dbusername"]] if "dbusername" in idx else None
        action = row[idx["action_name"]] if "action_name" in idx else None
        obj = None
        if "object_name" in idx and row[idx["object_name"]]:
            schema = row[idx["object_schema"]] if "object_schema" in idx else None
            obj = f"{schema}.{row[idx['object_name']]}" if schema else str(row[idx["object_name"]])
        sql = row[idx["sql_text"]] if "sql_text" in idx else None
        if privileges and sql:
            what = sql if len(sql) <= 80 else sql[:77] + "…"
        elif one_action:
            what = obj or action or ""
        else:
            what = " ".join(b for b in (action, obj) if b)
        bit = f"{what} par {user}" if user and what else (what or user or "")
        bit = f"{bit}, le {when}" if bit else when
        if "return_code" in idx and row[idx["return_code"]]:
            bit += f" ({ora(row[idx['return_code']])})"
        parts.append(bit)
    return " ; ".join(parts)


def understanding_notes(analysis: Analysis) -> str:
    """What the user should know before the answer: names corrected, not found, dates not valid."""
    notes = []
    corrected = [str(c).replace(" → ", " compris comme ") for c in analysis.entities.get("corrected") or []]
    if corrected:
        notes.append(_cap(_names(corrected, "et")) + ".")
    missing = [str(m) for m in analysis.entities.get("not_found") or []]
    if missing:
        verb = "n'apparaît" if len(missing) == 1 else "n'apparaissent"
        notes.append(f"{_names(missing, 'et')} {verb} pas dans la piste d'audit.")
    invalid = [str(t) for t in analysis.entities.get("time_invalid") or []]
    if invalid:
        notes.append(f"« {_names(invalid, 'et')} » n'est pas une date valide.")
    return " ".join(notes) + (" " if notes else "")


def _anomalies_answer(result: QueryResult, period: str) -> str:
    if not result.rows:
        return f"Aucune activité suspecte détectée{period}."
    lines = [f"{_cap(plural(result.total, 'anomalie détectée', 'anomalies détectées'))}{period} :"]
    for row in result.rows[:MAX_SUMMARY_ITEMS]:
        severity = SEVERITIES.get(str(row[1]), str(row[1]))
        start = _when(row[6])
        when = f"{fmt_dt(start)} — " if start else ""
        lines.append(f"- [{severity}] {when}{row[2]}")
    if result.total > MAX_SUMMARY_ITEMS:
        lines.append("Le détail et les autres anomalies sont dans le tableau.")
    else:
        lines.append("Le détail de chaque anomalie est dans le tableau.")
    return "\n".join(lines)


def _said(analysis: Analysis) -> str:
    """' cette semaine': the period as the user said it, to repeat in a suggestion."""
    tr = analysis.time_range
    if not tr or not tr.text or not (analysis.filters.start or analysis.filters.end):
        return ""
    return f" {tr.text}"


def _first(result: QueryResult | None, column: str) -> Any:
    if not result or not result.rows or column not in result.columns:
        return None
    return result.rows[0][result.columns.index(column)]


def _on_day(result: QueryResult | None, column: str) -> str:
    """' le 20/11/2026': the local day of the first row's timestamp."""
    value = _when(_first(result, column))
    return f" le {_day(value)}" if value else ""


def next_questions(analysis: Analysis, result: QueryResult | None) -> list[str]:
    """Questions that follow from this answer, built from its first rows (so they find data)."""
    intent, p = analysis.intent, _said(analysis)
    user = _first(result, "dbusername")
    out: list[str] = []
    if result is not None and not result.rows and intent != Intent.ANOMALIES:
        if widen_question(analysis):
            out.append(widen_question(analysis))
        return out
    if result is not None and result.columns == ["count"] and not (result.rows and result.rows[0][0]):
        return [widen_question(analysis)] if widen_question(analysis) else []
    match intent:
        case Intent.TOP_USERS | Intent.LIST_USERS | Intent.SESSIONS | Intent.OFF_HOURS:
            if user:
                out.append(f"Qu'a fait {user}{p} ?")
            if intent == Intent.OFF_HOURS:
                out.append(f"Y a-t-il des activités suspectes{p} ?")
            else:
                out.append(f"Quelles sont les actions les plus fréquentes{p} ?")
        case Intent.USER_ACTIVITY:
            user = user or (analysis.filters.dbusername[:1] or [None])[0]
            if user:
                out.append(f"Quelles tables a utilisées {user}{p} ?")
                if _first(result, "failed"):
                    out.append(f"Quelles erreurs a eues {user}{p} ?")
                out.append(f"Quelles sessions de {user}{p} ?")
        case Intent.TOP_ACTIONS | Intent.COUNT_EVENTS:
            action = _first(result, "action_name")
            if action:
                de = "d'" if fold(action[:1]) in "aeiouy" else "de "
                out.append(f"Qui a fait le plus {de}{action}{p} ?")
            out.append(f"Quelles sont les heures de pointe{p} ?")
        case Intent.FAILED_LOGINS:
            out.append(f"Connexions échouées par machine{p}")
            out.append(f"Y a-t-il des activités suspectes{p} ?")
        case Intent.ERRORS:
            code = _first(result, "return_code")
            if isinstance(code, int) and code:
                out.append(f"Qui a eu l'erreur {ora(code)}{p} ?")
            out.append(f"Combien de connexions échouées{p} ?")
        case Intent.TOP_OBJECTS | Intent.SCHEMA_OBJECTS:
            schema = _first(result, "object_schema") or (analysis.filters.object_schema[:1] or [None])[0]
            name = _first(result, "object_name")
            if schema and name:
                out.append(f"Qui a accédé à la table {schema}.{name}{p} ?")
            out.append(f"Activité par schéma{p}")
        case Intent.SCHEMA_ACTIVITY:
            schema = _first(result, "object_schema")
            if schema:
                out.append(f"Quels objets du schéma {schema} ont été les plus utilisés{p} ?")
                out.append(f"Quels utilisateurs ont accédé au schéma {schema}{p} ?")
        case Intent.OBJECT_CHANGES | Intent.PRIVILEGES | Intent.SEARCH_EVENTS:
            if user:
                out.append(f"Qu'a fait {user}{_on_day(result, 'event_timestamp')} ?")
            out.append(f"Y a-t-il des activités suspectes{p} ?")
        case Intent.TIME_DISTRIBUTION:
            out.append(f"Quels sont les utilisateurs les plus actifs{p} ?")
            out.append(f"Quelles sont les actions les plus fréquentes{p} ?")
        case Intent.CLIENTS:
            value = result.rows[0][0] if result and result.rows else None
            if value and result.columns[0] == "client_program_name":
                out.append(f"Quels utilisateurs ont utilisé {value}{p} ?")
            elif value and result.columns[0] == "userhost":
                out.append(f"Quels utilisateurs se sont connectés depuis {value}{p} ?")
            out.append(f"Quels sont les utilisateurs les plus actifs{p} ?")
        case Intent.ANOMALIES:
            user = _first(result, "dbusername")
            if user:
                out.append(f"Qu'a fait {user}{_on_day(result, 'start')} ?")
            out.append(f"Combien de connexions échouées{p} ?")
            out.append(f"Qui s'est connecté en dehors des heures de bureau{p} ?")
    return out


PERIOD_WORDS = {
    "hier",
    "cette",
    "semaine",
    "mois",
    "aujourd",
    "aujourd'hui",
    "derniers",
    "dernieres",
    "derniere",
    "dernier",
    "jours",
    "heures",
    "depuis",
    "matin",
    "soir",
    "annee",
}


def suggestions_for(analysis: Analysis, result: QueryResult | None = None) -> list[str]:
    """Three next questions: those that follow from the answer, then general ones that work."""
    asked = normalize_question(analysis.question)
    picked: list[str] = []
    stems = set()  # the same question for another period is not another suggestion
    for q in [*next_questions(analysis, result), *DEFAULT_NEXT]:
        stem = tuple(w for w in normalize_question(q).split() if len(w) > 3 and w not in PERIOD_WORDS)[:4]
        if len(picked) >= 3:
            break
        if normalize_question(q) != asked and stem not in stems:
            picked.append(q)
            stems.add(stem)
    return picked


# ---------------------------------------------------------------------------- orchestration


def with_default_window(analysis: Analysis, now: datetime | None) -> Analysis:
    """Anomaly detection needs a window: the last 7 whole days (today included) when none is said."""
    if analysis.intent != Intent.ANOMALIES or (analysis.filters.start and analysis.filters.end):
        return analysis
    today = datetime.combine(local(now or datetime.now(settings.tz)).date(), dt_time(), settings.tz)
    end = analysis.filters.end or today + timedelta(days=1)
    start = analysis.filters.start or end - timedelta(days=ANOMALY_DEFAULT_DAYS)
    return analysis.model_copy(
        update={
            "filters": analysis.filters.model_copy(update={"start": start, "end": end}),
            "time_range": TimeRange(start=start, end=end, text=f"les {ANOMALY_DEFAULT_DAYS} derniers jours"),
        }
    )


# Analyses of recent questions, so a repeated question skips the NLP: keyed by the trail and its
# version (the NLP links names to the values present), the question and the previous turn. Kept only
# while the analysis cannot change with the clock: no time range, or whole calendar days (until the
# next local midnight). Relative hours ("la dernière heure", "ce matin") are analysed every time.
_memo: OrderedDict[tuple, tuple[float, Analysis]] = OrderedDict()
MEMO_SIZE = 2048


def _memo_valid_until(analysis: Analysis) -> float | None:
    f = analysis.filters
    if not f.start and not f.end:
        return math.inf
    said = fold(analysis.time_range.text or "") if analysis.time_range else ""
    if re.search(r"heure|minute|\d\s*h\b", said):
        return None
    for bound in (f.start, f.end):
        if bound is not None and local(bound).timetz().replace(tzinfo=None) != dt_time():
            return None
    today = local(datetime.now(settings.tz)).date()
    return datetime.combine(today + timedelta(days=1), dt_time(), settings.tz).timestamp()


async def _analysis(
    store, question: str, previous: Analysis | None, now: datetime | None, version: int
) -> Analysis:
    key = (store.audit_name, version, question, previous.model_dump_json() if previous else "")
    if now is None:
        found = _memo.get(key)
        if found is not None and found[0] > time.time():
            _memo.move_to_end(key)
            return found[1].model_copy(deep=True)
    analysis = with_default_window(await _analyze(store, question, previous, now), now)
    until = _memo_valid_until(analysis) if now is None else None
    if until is not None:
        _memo[key] = (until, analysis.model_copy(deep=True))
        while len(_memo) > MEMO_SIZE:
            _memo.popitem(last=False)
    return analysis


def _stored_analysis(analysis: Analysis) -> dict[str, Any]:
    return analysis.model_dump(mode="json")


async def _analyze(store, question: str, previous: Analysis | None, now: datetime | None) -> Analysis:
    return await nlp_service.analyze(question, store=store, previous=previous, now=now)


def _previous_plan(turn: dict[str, Any] | None) -> Plan | None:
    if not turn or not turn.get("plan"):
        return None
    try:
        return Plan.model_validate(turn["plan"])
    except ValueError:  # a turn written by an older version
        return None


def _previous_analysis(turn: dict[str, Any] | None) -> Analysis | None:
    if not turn or not turn.get("analysis"):
        return None
    try:
        return Analysis.model_validate(turn["analysis"])
    except ValueError:
        return None


# Plan → the `intent` clients see: one row per shape of question.
def plan_intent(plan: Plan) -> str:
    if plan.detail:
        return "search_events" if plan.measure not in ("sessions", "duration") else "sessions"
    if plan.compare is not None:
        return "compare"
    if plan.measure != "events":
        return plan.measure
    if plan.group_by:
        return "breakdown"
    return "count_events"


ENTITY_KEYS = {"dbusername": "users", "os_username": "os_users", "userhost": "hosts", "terminal": "terminals",
               "client_program_name": "programs", "action_name": "actions", "object_schema": "schemas",
               "object_name": "objects", "session_id": "sessions", "return_code": "return_codes"}  # fmt: skip


def reading_entities(reading: understand.Reading) -> dict[str, list[Any]]:
    """What the question named, for display: values, period words, absent values, unknown words."""
    out: dict[str, list[Any]] = {}
    plan = reading.plan
    if plan is not None:
        for name, values in plan.filters.include.items():
            out.setdefault(ENTITY_KEYS.get(name, name), []).extend(values)
        for name, values in plan.filters.exclude.items():
            out.setdefault(f"excluded_{ENTITY_KEYS.get(name, name)}", []).extend(values)
        if plan.filters.categories:
            out["categories"] = list(plan.filters.categories)
        if plan.period and plan.period.label:
            out["time"] = [plan.period.label]
    if reading.absent:
        out["not_found"] = [v for values in reading.absent.values() for v in values]
    if reading.unknown:
        out["unknown_terms"] = list(reading.unknown)
    return jsonable(out)


async def _read(store, question: str, previous: Plan | None, now: datetime | None) -> understand.Reading:
    gaz = await gazetteer(store)
    at = now or datetime.now(settings.tz)
    try:
        return await asyncio.to_thread(
            understand.read, question, gaz, now=at, tz=settings.tz, previous=previous
        )
    except Exception as exc:  # a reader bug must cost an honest "not understood", never a 500
        logger.opt(exception=exc).error("question not read")
        return understand.Reading("not_understood", unknown=[])


async def prepare(
    store, *, cache: AnswerCache, owner: str, request: ChatRequest, now: datetime | None = None
) -> Prepared:
    """Everything but the wording: the question read into a plan, its figures and the answer."""
    prepared = await _prepare(store, cache=cache, owner=owner, request=request, now=now)
    prepared.question = request.message
    return prepared


async def _prepare(
    store, *, cache: AnswerCache, owner: str, request: ChatRequest, now: datetime | None
) -> Prepared:
    started = time.perf_counter()
    conversation_id = request.conversation_id or conversations.new_id()
    turn = await conversations.previous_turn(store, owner=owner, conversation_id=request.conversation_id)
    if request.file_ids:
        return await _prepare_files(store, owner=owner, request=request, conversation_id=conversation_id)
    reading = await _read(store, request.message, _previous_plan(turn), now)
    if reading.kind == "anomalies":
        return await _prepare_analysis(
            store, cache=cache, request=request, previous=_previous_analysis(turn), now=now,
            conversation_id=conversation_id, started=started,
        )  # fmt: skip
    base: dict[str, Any] = {
        "conversation_id": conversation_id,
        "entities": reading_entities(reading),
    }
    plan = reading.plan
    if reading.kind != "plan" or plan is None:
        if reading.kind == "help":
            text, suggestions, intent = replies.help_answer(), replies.EXAMPLES[:3], Intent.HELP
        elif reading.kind == "small_talk":
            text, suggestions, intent = replies.small_talk_answer(), replies.EXAMPLES[:3], Intent.SMALL_TALK
        elif reading.kind == "out_of_scope":
            text, suggestions = replies.out_of_scope_answer(reading.topic or "ce sujet")
            intent = "out_of_scope"
        else:
            close = replies.partial_question(plan)
            suggestions = [q for q in [close, *replies.EXAMPLES] if q][:3]
            text = replies.not_understood_answer(reading.unknown, plan, reading.notes, suggestions)
            intent = Intent.UNKNOWN
        response = ChatResponse(
            answer=text, suggestions=suggestions, intent=str(intent),
            confidence=0.3 if reading.kind == "not_understood" else 1.0, **base,
        )  # fmt: skip
        return Prepared(response=response, template=text, started=started)

    base.update(intent=plan_intent(plan), confidence=1.0, plan=answers.plan_view(plan))
    version = await store.audit_version()
    llm = f"llm:{settings.OPENAI_MODEL}" if openai_service.enabled() else "template"
    key = plan_cache_key(
        plan, notes=reading.notes, absent=reading.absent, audit_version=version,
        extra=f"{store.audit_name}|{llm}|{TEMPLATES_VERSION}",
    )  # fmt: skip
    hit = await cache.get(key)
    if hit is not None:
        response = ChatResponse(**{**hit, **base, "cached": True})
        return Prepared(response=response, template=hit["template"], started=started, plan=plan)
    try:
        result = await plan_compiler.run_plan(store, plan)
    except PyMongoError:
        raise  # the store is down: a 503 for the route
    except ValueError as exc:  # PlanError: a French message for the user
        text = f"Je ne peux pas répondre à cette question telle quelle : {exc}"
        response = ChatResponse(answer=text, suggestions=replies.EXAMPLES[:3], **base)
        return Prepared(response=response, template=text, started=started, plan=plan)
    result.rows = [[jsonable(c) for c in row] for row in result.rows]
    text = answers.write(plan, result, notes=reading.notes, absent=reading.absent, closest=reading.closest)
    response = ChatResponse(
        answer=text,
        data=ChatData(columns=result.columns, rows=result.rows, total=result.total),
        suggestions=next_questions_for_plan(plan, result),
        query=jsonable(result.query),
        **base,
    )
    return Prepared(response=response, template=text, key=key, started=started, plan=plan)


async def _prepare_analysis(
    store,
    *,
    cache: AnswerCache,
    request: ChatRequest,
    previous: Analysis | None,
    now: datetime | None,
    conversation_id: str,
    started: float,
) -> Prepared:
    """Anomaly questions: the detectors of anomalies.py, through the earlier analysis path."""
    version = await store.audit_version()
    analysis = await _analysis(store, request.message, previous, now, version)
    if analysis.intent != Intent.ANOMALIES:  # the reader saw anomaly words: nothing else is answered here
        analysis = with_default_window(analysis.model_copy(update={"intent": Intent.ANOMALIES}), now)
    base = {
        "conversation_id": conversation_id,
        "intent": str(analysis.intent),
        "confidence": analysis.confidence,
        "entities": jsonable(analysis.entities),
        "analysis": analysis,
    }
    llm = f"llm:{settings.OPENAI_MODEL}" if openai_service.enabled() else "template"
    key = cache_key(analysis, audit_version=version, extra=f"{store.audit_name}|{llm}|{TEMPLATES_VERSION}")
    hit = await cache.get(key)
    if hit is not None:
        response = ChatResponse(**{**hit, **base, "cached": True})
        return Prepared(response=response, template=hit["template"], started=started, analysis=analysis)

    try:
        result = await run_query(store, analysis)
    except PyMongoError:
        raise  # the store is down: a 503 for the route
    except ValueError as exc:  # AnalyticsError and the like: a French message for the user
        text = f"Je ne peux pas répondre à cette question telle quelle : {exc}"
        response = ChatResponse(answer=text, suggestions=suggestions_for(analysis), **base)
        return Prepared(response=response, template=text, started=started, analysis=analysis)
    except Exception as exc:  # a failing query must still give an answer, never a 500
        logger.opt(exception=exc).error("chat query failed for intent {}", analysis.intent)
        text = (
            "Je n'ai pas pu calculer la réponse à cette question"
            f"{filters_text(analysis.filters)}{period_text(analysis.filters, analysis)}. "
            "Reformulez-la ou essayez une des questions proposées."
        )
        response = ChatResponse(answer=text, suggestions=suggestions_for(analysis), **base)
        return Prepared(response=response, template=text, started=started, analysis=analysis)
    result.rows = [[jsonable(c) for c in row] for row in result.rows]
    text = understanding_notes(analysis) + template_answer(analysis, result)
    response = ChatResponse(
        answer=text,
        data=ChatData(columns=result.columns, rows=result.rows, total=result.total),
        suggestions=suggestions_for(analysis, result),
        query=jsonable(result.query),
        **base,
    )
    return Prepared(response=response, template=text, key=key, started=started, analysis=analysis)


async def _prepare_files(store, *, owner: str, request: ChatRequest, conversation_id: str) -> Prepared:
    files = await files_service.get_files_for_chat(store, owner=owner, file_ids=request.file_ids)
    rows, parts = [], []
    for f in files:
        name = f.get("name") or f.get("id")
        passages = files_service.keyword_passages(f.get("text") or "", request.message, max_passages=3)
        for p in passages:
            rows.append([name, p])
        if passages:
            parts.append(f"Dans « {name} » :\n" + "\n".join(f"« {p} »" for p in passages))
        else:
            parts.append(f"Je n'ai pas trouvé de passage de « {name} » qui corresponde à la question.")
    text = "\n\n".join(parts) or "Aucun fichier joint n'a de texte exploitable."
    analysis = Analysis(question=request.message, normalized=normalize_question(request.message))
    response = ChatResponse(
        conversation_id=conversation_id,
        answer=text,
        intent="files",
        confidence=1.0,
        entities={"files": [f.get("name") or f.get("id") for f in files]},
        data=ChatData(columns=["fichier", "passage"], rows=rows, total=len(rows)),
        suggestions=[
            "Résume ce document",
            "Quels utilisateurs sont cités ?",
            "Quelles dates sont mentionnées ?",
        ],
        analysis=analysis,
    )
    files_text = "\n\n".join(f"# {f.get('name')}\n{(f.get('text') or '')[:20000]}" for f in files)
    return Prepared(response=response, template=text, analysis=analysis, files_text=files_text)


def _wording_input(prepared: Prepared) -> tuple[str, dict[str, Any] | None]:
    data = prepared.response.data.model_dump() if prepared.response.data else None
    if prepared.files_text:  # the LLM summarises the attached files; figures must be in them
        return prepared.template + "\n\nTexte des fichiers :\n" + prepared.files_text, data
    return prepared.template, data


def _wants_llm(prepared: Prepared) -> bool:
    return (
        openai_service.enabled()
        and not prepared.response.cached
        and prepared.response.intent not in (Intent.HELP, Intent.SMALL_TALK, Intent.UNKNOWN, "out_of_scope")
    )


async def finish(store, *, cache: AnswerCache, owner: str, prepared: Prepared) -> ChatResponse:
    """Store the answer in the cache and the conversation, record the action; the final response."""
    response = prepared.response
    if prepared.key and not response.cached and (response.source == "llm" or not openai_service.enabled()):
        value = response.model_dump(mode="json", exclude={"conversation_id", "analysis", "cached"})
        await cache.put(prepared.key, {**value, "template": prepared.template}, intent=response.intent)
    turn = {
        "question": prepared.question or response.answer,
        "answer": response.answer,
        "intent": response.intent,
        "source": response.source,
        "cached": response.cached,
        "analysis": _stored_analysis(prepared.analysis) if prepared.analysis else None,
        "plan": prepared.plan.model_dump(mode="json") if prepared.plan else None,
        "data_total": response.data.total if response.data else None,
    }
    await conversations.append_turn(store, owner=owner, conversation_id=response.conversation_id, turn=turn)
    cache.record(
        username=owner,
        question=turn["question"],
        intent=response.intent,
        cached=response.cached,
        source=response.source,
        duration_ms=(time.perf_counter() - prepared.started) * 1000,
    )
    return response


async def answer(
    store, *, cache: AnswerCache, owner: str, request: ChatRequest, now: datetime | None = None
) -> ChatResponse:
    """POST /chat/message: the whole answer."""
    prepared = await prepare(store, cache=cache, owner=owner, request=request, now=now)
    if _wants_llm(prepared):
        template, data = _wording_input(prepared)
        try:
            text = await openai_service.word_answer(request.message, template=template, data=data)
            prepared.response.answer, prepared.response.source = text, "llm"
        except openai_service.LLMError as exc:
            logger.warning("LLM wording not used: {}", exc)
    return await finish(store, cache=cache, owner=owner, prepared=prepared)


def pieces(text: str, words: int = STREAM_PIECE_WORDS) -> list[str]:
    """The template answer in pieces of a few words (spaces kept, so the pieces join back)."""
    tokens = text.split(" ")
    return [
        " ".join(tokens[i : i + words]) + (" " if i + words < len(tokens) else "")
        for i in range(0, len(tokens), words)
    ]


async def stream(
    store, *, cache: AnswerCache, owner: str, request: ChatRequest, prepared: Prepared
) -> AsyncIterator[tuple[str, Any]]:
    """POST /chat/stream: ("meta", response without answer), ("token", text)..., ("done", response).

    LLM tokens are forwarded as they come, numbers held back until checked (openai_service). If
    the LLM fails or states an invented figure midway, `done` carries the template answer with
    source="template": `done.answer` is always the authoritative text, to replace the tokens with.
    `prepared` comes from `prepare`, called first so that bad requests get a plain HTTP error.
    """
    response = prepared.response
    yield "meta", response.model_dump(mode="json", exclude={"answer"})
    sent = False
    if _wants_llm(prepared):
        template, data = _wording_input(prepared)
        got = []
        try:
            async for piece in openai_service.stream_answer(request.message, template=template, data=data):
                got.append(piece)
                sent = True
                yield "token", piece
            response.answer, response.source = "".join(got).strip(), "llm"
        except openai_service.LLMError as exc:
            logger.warning("LLM stream not used: {}", exc)
    if not sent:
        for piece in pieces(response.answer):
            yield "token", piece
            await asyncio.sleep(0)
    final = await finish(store, cache=cache, owner=owner, prepared=prepared)
    yield "done", final.model_dump(mode="json")


# ---------------------------------------------------------------------------- the SPA's /chatbot


def chatbot_shape(response: ChatResponse) -> dict[str, Any]:
    """{type, data, summary, explanation, columns} for the existing SPA."""
    columns = response.data.columns if response.data else []
    rows = [dict(zip(columns, row, strict=False)) for row in response.data.rows] if response.data else []
    explanation = f"Intention : {response.intent} (confiance {response.confidence:.2f})"
    if response.plan:
        explanation += f" ; compris : {response.plan['text']}"
    elif response.analysis:
        understood = entities_text(response.analysis)
        if understood:
            explanation += f" ; {understood}"
        explanation += period_text(response.analysis.filters, response.analysis)
    return {
        "type": response.intent,
        "data": rows,
        "summary": response.answer,
        "explanation": explanation.strip(),
        "columns": columns,
    }
