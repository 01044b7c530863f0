"""The chat: a French question → its plan (understand) → one store query (plan_compiler) → French
(answers), or an honest answer without figures (replies): not understood, out of scope, help.

The answer is written from the query's table (every figure comes from that table), then optionally
reworded by the LLM (openai_service), which is checked against the same figures. Answers are cached by
the resolved plan (cache_service); conversations keep each turn's plan so a follow-up question
("et hier ?", "sauf SYS", "montre-les") starts from the previous one. Questions about attached files
are answered from their text (files_service).
"""

import asyncio
import copy
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
from pydantic import ValidationError
from pymongo.errors import PyMongoError

import answers
import conversations
import files_service
import llm_plan
import openai_service
import plan_runner
import replies
import understand
from cache_service import AnswerCache, plan_cache_key
from config import settings
from french import local
from models import Analysis, ChatData, ChatRequest, ChatResponse, Intent
from nlp_lexicon import gazetteer
from plan import Plan
from suggestions import next_questions

EXAMPLES = replies.EXAMPLES  # questions known to work (suggestions, help, "not understood")
STREAM_PIECE_WORDS = 3
# Part of the cache key: bump it when the wording of answers changes.
TEMPLATES_VERSION = 3


class ChatError(RuntimeError):
    """A chat request that cannot be served (not a question the user got wrong)."""


class PlanRejected(ValueError):
    """A plan sent by the client (`ChatRequest.plan`) that is not a valid plan; the message is French."""


SCALARS = (str, int, float, bool, type(None))


def _scalar_values(filters: dict[str, Any] | None) -> bool:
    if not isinstance(filters, dict):
        return True
    return all(
        isinstance(values, list) and all(isinstance(v, SCALARS) for v in values)
        for key in ("include", "exclude")
        for values in (filters.get(key) or {}).values()
    )


def asked_plan(spec: dict[str, Any]) -> understand.Reading:
    """The reading of a plan the client sent back (a chip changed): validated, naive periods local.

    Filter values must be plain strings or numbers: a value is compared as a value, never read as a
    query operator. A period bound without a zone is read in APP_TIMEZONE.
    """
    raw_having = spec.get("having")
    having: dict[str, Any] = raw_having if isinstance(raw_having, dict) else {}
    if not (
        _scalar_values(spec.get("filters"))
        and _scalar_values(spec.get("share_of"))
        and all(isinstance(v, SCALARS) for v in having.get("values") or [])
    ):
        raise PlanRejected("Plan refusé : les valeurs des filtres doivent être des textes ou des nombres.")
    try:
        plan = Plan.model_validate(spec)
    except ValidationError as exc:
        raise PlanRejected(f"Plan refusé : {exc.errors()[0]['msg']}") from None
    for period in (plan.period, plan.compare):
        if period is None:
            continue
        if period.start is not None and period.start.tzinfo is None:
            period.start = period.start.replace(tzinfo=settings.tz)
        if period.end is not None and period.end.tzinfo is None:
            period.end = period.end.replace(tzinfo=settings.tz)
        if period.start is not None and period.end is not None and period.start >= period.end:
            raise PlanRejected("Plan refusé : le début de la période doit précéder sa fin.")
    return understand.Reading("plan", plan=plan)


@dataclass
class Prepared:
    """An answer before wording: the template text and the response around it."""

    response: ChatResponse
    template: str
    key: str | None = None
    started: float = field(default_factory=time.perf_counter)
    files_text: str | None = None  # the attached files' text, for the LLM
    plan: Plan | None = None  # the question's reading, kept in the conversation for follow-ups
    question: str = ""


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


def _previous_plan(turn: dict[str, Any] | None) -> Plan | None:
    if not turn or not turn.get("plan"):
        return None
    try:
        return Plan.model_validate(turn["plan"])
    except ValueError:  # a turn written by an older version
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


# The `intent` of a reading without a plan to answer.
READING_INTENTS = {"help": str(Intent.HELP), "small_talk": str(Intent.SMALL_TALK),
                   "out_of_scope": "out_of_scope", "not_understood": str(Intent.UNKNOWN)}  # fmt: skip


def reading_intent(reading: understand.Reading) -> tuple[str, float]:
    """(intent, confidence) of a reading, as chat responses and /audit/analyze give them."""
    if reading.kind == "plan" and reading.plan is not None:
        return plan_intent(reading.plan), 1.0
    return READING_INTENTS[reading.kind], 0.3 if reading.kind == "not_understood" else 1.0


async def analyze(store, question: str, previous: dict[str, Any] | None) -> Analysis:
    """What the chat understands of `question` (after the plan spec `previous`), without running it."""
    prev = asked_plan(previous).plan if previous is not None else None
    reading = await _read(store, question, prev, None, version=await store.audit_version())
    intent, confidence = reading_intent(reading)
    plan = reading.plan
    return Analysis(
        question=question, kind=reading.kind, understood=reading.kind == "plan", intent=intent,
        confidence=confidence, entities=reading_entities(reading),
        plan=answers.plan_view(plan) if plan is not None else None, unknown=reading.unknown,
        absent=jsonable(reading.absent), closest=jsonable(reading.closest), notes=reading.notes,
        topic=reading.topic, follow_up=reading.follow_up,
    )  # fmt: skip


# Readings of recent questions, so a repeated question skips the reader: keyed by the trail, its
# version (values are linked to the trail), the question and the previous turn's plan. Kept only while
# the reading cannot change with the clock: until the next local midnight, and only when every period
# bound is a local midnight ("hier", "cette semaine"), not "les 3 dernières heures".
_memo: OrderedDict[tuple[Any, ...], tuple[float, understand.Reading]] = OrderedDict()
MEMO_SIZE = 2048


def _valid_until(reading: understand.Reading) -> float | None:
    plan = reading.plan
    periods = [p for p in (plan.period, plan.compare) if p is not None] if plan is not None else []
    for bound in (b for p in periods for b in (p.start, p.end)):
        if bound is not None and local(bound).timetz().replace(tzinfo=None) != dt_time():
            return None
    today = local(datetime.now(settings.tz)).date()
    return datetime.combine(today + timedelta(days=1), dt_time(), settings.tz).timestamp()


async def _read(
    store, question: str, previous: Plan | None, now: datetime | None, *, version: int
) -> understand.Reading:
    key = (
        store.audit_name,
        version,
        question,
        previous.model_dump_json() if previous else "",
    )
    found = _memo.get(key) if now is None else None
    if found is not None and found[0] > time.time():
        _memo.move_to_end(key)
        return copy.deepcopy(found[1])
    reading = await _read_now(store, question, previous, now)
    until = _valid_until(reading) if now is None else None
    if until is not None:
        _memo[key] = (until, copy.deepcopy(reading))
        while len(_memo) > MEMO_SIZE:
            _memo.popitem(last=False)
    return reading


async def _read_now(store, question: str, previous: Plan | None, now: datetime | None) -> understand.Reading:
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
    version = await store.audit_version()
    previous = _previous_plan(turn)
    if request.plan is not None:  # a plan from an earlier answer, its chips edited on the web page
        reading = asked_plan(request.plan)
    else:
        reading = await _read(store, request.message, previous, now, version=version)
    source, note = "template", ""
    if reading.kind == "not_understood" and llm_plan.enabled() and request.plan is None:
        try:
            reading = await llm_plan.read(store, request.message, owner=owner, previous=previous, now=now)
            source = "llm_plan"
        except llm_plan.RateLimited as exc:
            note = exc.message()
        except PyMongoError:
            raise  # the store is down: a 503 for the route
        except Exception as exc:  # logged by llm_plan (or a bug): the honest answer below, never a 500
            if not isinstance(exc, llm_plan.LLMPlanError):
                logger.opt(exception=exc).error("question not read by the model")
    base: dict[str, Any] = {
        "conversation_id": conversation_id,
        "entities": reading_entities(reading),
    }
    plan = reading.plan
    if reading.kind != "plan" or plan is None:
        if reading.kind == "help":
            text, suggestions = replies.help_answer(), replies.EXAMPLES[:3]
        elif reading.kind == "small_talk":
            text, suggestions = replies.small_talk_answer(), replies.EXAMPLES[:3]
        elif reading.kind == "out_of_scope":
            text, suggestions = replies.out_of_scope_answer(reading.topic or "ce sujet")
        else:
            close = replies.partial_question(plan)
            suggestions = [q for q in [close, *replies.EXAMPLES] if q][:3]
            text = replies.not_understood_answer(reading.unknown, plan, reading.notes, suggestions)
            text += f" {note}" if note else ""
        intent, confidence = reading_intent(reading)
        response = ChatResponse(
            answer=text, suggestions=suggestions, intent=intent, confidence=confidence, **base
        )
        return Prepared(response=response, template=text, started=started)

    base.update(intent=plan_intent(plan), confidence=1.0, plan=answers.plan_view(plan))
    if source == "llm_plan":  # (a cached answer of the rules keeps its own source: template or llm)
        base.update(source=source, confidence=0.7)
    llm = f"llm:{settings.OPENAI_MODEL}" if openai_service.enabled() else "template"
    key = plan_cache_key(
        plan, notes=reading.notes, absent=reading.absent, audit_version=version,
        extra=f"{store.audit_name}|{llm}|{source}|{TEMPLATES_VERSION}",
    )  # fmt: skip
    hit = await cache.get(key)
    if hit is not None:
        response = ChatResponse(**{**hit, **base, "cached": True})
        return Prepared(response=response, template=hit["template"], started=started, plan=plan)
    try:
        result = await plan_runner.run_plan(store, plan)
    except PyMongoError:
        raise  # the store is down: a 503 for the route
    except ValueError as exc:  # PlanError: a French message for the user
        text = f"Je ne peux pas répondre à cette question telle quelle : {exc}"
        response = ChatResponse(answer=text, suggestions=replies.EXAMPLES[:3], **base)
        return Prepared(response=response, template=text, started=started, plan=plan)
    result.rows = [[jsonable(c) for c in row] for row in result.rows]
    text = answers.write(plan, result, notes=reading.notes, absent=reading.absent, closest=reading.closest)
    if source == "llm_plan":
        text = f"{llm_plan.NOTICE} {text}"
    response = ChatResponse(
        answer=text,
        data=ChatData(columns=result.columns, rows=result.rows, total=result.total),
        suggestions=next_questions(plan, result),
        query=jsonable(result.query),
        **base,
    )
    return Prepared(response=response, template=text, key=key, started=started, plan=plan)


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
    )
    files_text = "\n\n".join(f"# {f.get('name')}\n{(f.get('text') or '')[:20000]}" for f in files)
    return Prepared(response=response, template=text, files_text=files_text)


def _wording_input(prepared: Prepared) -> tuple[str, dict[str, Any] | None]:
    data = prepared.response.data.model_dump() if prepared.response.data else None
    if prepared.files_text:  # the LLM summarises the attached files; figures must be in them
        return prepared.template + "\n\nTexte des fichiers :\n" + prepared.files_text, data
    return prepared.template, data


def _wants_llm(prepared: Prepared) -> bool:
    return (
        openai_service.enabled()
        and not prepared.response.cached
        and prepared.response.source != "llm_plan"  # its first sentence says the model read it: kept as is
        and prepared.response.intent not in (Intent.HELP, Intent.SMALL_TALK, Intent.UNKNOWN, "out_of_scope")
    )


async def finish(store, *, cache: AnswerCache, owner: str, prepared: Prepared) -> ChatResponse:
    """Store the answer in the cache and the conversation, record the action; the final response."""
    response = prepared.response
    if (
        prepared.key
        and not response.cached
        and (response.source != "template" or not openai_service.enabled())
    ):
        value = response.model_dump(mode="json", exclude={"conversation_id", "cached"})
        await cache.put(prepared.key, {**value, "template": prepared.template}, intent=response.intent)
    turn = {
        "question": prepared.question or response.answer,
        "answer": response.answer,
        "intent": response.intent,
        "source": response.source,
        "cached": response.cached,
        "plan": prepared.plan.model_dump(mode="json") if prepared.plan else None,
        "data_total": response.data.total if response.data else None,
    }
    await conversations.append_turn(store, owner=owner, conversation_id=response.conversation_id, turn=turn)
    cache.record(
        username=owner,
        question=str(turn["question"]),
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
    return {
        "type": response.intent,
        "data": rows,
        "summary": response.answer,
        "explanation": explanation.strip(),
        "columns": columns,
    }
