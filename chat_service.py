"""The chat: a French question → its analysis → the matching analytics query → a French answer.

The answer is written from the query's table by templates (every figure comes from that table),
then optionally reworded by the LLM (openai_service), which is checked against the same figures.
Answers are cached by the resolved analysis (cache_service); conversations keep each turn's
analysis so a follow-up question ("et hier ?") reuses the previous context.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from bson import ObjectId
from loguru import logger
from pymongo.errors import PyMongoError

import conversations
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
)

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


async def run_query(store, analysis: Analysis) -> QueryResult | None:
    """The analytics call matching the intent (None for help, small talk and unknown)."""
    import analytics
    import anomalies

    intent, f = analysis.intent, analysis.filters
    limit = _limit(analysis)
    bucket = analysis.group_by if analysis.group_by in TIME_BUCKETS else None
    if intent in (Intent.HELP, Intent.SMALL_TALK, Intent.UNKNOWN):
        return None
    if bucket and intent not in (Intent.ANOMALIES, Intent.SESSIONS):
        return await analytics.time_distribution(store, f, bucket)
    if (
        analysis.count_only
        and analysis.group_by is None
        and intent
        not in (
            Intent.LIST_USERS,
            Intent.ANOMALIES,
            Intent.SESSIONS,
        )
    ):
        return await analytics.count_events(store, f)
    match intent:
        case Intent.TOP_USERS:
            return await analytics.count_by(store, f, _group_field(analysis, "dbusername"), limit=limit)
        case Intent.LIST_USERS:
            return await analytics.distinct_values(store, f, _group_field(analysis, "dbusername"), limit=100)
        case Intent.USER_ACTIVITY:
            return await analytics.user_activity(store, f, limit=limit)
        case Intent.TOP_ACTIONS:
            return await analytics.count_by(store, f, _group_field(analysis, "action_name"), limit=limit)
        case Intent.COUNT_EVENTS:
            if analysis.group_by:
                return await analytics.count_by(store, f, _group_field(analysis, "action_name"), limit=limit)
            return await analytics.count_events(store, f)
        case Intent.TOP_OBJECTS:
            return await analytics.top_objects(store, f, limit=limit)
        case Intent.SCHEMA_OBJECTS:
            return await analytics.count_by(store, f, _group_field(analysis, "object_name"), limit=limit)
        case Intent.SCHEMA_ACTIVITY:
            return await analytics.count_by(store, f, _group_field(analysis, "object_schema"), limit=limit)
        case Intent.OBJECT_CHANGES:
            return await analytics.object_changes(store, f, limit=_limit(analysis, EVENTS_LIMIT))
        case Intent.FAILED_LOGINS:
            f = f.model_copy(update={"failed": True, "action_name": f.action_name or ["LOGON"]})
            return await analytics.count_by(store, f, _group_field(analysis, "dbusername"), limit=limit)
        case Intent.ERRORS:
            f = f.model_copy(update={"failed": True} if not f.return_code else {})
            return await analytics.count_by(store, f, _group_field(analysis, "return_code"), limit=limit)
        case Intent.OFF_HOURS:
            return await analytics.off_hours(store, f, limit=limit)
        case Intent.PRIVILEGES:
            if not (f.action_name or f.system_privilege_used):
                f = f.model_copy(update={"action_name": PRIVILEGE_ACTIONS})
            return await analytics.search_events(
                store, f, sort="-event_timestamp", limit=_limit(analysis, EVENTS_LIMIT), page=1
            )
        case Intent.TIME_DISTRIBUTION:
            return await analytics.time_distribution(store, f, "hour")
        case Intent.CLIENTS:
            return await analytics.count_by(
                store, f, _group_field(analysis, "client_program_name"), limit=limit
            )
        case Intent.SESSIONS:
            return await analytics.sessions(store, f, limit=limit)
        case Intent.ANOMALIES:
            found = await anomalies.detect_anomalies(store, start=f.start, end=f.end)
            return anomalies_table(found)
        case _:  # SEARCH_EVENTS and anything new
            return await analytics.search_events(
                store, f, sort="-event_timestamp", limit=_limit(analysis, EVENTS_LIMIT), page=1
            )


def anomalies_table(found: list[Any]) -> QueryResult:
    rows = []
    for a in found:
        item = a.model_dump() if hasattr(a, "model_dump") else dict(a)
        rows.append([item.get("type"), item.get("severity"), item.get("title"), item.get("explanation")])
    return QueryResult(
        columns=["type", "severity", "title", "explanation"],
        rows=rows,
        total=len(rows),
        query={"detector": "anomalies.detect_anomalies"},
    )


# ---------------------------------------------------------------------------- template answers


def _rows_summary(result: QueryResult, n: int = MAX_SUMMARY_ITEMS) -> str:
    """'A (12), B (7), C (3)' from a [name, count, ...] table."""
    items = []
    for row in result.rows[:n]:
        if len(row) >= 2 and isinstance(row[1], int | float) and not isinstance(row[1], bool):
            items.append(f"{_cell(row[0])} ({fmt_int(row[1])})")
        else:
            items.append(" ".join(_cell(c) for c in row[:3]))
    return ", ".join(items)


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
    return str(value)


def _is_count(result: QueryResult) -> bool:
    return len(result.columns) == 1 and len(result.rows) <= 1


def _group_label(result: QueryResult, analysis: Analysis) -> tuple[str, str]:
    first = result.columns[0] if result.columns else ""
    return FIELD_LABELS.get(first) or FIELD_LABELS.get(analysis.group_by or "", ("élément", "éléments"))


def template_answer(analysis: Analysis, result: QueryResult) -> str:
    """The French answer, every figure taken from `result`."""
    intent = analysis.intent
    where = filters_text(analysis.filters) + period_text(analysis.filters, analysis)
    headline = HEADLINES.get(intent, "Résultat")
    if intent == Intent.ANOMALIES:
        if not result.rows:
            return f"Aucune activité suspecte détectée{period_text(analysis.filters, analysis)}."
        lines = [
            f"{fmt_int(result.total)} anomalie(s) détectée(s){period_text(analysis.filters, analysis)} :"
        ]
        for _kind, severity, title, explanation in result.rows[:MAX_SUMMARY_ITEMS]:
            lines.append(f"- [{severity}] {title} — {explanation}")
        return "\n".join(lines)
    if _is_count(result):
        count = result.rows[0][0] if result.rows else result.total
        return f"{fmt_int(count)} événement(s){where}."
    if result.total == 0 or not result.rows:
        return f"{headline} : aucun résultat{where}."
    one, many = _group_label(result, analysis)
    if "event_timestamp" in result.columns:  # a list of events
        shown = len(result.rows)
        text = f"{headline} : {fmt_int(result.total)} événement(s){where}."
        if shown < result.total:
            text += f" Voici les {fmt_int(shown)} plus récents"
        else:
            text += " Les plus récents"
        return text + " : " + _events_summary(result) + "."
    if intent == Intent.LIST_USERS or len(result.columns) == 1:
        names = ", ".join(_cell(r[0]) for r in result.rows[:15])
        more = " …" if len(result.rows) > 15 else ""
        return f"{fmt_int(result.total)} {many if result.total > 1 else one}{where} : {names}{more}."
    text = f"{headline}{where} : {_rows_summary(result)}."
    if result.total > len(result.rows[:MAX_SUMMARY_ITEMS]):
        text += f" ({fmt_int(result.total)} {many} au total.)"
    return text


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


def _stored_analysis(analysis: Analysis) -> dict[str, Any]:
    return analysis.model_dump(mode="json")


async def _analyze(store, question: str, previous: Analysis | None, now: datetime | None) -> Analysis:
    import nlp_service

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
    analysis = await _analyze(store, request.message, previous, now)
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

    version = await store.audit_version()
    llm = f"llm:{settings.OPENAI_MODEL}" if openai_service.enabled() else "template"
    key = cache_key(analysis, audit_version=version, extra=llm)
    hit = await cache.get(key)
    if hit is not None:
        response = ChatResponse(**{**hit, **base, "cached": True})
        return Prepared(response=response, template=hit["template"], started=started, analysis=analysis)

    try:
        result = await run_query(store, analysis)
    except PyMongoError:
        raise  # the store is down: a 503 for the route
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
    import files_service

    files = await files_service.get_files_for_chat(store, owner=owner, file_ids=request.file_ids)
    rows, parts = [], []
    for f in files:
        name = f.get("filename") or f.get("name") or f.get("id")
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
        entities={"files": [f.get("filename") or f.get("id") for f in files]},
        data=ChatData(columns=["fichier", "passage"], rows=rows, total=len(rows)),
        suggestions=[
            "Résume ce document",
            "Quels utilisateurs sont cités ?",
            "Quelles dates sont mentionnées ?",
        ],
        analysis=analysis,
    )
    files_text = "\n\n".join(f"# {f.get('filename')}\n{(f.get('text') or '')[:20000]}" for f in files)
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
