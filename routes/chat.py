"""Chat area: questions in French, streamed answers, conversations, suggestions; /chatbot for the SPA."""

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query
from loguru import logger
from pymongo.errors import PyMongoError
from sse_starlette import EventSourceResponse

import chat_service
import conversations
import files_service
import llm_plan
from config import settings
from deps import CurrentUser, StoreDep
from errors import ApiError
from models import ChatbotRequest, ChatbotResponse, ChatRequest, ChatResponse
from routes.cache import CacheDep

router = APIRouter(prefix="/chat", tags=["chat"])
# POST /api/chatbot, the existing SPA's route (no /chat prefix).
chatbot_router = APIRouter(tags=["chat"])


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await conversations.ensure_indexes(app.state.store, ttl_days=settings.CONVERSATION_TTL_DAYS)
    await llm_plan.ensure_indexes(app.state.store)
    yield


def _not_found() -> ApiError:
    return ApiError(404, "conversation_not_found", "Conversation introuvable.")


@contextlib.contextmanager
def _chat_errors() -> Iterator[None]:
    """A conversation or file of someone else (or unknown) is a 404."""
    try:
        yield
    except conversations.ConversationNotFound:
        raise _not_found() from None
    except files_service.FileNotFound as exc:
        raise ApiError(404, "file_not_found", str(exc)) from None


async def _prepare(store, cache, user, body: ChatRequest) -> chat_service.Prepared:
    with _chat_errors():
        return await chat_service.prepare(store, cache=cache, owner=user["username"], request=body)


@router.post("/message", response_model=ChatResponse)
async def chat_message(
    body: ChatRequest, user: CurrentUser, store: StoreDep, cache: CacheDep
) -> ChatResponse:
    """Answer a question in French, with the figures' table (`data`) and the query that ran."""
    with _chat_errors():
        return await chat_service.answer(store, cache=cache, owner=user["username"], request=body)


@router.post("/stream", response_class=EventSourceResponse)
async def chat_stream(body: ChatRequest, user: CurrentUser, store: StoreDep, cache: CacheDep):
    """The same answer over SSE: `meta`, then `token` pieces, then `done` (or `error`)."""
    prepared = await _prepare(store, cache, user, body)

    async def events() -> AsyncIterator[dict[str, Any]]:
        try:
            async for event, payload in chat_service.stream(
                store, cache=cache, owner=user["username"], request=body, prepared=prepared
            ):
                data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
                yield {"event": event, "data": data}
        except PyMongoError as exc:
            logger.warning("chat stream: store unavailable: {}", exc)
            yield _error_event("store_unavailable", "La base d'audit est momentanément indisponible.")
        except Exception as exc:
            logger.opt(exception=exc).error("chat stream failed")
            yield _error_event("internal_error", "La réponse n'a pas pu être produite.")

    return EventSourceResponse(events(), ping=15)


def _error_event(code: str, message: str) -> dict[str, Any]:
    return {"event": "error", "data": json.dumps({"detail": message, "code": code}, ensure_ascii=False)}


@router.get("/suggestions")
async def chat_suggestions(
    user: CurrentUser,
    cache: CacheDep,
    partial_message: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=20)] = 5,
) -> dict[str, list[str]]:
    """Questions that complete or resemble what is being typed (frequent ones and known examples)."""
    found = await cache.suggest(
        partial_message, username=user["username"], catalogue=chat_service.EXAMPLES, limit=limit
    )
    return {"suggestions": found}


@router.get("/frequent-questions")
async def frequent_questions(
    user: CurrentUser, cache: CacheDep, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> dict[str, Any]:
    """Your questions asked most often, with their count (everyone's for admins)."""
    owner = None if user.get("role") == "admin" else user["username"]
    return {"questions": await cache.frequent_questions(username=owner, limit=limit)}


@router.get("/conversations")
async def list_conversations(
    user: CurrentUser,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    skip: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """The current user's conversations, latest first."""
    items = await conversations.list_for(store, owner=user["username"], limit=limit, skip=skip)
    return {"conversations": chat_service.jsonable(items)}


@router.get("/conversations/{conversation_id}")
async def get_conversation(conversation_id: str, user: CurrentUser, store: StoreDep) -> dict[str, Any]:
    """One of the current user's conversations with its turns."""
    try:
        doc = await conversations.get(store, owner=user["username"], conversation_id=conversation_id)
    except conversations.ConversationNotFound:
        raise _not_found() from None
    doc["id"] = doc.pop("_id")
    doc.pop("owner", None)
    return chat_service.jsonable(doc)


@router.delete("/conversations/{conversation_id}", status_code=204)
async def delete_conversation(conversation_id: str, user: CurrentUser, store: StoreDep) -> None:
    """Delete one of the current user's conversations."""
    try:
        await conversations.delete(store, owner=user["username"], conversation_id=conversation_id)
    except conversations.ConversationNotFound:
        raise _not_found() from None


@chatbot_router.post("/chatbot", response_model=ChatbotResponse)
async def chatbot(
    body: ChatbotRequest, user: CurrentUser, store: StoreDep, cache: CacheDep
) -> dict[str, Any]:
    """The existing SPA's chatbot: {type, data, summary, explanation, columns}."""
    request = ChatRequest(message=body.question)
    response = await chat_service.answer(store, cache=cache, owner=user["username"], request=request)
    return chat_service.chatbot_shape(response)
