"""Optional LLM wording of chat answers through any OpenAI-compatible server (openai.AsyncOpenAI).

The LLM only rewords: it gets the question, the template answer and the table, and must use only
those figures. Its text is rejected (the caller keeps the template answer) when it states a number
that is not in the question, the template or the table. Transient failures (timeouts, connection
errors, 429, 5xx) are retried with tenacity; anything else raises LLMError at once.

Streaming: `stream_answer` forwards text as it arrives, except that a number is held back until it
is complete and checked; an invented number stops the stream with InventedFigure before that number
leaves the server (text already forwarded never holds an unchecked figure).
"""

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import openai
from openai import AsyncOpenAI
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from config import settings

SYSTEM_PROMPT = (
    "Tu es l'assistant d'auditeurs qui interrogent la piste d'audit d'une base Oracle. "
    "Réponds en français, en deux à quatre phrases claires, à la question posée, en t'appuyant "
    "uniquement sur la réponse de référence et le tableau fournis. N'utilise que les chiffres, dates "
    "et noms qui y figurent : n'invente, n'arrondis et ne calcule aucun chiffre (pas de pourcentage, "
    "pas de total, pas de moyenne qui n'y soient pas déjà). S'il n'y a pas de données, dis-le."
)

TRANSIENT = (
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.RateLimitError,
    openai.InternalServerError,
)
MAX_TABLE_ROWS = 30


class LLMError(RuntimeError):
    """The LLM could not give an answer (not configured, failed, or timed out after retries)."""


class InventedFigure(LLMError):
    """The LLM stated a number that is not in the data."""

    def __init__(self, figure: str) -> None:
        super().__init__(f"chiffre absent des données: {figure}")
        self.figure = figure


def enabled() -> bool:
    return settings.llm_enabled


_clients: dict[tuple, AsyncOpenAI] = {}


def client() -> AsyncOpenAI:
    """One client per configuration (settings may change in tests); retries are ours, not the SDK's."""
    config = (settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL, settings.OPENAI_TIMEOUT_SECONDS)
    if not settings.OPENAI_API_KEY:
        raise LLMError("OPENAI_API_KEY n'est pas défini")
    if config not in _clients:
        _clients[config] = AsyncOpenAI(
            api_key=settings.OPENAI_API_KEY,
            base_url=settings.OPENAI_BASE_URL or None,
            timeout=settings.OPENAI_TIMEOUT_SECONDS,
            max_retries=0,
        )
    return _clients[config]


def _retrying() -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception_type(TRANSIENT),
        stop=stop_after_attempt(settings.OPENAI_MAX_RETRIES + 1),
        wait=wait_exponential(multiplier=0.2, max=2),
        reraise=True,
    )


# ---------------------------------------------------------------------------- figures

# A number as written in French or English text: 20 000, 20 000, 1,5, 3.25, 01017.
_THOUSANDS = re.compile(r"(?<=\d)[ \u00a0\u202f](?=\d{3}(?!\d))")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


def figures(text: str) -> set[str]:
    """The numbers a text states, normalised (no thousands separator, '.' decimals, no leading 0)."""
    found = set()
    for raw in _NUMBER.findall(_THOUSANDS.sub("", text)):
        found.add(_canonical(raw))
        # "14,5" may be a list "14, 5" or a date-like "10.30": its parts are figures too.
        if "," in raw or "." in raw:
            found.update(_canonical(part) for part in re.split(r"[.,]", raw))
    return found


def _canonical(raw: str) -> str:
    raw = raw.replace(",", ".")
    try:
        value = float(raw)
    except ValueError:
        return raw
    return str(int(value)) if value.is_integer() else repr(value)


def allowed_figures(*texts: str, rows: list[list[Any]] | None = None) -> set[str]:
    allowed: set[str] = set()
    for text in texts:
        allowed |= figures(text or "")
    for row in rows or []:
        for cell in row:
            allowed |= figures(str(cell))
    return allowed


def invented(text: str, allowed: set[str]) -> list[str]:
    """Numbers of `text` that are not allowed, in order."""
    bad = []
    for raw in _NUMBER.findall(_THOUSANDS.sub("", text)):
        value = _canonical(raw)
        if value in allowed:
            continue
        if ("," in raw or "." in raw) and all(_canonical(p) in allowed for p in re.split(r"[.,]", raw)):
            continue
        bad.append(raw)
    return bad


class FigureGuard:
    """Lets streamed text through, holding each number back until it is complete and checked."""

    # A tail that may still grow into a longer number: digits, maybe a separator and more digits.
    _OPEN = re.compile(r"\d[\d \u00a0\u202f.,]*$")

    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed
        self.pending = ""

    def feed(self, piece: str) -> str:
        self.pending += piece
        tail = self._OPEN.search(self.pending)
        cut = tail.start() if tail else len(self.pending)
        ready, self.pending = self.pending[:cut], self.pending[cut:]
        return self._check(ready)

    def finish(self) -> str:
        ready, self.pending = self.pending, ""
        return self._check(ready)

    def _check(self, text: str) -> str:
        bad = invented(text, self.allowed)
        if bad:
            raise InventedFigure(bad[0])
        return text


# ---------------------------------------------------------------------------- calls


def build_messages(question: str, *, template: str, data: dict[str, Any] | None) -> list[dict[str, str]]:
    table = "aucune"
    if data:
        shown = {
            "columns": data["columns"],
            "rows": data["rows"][:MAX_TABLE_ROWS],
            "total": data["total"],
        }
        table = json.dumps(shown, ensure_ascii=False, default=str)
    user = f"Question : {question}\n\nRéponse de référence : {template}\n\nTableau (JSON) : {table}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


async def word_answer(question: str, *, template: str, data: dict[str, Any] | None) -> str:
    """The LLM's wording of the answer, checked against the figures; raises LLMError otherwise."""
    messages = build_messages(question, template=template, data=data)
    try:
        async for attempt in _retrying():
            with attempt:
                completion = await client().chat.completions.create(
                    model=settings.OPENAI_MODEL, messages=messages, temperature=0.1
                )
    except openai.OpenAIError as exc:
        raise LLMError(f"{type(exc).__name__}: {exc}") from exc
    text = (completion.choices[0].message.content or "").strip() if completion.choices else ""
    if not text:
        raise LLMError("réponse vide")
    bad = invented(text, allowed_figures(question, template, rows=data["rows"] if data else None))
    if bad:
        raise InventedFigure(bad[0])
    return text


async def stream_answer(question: str, *, template: str, data: dict[str, Any] | None) -> AsyncIterator[str]:
    """Checked text pieces as the LLM produces them; raises LLMError or InventedFigure."""
    messages = build_messages(question, template=template, data=data)
    guard = FigureGuard(allowed_figures(question, template, rows=data["rows"] if data else None))
    try:
        # Only opening the stream is retried: once text was forwarded a retry would repeat it.
        async for attempt in _retrying():
            with attempt:
                stream = await client().chat.completions.create(
                    model=settings.OPENAI_MODEL, messages=messages, temperature=0.1, stream=True
                )
        sent = False
        async with stream:
            async for chunk in stream:
                if not chunk.choices:
                    continue
                piece = chunk.choices[0].delta.content or ""
                safe = guard.feed(piece)
                if safe:
                    sent = True
                    yield safe
        rest = guard.finish()
        if rest:
            sent = True
            yield rest
        if not sent:
            raise LLMError("réponse vide")
    except openai.OpenAIError as exc:
        raise LLMError(f"{type(exc).__name__}: {exc}") from exc
