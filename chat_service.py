"""The chat: a French question → its analysis → the matching analytics query → a French answer.

The answer is written from the query's table by templates (every figure comes from that table),
then optionally reworded by the LLM (openai_service), which is checked against the same figures.
Answers are cached by the resolved analysis (cache_service); conversations keep each turn's
analysis so a follow-up question ("et hier ?") reuses the previous context.
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
import conversations
import files_service
import nlp_service
import openai_service
from cache_service import AnswerCache, cache_key, normalize_question
from config import settings
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
from time_parser import fold

# Questions known to work on an ordinary audit trail (suggestions, help, "not understood").
EXAMPLES: list[str] = [
    "Quels sont les utilisateurs les plus actifs cette semaine ?",
    "Combien de connexions échouées hier ?",
    "Qui s'est connecté en dehors des heures de bureau cette semaine ?",
    "Quelles tables ont été supprimées ce mois-ci ?",
    "Quelles sont les actions les plus fréquentes aujourd'hui ?",
    "Montre-moi l'activité de ADM_MOREAU hier soir",
    "Quels objets ont été modifiés les 7 derniers jours ?",
    "Y a-t-il des activités suspectes cette semaine ?",
    "Quels privilèges ont été accordés ce mois-ci ?",
    "Quelles sont les heures de pointe cette semaine ?",
    "Quels programmes clients sont utilisés ?",
    "Quelles erreurs ont eu lieu hier ?",
    "Combien d'événements aujourd'hui ?",
    "Quelles sont les tables les plus consultées ?",
    "Activité par schéma cette semaine",
    "Combien de sessions hier ?",
    "Quels utilisateurs ont accédé au schéma FINANCE ?",
    "Liste des utilisateurs actifs aujourd'hui",
]

NEXT_QUESTIONS: dict[Intent, list[str]] = {
    Intent.TOP_USERS: [
        "Quelles actions ont-ils faites ?",
        "Et la semaine dernière ?",
        "Qui s'est connecté en dehors des heures de bureau ?",
    ],
    Intent.LIST_USERS: [
        "Quels sont les utilisateurs les plus actifs ?",
        "Combien de connexions échouées ?",
        "Qui a accédé au schéma FINANCE ?",
    ],
    Intent.USER_ACTIVITY: [
        "Quels objets a-t-il modifiés ?",
        "Et hier ?",
        "A-t-il eu des erreurs ?",
    ],
    Intent.TOP_ACTIONS: [
        "Quels utilisateurs font le plus de DELETE ?",
        "Quelles tables ont été supprimées ?",
        "Quelles sont les heures de pointe ?",
    ],
    Intent.FAILED_LOGINS: [
        "Depuis quelles machines ?",
        "Y a-t-il des activités suspectes ?",
        "Et la semaine dernière ?",
    ],
    Intent.ANOMALIES: [
        "Combien de connexions échouées cette semaine ?",
        "Qui s'est connecté en dehors des heures de bureau ?",
        "Quels privilèges ont été accordés ?",
    ],
    Intent.OFF_HOURS: [
        "Quelles actions ont été faites hors heures ?",
        "Y a-t-il des activités suspectes ?",
        "Quels objets ont été modifiés ?",
    ],
}
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
HEADLINES = {
    Intent.TOP_USERS: "Utilisateurs les plus actifs",
    Intent.LIST_USERS: "Utilisateurs",
    Intent.USER_ACTIVITY: "Activité",
    Intent.TOP_ACTIONS: "Actions les plus fréquentes",
    Intent.SEARCH_EVENTS: "Événements",
    Intent.COUNT_EVENTS: "Événements",
    Intent.TOP_OBJECTS: "Objets les plus consultés",
    Intent.SCHEMA_OBJECTS: "Objets",
    Intent.SCHEMA_ACTIVITY: "Activité par schéma",
    Intent.OBJECT_CHANGES: "Objets créés, modifiés ou supprimés",
    Intent.FAILED_LOGINS: "Connexions échouées",
    Intent.ERRORS: "Instructions en erreur",
    Intent.OFF_HOURS: "Activité en dehors des heures de bureau",
    Intent.PRIVILEGES: "Opérations sur les privilèges",
    Intent.TIME_DISTRIBUTION: "Répartition dans le temps",
    Intent.CLIENTS: "Programmes et postes clients",
    Intent.SESSIONS: "Sessions",
}
PRIVILEGE_ACTIONS = ["GRANT", "REVOKE", "ALTER USER", "CREATE USER", "DROP USER", "CREATE ROLE", "SET ROLE"]
DEFAULT_LIMIT = 10
EVENTS_LIMIT = 20
MAX_SUMMARY_ITEMS = 5
STREAM_PIECE_WORDS = 3
ANOMALY_DEFAULT_DAYS = 7


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


# ---------------------------------------------------------------------------- formatting


def fmt_int(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}".replace(",", "\u202f").replace(".", ",")
    return f"{int(value):,}".replace(",", "\u202f")


def local(value: datetime) -> datetime:
    return value.astimezone(settings.tz) if value.tzinfo else value.replace(tzinfo=settings.tz)


def fmt_dt(value: datetime) -> str:
    return local(value).strftime("%d/%m/%Y %H:%M")


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
    """' hier (du 19/11/2025 00:00 au 20/11/2025 00:00)' — what the time window was read as."""
    start, end = filters.start, filters.end
    if not start and not end:
        return " sur toute la période"
    said = analysis.time_range.text if analysis and analysis.time_range and analysis.time_range.text else ""
    if start and end:
        span = f"du {fmt_dt(start)} au {fmt_dt(end)}"
    elif start:
        span = f"depuis le {fmt_dt(start)}"
    else:
        span = f"avant le {fmt_dt(end)}"
    return f" {said} ({span})" if said else f" {span}"


def filters_text(filters: AuditFilters) -> str:
    parts = []
    for name, (one, many) in FIELD_LABELS.items():
        if name not in DIMENSIONS:
            continue
        values = getattr(filters, name, None)
        if values:
            label = one if len(values) == 1 else many
            parts.append(f"{label} {', '.join(str(v) for v in values)}")
    if filters.failed is True:
        parts.append("en échec")
    elif filters.failed is False:
        parts.append("réussis")
    if filters.sql_text_contains:
        parts.append("SQL contenant « " + " », « ".join(filters.sql_text_contains) + " »")
    return (" (" + " ; ".join(parts) + ")") if parts else ""


def entities_text(analysis: Analysis) -> str:
    bits = [f"{k} : {', '.join(str(v) for v in vals)}" for k, vals in analysis.entities.items() if vals]
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
        return await analytics.sessions(store, f, limit=limit)
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
            default = "dbusername" if intent == Intent.FAILED_LOGINS else "return_code"
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


def _name(value: Any) -> str:
    """A value used as a name (a user, a return code, a session id): never a formatted number."""
    return str(value) if isinstance(value, int) else _cell(value)


def _pairs(rows: list[list[Any]], n: int = MAX_SUMMARY_ITEMS, *, label=None) -> str:
    """'A (12), B (7), C (3)' from [name, count] rows."""
    label = label or (lambda row: _name(row[0]))
    return ", ".join(f"{label(r)} ({fmt_int(r[1])})" for r in rows[:n])


def _bucket_label(bucket: str, value: Any) -> str:
    if bucket == "hour":
        return f"{value} h"
    return str(value)


def template_answer(analysis: Analysis, result: QueryResult) -> str:
    """The French answer, every figure taken from `result`."""
    intent = analysis.intent
    f = analysis.filters
    period = period_text(f, analysis)
    where = filters_text(f) + period
    headline = HEADLINES.get(intent, "Résultat")
    cols = result.columns
    if intent == Intent.ANOMALIES:
        if not result.rows:
            return f"Aucune activité suspecte détectée{period}."
        lines = [f"{fmt_int(result.total)} anomalie(s) détectée(s){period} :"]
        for row in result.rows[:MAX_SUMMARY_ITEMS]:
            lines.append(f"- [{row[1]}] {row[2]} — {row[3]}")
        if result.total > MAX_SUMMARY_ITEMS:
            lines.append("(la liste complète est dans le tableau)")
        return "\n".join(lines)
    if cols == ["count"]:
        return f"{headline} : {fmt_int(result.total)} événement(s){where}."
    if result.total == 0 or not result.rows:
        return f"{headline} : aucun résultat{where}."
    if len(cols) == 2 and cols[1] == "count" and cols[0] in TIME_BUCKETS:
        one, many = FIELD_LABELS[cols[0]]
        busiest = sorted((r for r in result.rows if r[1]), key=lambda r: -r[1])[:3]
        label = lambda r: _bucket_label(cols[0], r[0])  # noqa: E731
        return (
            f"{headline} par {one}{where} : {fmt_int(result.total)} événement(s) ; "
            f"les {many} les plus chargé(e)s : {_pairs(busiest, 3, label=label)}."
        )
    if len(cols) == 2 and cols[1] == "count":
        one, many = FIELD_LABELS.get(cols[0], ("élément", "éléments"))
        if intent == Intent.LIST_USERS:  # distinct_values: total is the number of values
            if analysis.count_only:
                return f"{fmt_int(result.total)} {many if result.total > 1 else one}{where}."
            label = many if result.total > 1 else one
            return f"{fmt_int(result.total)} {label}{where} : {_pairs(result.rows, 15)}."
        text = f"{headline} ({many}){where} : {_pairs(result.rows)}"
        if intent in (Intent.FAILED_LOGINS, Intent.ERRORS, Intent.COUNT_EVENTS):
            text = (
                f"{headline}{where} : {fmt_int(result.total)} événement(s). Par {one} : {_pairs(result.rows)}"
            )
        else:
            text += f", sur {fmt_int(result.total)} événement(s)"
        return text + "."
    if cols[:3] == ["object_schema", "object_name", "count"]:
        label = lambda r: f"{r[0]}.{r[1]}"  # noqa: E731
        rows = [[r, r[2]] for r in result.rows]
        return f"{headline}{where} : {_pairs(rows, label=lambda x: label(x[0]))}."
    if cols[:2] == ["dbusername", "events"]:
        return _per_user(headline, where, result)
    if cols[:2] == ["session_id", "dbusername"]:
        shown = ", ".join(
            f"{r[0]} ({r[1]}, {fmt_int(r[9])} événement(s), {_cell(r[5])})" for r in result.rows[:3]
        )
        return f"{fmt_int(result.total)} session(s){where}. Les plus récentes : {shown}."
    if "event_timestamp" in cols:  # a list of events
        shown = len(result.rows)
        text = f"{headline}{where} : {fmt_int(result.total)} événement(s)."
        if shown < result.total:
            text += f" Voici les {fmt_int(shown)} plus récents ; en tête"
        else:
            text += " Les plus récents"
        return text + " : " + _events_summary(result) + "."
    return f"{headline}{where} : {fmt_int(result.total)} résultat(s)."


def _per_user(headline: str, where: str, result: QueryResult) -> str:
    """user_activity rows (total: users) and off_hours rows (total: events): [dbusername, events, ...]."""
    idx = {c: i for i, c in enumerate(result.columns)}
    if "first_activity" in idx:
        users = "utilisateur" if result.total == 1 else "utilisateurs"
        lead = f"{headline}{where} : {fmt_int(result.total)} {users}. "
    else:
        lead = f"{headline}{where} : {fmt_int(result.total)} événement(s). "
    parts = []
    for row in result.rows[:3]:
        bit = f"{row[0]} : {fmt_int(row[1])} événement(s)"
        if "failed" in idx and row[idx["failed"]]:
            bit += f" dont {fmt_int(row[idx['failed']])} en échec"
        if "weekend_events" in idx and row[idx["weekend_events"]]:
            bit += f" dont {fmt_int(row[idx['weekend_events']])} le week-end"
        if row[idx["actions"]]:
            bit += f" ({_cell(row[idx['actions']])})"
        parts.append(bit)
    more = f" ; {fmt_int(len(result.rows) - 3)} autre(s) utilisateur(s)" if len(result.rows) > 3 else ""
    return lead + " ; ".join(parts) + more + "."


def _events_summary(result: QueryResult) -> str:
    idx = {c: i for i, c in enumerate(result.columns)}
    parts = []
    for row in result.rows[:3]:
        bits = [_cell(row[idx["event_timestamp"]])]
        for name in ("dbusername", "action_name"):
            if name in idx and row[idx[name]]:
                bits.append(str(row[idx[name]]))
        if "object_name" in idx and row[idx["object_name"]]:
            schema = row[idx["object_schema"]] if "object_schema" in idx else None
            bits.append(f"{schema}.{row[idx['object_name']]}" if schema else str(row[idx["object_name"]]))
        if "return_code" in idx and row[idx["return_code"]]:
            bits.append(f"(code {row[idx['return_code']]})")
        parts.append(" ".join(bits))
    return " ; ".join(parts)


def help_answer() -> str:
    examples = "\n".join(f"- {q}" for q in EXAMPLES[:6])
    return (
        "Je réponds en français aux questions sur la piste d'audit Oracle : utilisateurs actifs, "
        "connexions échouées, actions et objets, modifications de structure, privilèges, activité hors "
        "heures, sessions, erreurs et activités suspectes, sur la période de votre choix "
        "(« hier », « cette semaine », « les 3 derniers jours »…). Par exemple :\n" + examples
    )


def small_talk_answer() -> str:
    return (
        "Bonjour ! Je suis l'assistant d'audit : posez-moi une question sur la piste d'audit Oracle, "
        "par exemple « Combien de connexions échouées hier ? »."
    )


def not_understood_answer(analysis: Analysis, close: list[str]) -> str:
    understood = entities_text(analysis)
    text = "Je n'ai pas compris ce que vous cherchez"
    text += f" (j'ai reconnu : {understood})." if understood else "."
    text += " Essayez une question comme :\n" + "\n".join(f"- {q}" for q in close[:3])
    return text


def suggestions_for(analysis: Analysis) -> list[str]:
    picked = [q for q in NEXT_QUESTIONS.get(analysis.intent, []) if q != analysis.question]
    for q in DEFAULT_NEXT:
        if len(picked) >= 3:
            break
        if q not in picked and normalize_question(q) != normalize_question(analysis.question):
            picked.append(q)
    return picked[:3]


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


async def prepare(
    store, *, cache: AnswerCache, owner: str, request: ChatRequest, now: datetime | None = None
) -> Prepared:
    """Everything but the wording: analysis, cached answer or query and template answer."""
    started = time.perf_counter()
    conversation_id = request.conversation_id or conversations.new_id()
    previous = await conversations.previous_analysis(
        store, owner=owner, conversation_id=request.conversation_id
    )
    if request.file_ids:
        return await _prepare_files(store, owner=owner, request=request, conversation_id=conversation_id)
    version = await store.audit_version()
    analysis = await _analysis(store, request.message, previous, now, version)
    base = {
        "conversation_id": conversation_id,
        "intent": str(analysis.intent),
        "confidence": analysis.confidence,
        "entities": jsonable(analysis.entities),
        "analysis": analysis,
    }
    if analysis.intent in (Intent.HELP, Intent.SMALL_TALK, Intent.UNKNOWN):
        if analysis.intent == Intent.HELP:
            text, suggestions = help_answer(), EXAMPLES[:3]
        elif analysis.intent == Intent.SMALL_TALK:
            text, suggestions = small_talk_answer(), EXAMPLES[:3]
        else:
            suggestions = await cache.suggest(request.message, catalogue=EXAMPLES, limit=3)
            suggestions += [q for q in DEFAULT_NEXT if q not in suggestions][: 3 - len(suggestions)]
            text = not_understood_answer(analysis, suggestions)
        response = ChatResponse(answer=text, suggestions=suggestions, **base)
        return Prepared(response=response, template=text, started=started, analysis=analysis)

    llm = f"llm:{settings.OPENAI_MODEL}" if openai_service.enabled() else "template"
    key = cache_key(analysis, audit_version=version, extra=f"{store.audit_name}|{llm}")
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
    text = template_answer(analysis, result)
    response = ChatResponse(
        answer=text,
        data=ChatData(columns=result.columns, rows=result.rows, total=result.total),
        suggestions=suggestions_for(analysis),
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
        and prepared.response.intent not in (Intent.HELP, Intent.SMALL_TALK, Intent.UNKNOWN)
    )


async def finish(store, *, cache: AnswerCache, owner: str, prepared: Prepared) -> ChatResponse:
    """Store the answer in the cache and the conversation, record the action; the final response."""
    response = prepared.response
    if prepared.key and not response.cached and (response.source == "llm" or not openai_service.enabled()):
        value = response.model_dump(mode="json", exclude={"conversation_id", "analysis", "cached"})
        await cache.put(prepared.key, {**value, "template": prepared.template}, intent=response.intent)
    turn = {
        "question": prepared.analysis.question if prepared.analysis else response.answer,
        "answer": response.answer,
        "intent": response.intent,
        "source": response.source,
        "cached": response.cached,
        "analysis": _stored_analysis(prepared.analysis) if prepared.analysis else None,
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
    if response.analysis:
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
