"""The LLM reads into a query plan the questions the rules cannot read wholly; it never computes a figure.

`read(store, question, owner=..., previous=..., now=...)` is called by the chat when `understand.read`
answers "not understood" and an LLM is configured. The model gets the plan's JSON schema (derived from
`plan.Plan`, sent as `response_format` json_schema, or json_object for servers that only honour that),
the audit columns and their meaning, the categories, the stored values that match words of the
question (never the whole trail), the current date and time zone, and worked examples. Its reply is
then checked like a question read by the rules:

- against `plan.Plan` (unknown fields, measures, categories or groupings are refused) and against the
  compiler's own checks, without running anything;
- against the data: each value is replaced by its stored spelling; a value absent from the trail is
  kept (the answer gives 0 and says it does not appear) only if the question names it, otherwise the
  plan is refused (the model invented it). Values are plain strings or numbers, never query syntax.

Anything that fails (no valid plan, timeout, HTTP error, rate limit) raises an `LLMPlanError`, and the
chat gives its honest "not understood" answer. Replies are cached in MongoDB by normalised question, so a
repeated question never calls the model twice; model calls are counted per user in MongoDB (one atomic
update, a TTL index), so every worker shares the limit. Each call is logged with its duration and token
counts; the question itself only at DEBUG level.
"""

import asyncio
import functools
import hashlib
import json
import re
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from typing import Any
from zoneinfo import ZoneInfo

import openai
from loguru import logger
from openai.types.chat import ChatCompletionMessageParam as Message
from openai.types.shared_params import ResponseFormatJSONObject, ResponseFormatJSONSchema
from pydantic import ValidationError
from pymongo.errors import OperationFailure
from rapidfuzz import fuzz, process
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

import openai_service
import plan_compiler
from cache_service import normalize_question
from config import settings
from llm_plan_prompt import COLUMNS, EXAMPLES, GUIDE, WEEKDAYS_EN, example
from nlp_lexicon import Gazetteer, fold_key, gazetteer
from plan import CATEGORIES, FIELDS, GROUPABLE, INT_FIELDS, Filters, Period, Plan
from rate_limit import RateLimiter, TooManyAttempts
from understand import Reading
from understand_lexicon import FILLERS

PLANS_COLLECTION = "llm_plans"  # cached replies, by normalised question
# Part of the cache key: bump it when the prompt or the schema changes.
PROMPT_VERSION = 1
ROLLING_CACHE_SECONDS = 60  # a plan whose period moves with the clock is reused this long only
MAX_KNOWN_PER_FIELD = 20
MAX_VOCABULARY = 120
MAX_VALUE_CHARS = 200

# The answer's first sentence when the model read the question.
NOTICE = (
    "Question interprétée par le modèle de langage (les règles ne l'ont pas comprise en entier) : "
    "vérifiez ci-dessous ce qui a été compris."
)

# Oracle's own vocabularies, small and listed whole in the prompt: a well-formed name absent from the
# trail ("DROP INDEX") is reported absent even when the question words it differently ("index supprimés").
VOCABULARY_FIELDS = ("action_name", "authentication_type", "system_privilege_used")
ORACLE_WORDS = re.compile(r"[A-Z][A-Z0-9_$# ]{0,60}")


class LLMPlanError(RuntimeError):
    """The model gave no usable plan; the chat answers "not understood"."""


class ModelFailed(LLMPlanError):
    """The call failed: timeout, connection or HTTP error, empty reply."""


class PlanRefused(LLMPlanError):
    """The reply is not a valid plan for this question and these data."""


class RateLimited(LLMPlanError):
    """This user made LLM_PLAN_RATE_LIMIT model calls in the last LLM_PLAN_RATE_WINDOW_MINUTES."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limited for {retry_after}s")
        self.retry_after = retry_after

    def message(self) -> str:
        minutes = max(1, round(self.retry_after / 60))
        return (
            f"Le modèle de langage n'a pas été consulté : la limite de {settings.LLM_PLAN_RATE_LIMIT} "
            f"questions par période de {settings.LLM_PLAN_RATE_WINDOW_MINUTES} minutes est atteinte "
            f"(réessayez dans {minutes} min)."
        )


def enabled() -> bool:
    return settings.llm_plan_enabled


# ---------------------------------------------------------------------------- the schema


def _untitled(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _untitled(v) for k, v in node.items() if k != "title"}
    if isinstance(node, list):
        return [_untitled(v) for v in node]
    return node


def _closed(node: Any) -> None:
    """Every object closed (additionalProperties false), as the plan's models are."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node["additionalProperties"] = False
        for value in node.values():
            _closed(value)
    elif isinstance(node, list):
        for value in node:
            _closed(value)


def plan_schema() -> dict[str, Any]:
    """`Plan`'s own JSON schema, made explicit for a model: columns, groupings and categories as enums,
    values as strings. Shared parts stay in `$defs` (OpenAI, vLLM, llama.cpp and Ollama resolve them)."""
    schema = _untitled(Plan.model_json_schema())
    defs = schema.pop("$defs")
    column = {"type": "string", "enum": list(FIELDS)}
    defs["Values"] = {
        "type": "object",
        "properties": {f: {"type": "array", "items": {"type": "string"}} for f in FIELDS},
    }
    filters = defs["Filters"]["properties"]
    filters["include"] = filters["exclude"] = {"$ref": "#/$defs/Values"}
    category = {"type": "array", "items": {"type": "string", "enum": list(CATEGORIES)}}
    filters["categories"] = filters["exclude_categories"] = category
    hour = {"type": "integer", "minimum": 0, "maximum": 24}
    filters["hours"] = {
        "anyOf": [{"type": "array", "items": hour, "minItems": 2, "maxItems": 2}, {"type": "null"}]
    }
    defs["Having"]["properties"]["field"] = column
    defs["Having"]["properties"]["values"]["items"] = {"type": "string"}
    defs["Sequence"]["properties"]["same"]["items"] = column
    props = schema["properties"]
    props["field"] = {"anyOf": [column, {"type": "null"}]}
    props["group_by"]["items"] = {"type": "string", "enum": list(GROUPABLE)}
    _closed(defs)
    _closed(schema)
    return {"$defs": defs, **schema}


def reply_schema() -> dict[str, Any]:
    """The reply: {"plan": a plan, or null when the question cannot be expressed as one}."""
    return json.loads(_reply_schema_json())


@functools.cache
def _reply_schema_json() -> str:  # pydantic takes ~13 ms to build the schema: once per process
    plan = plan_schema()
    defs = {**plan.pop("$defs"), "Plan": plan}
    schema = {
        "$defs": defs,
        "type": "object",
        "properties": {"plan": {"anyOf": [{"$ref": "#/$defs/Plan"}, {"type": "null"}]}},
        "required": ["plan"],
        "additionalProperties": False,
    }
    return json.dumps(schema, ensure_ascii=False)


# ---------------------------------------------------------------------------- the prompt


def system_prompt() -> str:
    """The part of the prompt that does not depend on the question (servers can cache it)."""
    columns = "\n".join(f"- {name}: {meaning}" for name, meaning in COLUMNS.items())
    categories = "\n".join(f"- {name}: {c.label}" for name, c in CATEGORIES.items())
    examples = "\n\n".join(example(q, p) for q, p in EXAMPLES)
    business = f"{settings.BUSINESS_HOURS_START:02d}:00-{settings.BUSINESS_HOURS_END:02d}:00"
    schema = json.dumps(reply_schema(), ensure_ascii=False, separators=(",", ":"))
    return (
        GUIDE.replace("{business}", business)
        + f"\nColumns of an audit event:\n{columns}\n\nCategories (filters.categories):\n{categories}\n\n"
        + f"JSON schema of the reply:\n{schema}\n\n"
        + "Examples (now = Tuesday 2026-03-10 15:00, Europe/Paris):\n\n"
        + examples
    )


_WORD = re.compile(r"[\w.@$#/:-]+")


def known_values(question: str, gaz: Gazetteer) -> dict[str, list[str]]:
    """Stored values that words of the question name: exactly, misspelt, or as part of a longer name.

    Only these go to the model (and the small Oracle vocabularies, listed whole), never the trail.
    """
    words = [w.strip(".:-/") for w in _WORD.findall(fold_key(question))]
    words = [w for w in words if w]
    found: dict[str, dict[str, None]] = {}

    def add(by_field: dict[str, list[str]] | None) -> None:
        for name, values in (by_field or {}).items():
            for v in values:
                found.setdefault(name, {})[v] = None

    pieces = words + [p for w in words if "." in w for p in w.split(".") if p]
    for n in range(1, gaz.max_words + 1):
        for i in range(len(words) - n + 1):
            add(gaz.lookup(" ".join(words[i : i + n])))
    for word in pieces:
        add(gaz.lookup(word))
        if (near := gaz.fuzzy(word)) is not None:
            add(near[1])
        if len(word) >= 4 and word not in FILLERS:  # "martin" -> MMARTIN, ADM_MARTIN
            for key, by_field in gaz.keys.items():
                if word in key:
                    add(by_field)
    return {
        name: list(values)[:MAX_KNOWN_PER_FIELD]
        for name, values in found.items()
        if name not in VOCABULARY_FIELDS
    }


def vocabularies(gaz: Gazetteer) -> dict[str, list[str]]:
    return {f: sorted(str(v) for v in gaz.values.get(f, []))[:MAX_VOCABULARY] for f in VOCABULARY_FIELDS}


def build_messages(
    question: str, gaz: Gazetteer, *, now: datetime, tz: ZoneInfo, previous: Plan | None = None
) -> list[Message]:
    """The system prompt, then what depends on the question: date, known values, previous plan."""
    at = now.astimezone(tz)
    parts = [
        f"Now: {WEEKDAYS_EN[at.weekday()]} {at.isoformat(timespec='seconds')} (time zone {tz.key}).",
        "Oracle names present in the trail: " + json.dumps(vocabularies(gaz), ensure_ascii=False),
        "Known values named by words of the question: "
        + json.dumps(known_values(question, gaz), ensure_ascii=False),
    ]
    if previous is not None:
        spec = json.dumps(previous.model_dump(mode="json", exclude_defaults=True), ensure_ascii=False)
        parts.append(f"Plan of the previous question (the question may be a follow-up to it): {spec}")
    parts.append(f"Question: {question}")
    return [{"role": "system", "content": system_prompt()}, {"role": "user", "content": "\n\n".join(parts)}]


# ---------------------------------------------------------------------------- the call


@dataclass
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


# Servers that refused json_schema (base URL -> True): they get json_object from then on.
_json_object_only: dict[str, bool] = {}


def _response_format(fmt: str) -> ResponseFormatJSONSchema | ResponseFormatJSONObject:
    if fmt == "json_object":
        return {"type": "json_object"}
    # strict=False: the plan has optional parts, which OpenAI's strict mode does not allow; servers
    # with guided decoding (vLLM, llama.cpp, Ollama) follow the schema either way, and we validate.
    return {
        "type": "json_schema",
        "json_schema": {"name": "audit_query_plan", "schema": reply_schema(), "strict": False},
    }


async def _create(messages: list[Message], fmt: str) -> tuple[str, Usage, str | None]:
    completion = await openai_service.client().chat.completions.create(
        model=settings.OPENAI_MODEL,
        messages=messages,
        temperature=0,
        max_tokens=settings.LLM_PLAN_MAX_TOKENS,
        response_format=_response_format(fmt),
        timeout=settings.LLM_PLAN_TIMEOUT_SECONDS,
    )
    usage = Usage()
    if completion.usage is not None:
        usage = Usage(completion.usage.prompt_tokens, completion.usage.completion_tokens)
    if not completion.choices:
        return "", usage, None
    choice = completion.choices[0]
    return (choice.message.content or "").strip(), usage, choice.finish_reason


def _format() -> str:
    if _json_object_only.get(settings.OPENAI_BASE_URL or ""):
        return "json_object"
    return settings.LLM_PLAN_RESPONSE_FORMAT


async def _attempt(messages: list[Message]) -> tuple[str, Usage, str | None, str]:
    fmt = _format()
    try:
        text, usage, finish = await _create(messages, fmt)
    except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
        if fmt != "json_schema":
            raise
        # A server that does not know response_format json_schema: the schema is in the prompt too.
        logger.info("llm_plan: json_schema refused by the server ({}), using json_object", exc.status_code)
        _json_object_only[settings.OPENAI_BASE_URL or ""] = True
        fmt = "json_object"
        text, usage, finish = await _create(messages, fmt)
    return text, usage, finish, fmt


async def call_model(messages: list[Message]) -> str:
    """The model's reply text; transient failures retried within LLM_PLAN_TIMEOUT_SECONDS in all."""
    started = time.perf_counter()
    usage, fmt, outcome = Usage(), _format(), "ok"
    try:
        async with asyncio.timeout(settings.LLM_PLAN_TIMEOUT_SECONDS):
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(openai_service.TRANSIENT),
                stop=stop_after_attempt(settings.OPENAI_MAX_RETRIES + 1),
                wait=wait_exponential(multiplier=0.2, max=2),
                reraise=True,
            ):
                with attempt:
                    text, usage, finish, fmt = await _attempt(messages)
        if finish == "length":
            outcome = "truncated"
            raise ModelFailed("reply cut at LLM_PLAN_MAX_TOKENS")
        if not text:
            outcome = "empty"
            raise ModelFailed("empty reply")
        return text
    except (TimeoutError, openai.APITimeoutError) as exc:
        outcome = "timeout"
        raise ModelFailed("timeout") from exc
    except openai.APIStatusError as exc:
        outcome = f"http_{exc.status_code}"
        raise ModelFailed(outcome) from exc
    except openai.OpenAIError as exc:
        outcome = type(exc).__name__
        raise ModelFailed(outcome) from exc
    finally:
        logger.info(
            "llm_plan call: model={} format={} outcome={} duration_ms={:.0f} prompt_tokens={} "
            "completion_tokens={}",
            settings.OPENAI_MODEL, fmt, outcome, (time.perf_counter() - started) * 1000,
            usage.prompt_tokens, usage.completion_tokens,
        )  # fmt: skip


# ---------------------------------------------------------------------------- checking the reply


def parse_reply(text: str) -> dict[str, Any] | None:
    """The plan object of a reply (None: the model says the question is not a plan); else PlanRefused."""
    body = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, flags=re.DOTALL)
    if fenced:  # some servers in json_object mode still wrap the JSON in a code fence
        body = fenced.group(1)
    try:
        reply = json.loads(body)
    except json.JSONDecodeError as exc:
        raise PlanRefused("reply is not JSON") from exc
    if not isinstance(reply, dict):
        raise PlanRefused("reply is not a JSON object")
    if set(reply) - {"plan"}:  # a bare plan, as servers in json_object mode sometimes answer
        return reply
    plan = reply.get("plan")
    if plan is not None and not isinstance(plan, dict):
        raise PlanRefused("plan is not a JSON object")
    return plan


def _in_question(value: str, folded_question: str) -> bool:
    key = fold_key(value)
    return bool(key) and key in folded_question


class _Checker:
    """Values of a validated plan → stored spellings; absent values named by the question are kept."""

    def __init__(self, gaz: Gazetteer, question: str) -> None:
        self.gaz = gaz
        self.question = fold_key(question)
        self.absent: dict[str, list[Any]] = {}

    def values(self, name: str, values: list[Any]) -> list[Any]:
        return [self.value(name, v) for v in values]

    def value(self, name: str, value: Any) -> Any:
        if isinstance(value, bool) or value is None:
            raise PlanRefused(f"{name}: not a plain value")
        if name in INT_FIELDS:
            if isinstance(value, int) or (
                isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,12}\s*", value)
            ):
                return int(value)
            raise PlanRefused(f"{name}: not an integer")
        text = str(value)
        if not text.strip() or len(text) > MAX_VALUE_CHARS:
            raise PlanRefused(f"{name}: empty or too long value")
        stored = self.gaz.canonical(name, text) if name in self.gaz.values else None
        if stored is not None:
            return stored
        vocabulary = name in VOCABULARY_FIELDS and ORACLE_WORDS.fullmatch(text.strip())
        if not (vocabulary or _in_question(text, self.question)):
            raise PlanRefused(f"{name}: a value neither stored nor named in the question")
        if text not in self.absent.setdefault(name, []):
            self.absent[name].append(text)
        return text

    def filters(self, f: Filters) -> Filters:
        for words in f.sql_contains:
            if not _in_question(words, self.question):
                raise PlanRefused("sql_contains: words not in the question")
        return f.model_copy(
            update={
                "include": {k: self.values(k, v) for k, v in f.include.items()},
                "exclude": {k: self.values(k, v) for k, v in f.exclude.items()},
            }
        )

    def period(self, period: Period | None, tz: ZoneInfo) -> Period | None:
        if period is None:
            return None
        start, end = (
            None if b is None else b if b.tzinfo else b.replace(tzinfo=tz) for b in (period.start, period.end)
        )
        if start is not None and end is not None and start >= end:
            raise PlanRefused("period: start is not before end")
        # The label is shown as the words the period was read from: only words of the question.
        label = period.label if _in_question(period.label, self.question) else ""
        return Period(start=start, end=end, label=label)


def validate(plan_json: dict[str, Any] | None, gaz: Gazetteer, *, question: str, tz: ZoneInfo) -> Reading:
    """The model's plan checked against `Plan`, the compiler and the data; PlanRefused otherwise."""
    if plan_json is None:
        raise PlanRefused("the model found no plan for the question")
    try:
        plan = Plan.model_validate(plan_json)
    except ValidationError as exc:
        raise PlanRefused(f"not a plan: {exc.error_count()} error(s)") from exc
    check = _Checker(gaz, question)
    update: dict[str, Any] = {
        "filters": check.filters(plan.filters),
        "period": check.period(plan.period, tz),
        "compare": check.period(plan.compare, tz),
    }
    if plan.share_of is not None:
        update["share_of"] = check.filters(plan.share_of)
    if plan.having is not None:
        update["having"] = plan.having.model_copy(
            update={"values": check.values(plan.having.field, plan.having.values)}
        )
    if plan.sequence is not None:
        seq = plan.sequence
        update["sequence"] = seq.model_copy(
            update={
                "first": check.values("action_name", seq.first),
                "then": check.values("action_name", seq.then),
            }
        )
    try:
        plan = Plan.model_validate(plan.model_copy(update=update).model_dump())
    except ValidationError as exc:
        raise PlanRefused(f"not a plan once checked: {exc.error_count()} error(s)") from exc
    try:
        plan_compiler.compile_plan(plan)  # the compiler's own checks; nothing runs
    except ValueError as exc:
        logger.debug("llm_plan: compiler refusal: {}", exc)
        raise PlanRefused("the compiler refused the plan") from exc
    closest = {f: _closest(gaz, f, v[0]) for f, v in check.absent.items() if f not in INT_FIELDS}
    return Reading("plan", plan=plan, absent=check.absent, closest=closest)


def _closest(gaz: Gazetteer, name: str, value: Any) -> list[Any]:
    choices = [str(v) for v in gaz.values.get(name, [])]
    found = process.extract(str(value), choices, scorer=fuzz.WRatio, limit=3, score_cutoff=60)
    return [c for c, _, _ in found]


# ---------------------------------------------------------------------------- cache and rate limit


async def ensure_indexes(store) -> None:
    """TTL indexes: cached replies and counted calls remove themselves once expired."""
    await RateLimiter(store, limit=1, window_seconds=60).ensure_indexes()
    for name in (PLANS_COLLECTION,):
        try:
            await store[name].create_index("expires_at", name="expires_at_ttl", expireAfterSeconds=0)
        except OperationFailure:  # an index of that name with other options, from an older version
            await store[name].drop_index("expires_at_ttl")
            await store[name].create_index("expires_at", name="expires_at_ttl", expireAfterSeconds=0)


def cache_key(question: str, previous: Plan | None, now: datetime) -> str:
    """Normalised question, previous plan, local day (periods are absolute), model and prompt."""
    parts = [
        normalize_question(question),
        previous.model_dump_json(exclude_defaults=True) if previous is not None else "",
        now.astimezone(settings.tz).date().isoformat(),
        settings.APP_TIMEZONE,
        settings.OPENAI_BASE_URL or "",
        settings.OPENAI_MODEL,
        str(PROMPT_VERSION),
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _cached_until(text: str, now: datetime) -> datetime:
    """Next local midnight; only ROLLING_CACHE_SECONDS for a plan whose period moves with the clock
    (a bound off the hour, or within the hour around now: « les 3 dernières heures »)."""
    tz = settings.tz
    midnight = datetime.combine(now.astimezone(tz).date() + timedelta(days=1), dt_time(), tz)
    try:
        plan = Plan.model_validate(parse_reply(text) or {})
    except (LLMPlanError, ValidationError):
        return midnight  # the same reply would come again: not worth another call today
    periods = [p for p in (plan.period, plan.compare) if p is not None]
    for bound in (b for p in periods for b in (p.start, p.end) if b is not None):
        local = (bound if bound.tzinfo else bound.replace(tzinfo=tz)).astimezone(tz)
        if local.time().replace(hour=0) != dt_time() or abs((local - now).total_seconds()) < 3600:
            return min(midnight, now + timedelta(seconds=ROLLING_CACHE_SECONDS))
    return midnight


async def _cached_reply(store, key: str, now: datetime) -> str | None:
    doc = await store[PLANS_COLLECTION].find_one({"_id": key, "expires_at": {"$gt": now.astimezone(UTC)}})
    return doc["reply"] if doc else None


async def _cache_reply(store, key: str, text: str, now: datetime) -> None:
    # The reply is stored as text: a model's JSON may hold keys MongoDB refuses ("$where").
    doc = {
        "reply": text,
        "created_at": now.astimezone(UTC),
        "expires_at": _cached_until(text, now).astimezone(UTC),
    }
    await store[PLANS_COLLECTION].replace_one({"_id": key}, doc, upsert=True)


async def take_call(store, owner: str, *, now: float | None = None) -> None:
    """Count one model call for `owner` in the sliding window, or raise RateLimited."""
    limit = settings.LLM_PLAN_RATE_LIMIT
    if limit <= 0:
        return
    limiter = RateLimiter(store, limit=limit, window_seconds=settings.LLM_PLAN_RATE_WINDOW_MINUTES * 60)
    try:
        await limiter.hit(f"llm_plan:{owner}", "llm_plan", now=now)
    except TooManyAttempts as exc:
        raise RateLimited(exc.retry_after) from None


# One reading at a time per cache key in this process: a question asked twice at once costs one call.
_inflight: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


async def read(
    store, question: str, *, owner: str, previous: Plan | None = None, now: datetime | None = None
) -> Reading:
    """The question read by the model into a checked plan (kind "plan"), or an LLMPlanError."""
    at = now or datetime.now(settings.tz)
    gaz = await gazetteer(store)
    key = cache_key(question, previous, at)
    lock = _inflight.get(key)
    if lock is None:
        lock = _inflight[key] = asyncio.Lock()
    async with lock:
        text = await _cached_reply(store, key, at)
        if text is None:
            await take_call(store, owner)
            messages = await asyncio.to_thread(
                build_messages, question, gaz, now=at, tz=settings.tz, previous=previous
            )
            logger.debug("llm_plan question: {}", question)
            text = await call_model(messages)
            await _cache_reply(store, key, text, at)
        else:
            logger.info("llm_plan: cached reply used")
    try:
        return validate(parse_reply(text), gaz, question=question, tz=settings.tz)
    except PlanRefused as exc:
        logger.info("llm_plan reply refused: {}", exc)
        raise
