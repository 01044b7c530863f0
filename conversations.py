"""Chat conversations in MongoDB (`conversations`): per user, their turns with the plans they were read into.

A TTL index on `updated_at` removes a conversation CONVERSATION_TTL_DAYS after its last turn.
Every read and write filters on the owner, so another user's conversation is simply not found.
"""

import uuid
from datetime import UTC, datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError, OperationFailure

COLLECTION = "conversations"
MAX_TURNS = 200  # older turns are dropped from a very long conversation
TITLE_CHARS = 80


class ConversationNotFound(LookupError):
    """No conversation with this id for this user."""


async def ensure_indexes(store, *, ttl_days: int) -> None:
    coll = store[COLLECTION]
    await coll.create_index([("owner", 1), ("updated_at", DESCENDING)])
    ttl = ttl_days * 86400
    try:
        await coll.create_index("updated_at", name="updated_at_ttl", expireAfterSeconds=ttl)
    except OperationFailure:  # the TTL changed since the index was made
        await coll.drop_index("updated_at_ttl")
        await coll.create_index("updated_at", name="updated_at_ttl", expireAfterSeconds=ttl)


def new_id() -> str:
    return uuid.uuid4().hex


async def get(store, *, owner: str, conversation_id: str) -> dict[str, Any]:
    doc = await store[COLLECTION].find_one({"_id": conversation_id, "owner": owner})
    if doc is None:
        raise ConversationNotFound(conversation_id)
    return doc


async def previous_turn(store, *, owner: str, conversation_id: str | None) -> dict[str, Any] | None:
    """The last turn of this user's conversation (None for a new one)."""
    if not conversation_id:
        return None
    doc = await store[COLLECTION].find_one(
        {"_id": conversation_id, "owner": owner}, {"turns": {"$slice": -1}, "owner": 1}
    )
    if doc is None:
        exists = await store[COLLECTION].count_documents({"_id": conversation_id}, limit=1)
        if exists:
            raise ConversationNotFound(conversation_id)
        return None  # an id the client chose: the conversation starts with this turn
    turns = doc.get("turns") or []
    return turns[-1] if turns else None


async def append_turn(store, *, owner: str, conversation_id: str, turn: dict[str, Any]) -> None:
    """Add a turn, creating the conversation on its first one."""
    now = datetime.now(UTC)
    turn = {**turn, "at": now}
    try:
        await store[COLLECTION].update_one(
            {"_id": conversation_id, "owner": owner},
            {
                "$push": {"turns": {"$each": [turn], "$slice": -MAX_TURNS}},
                "$set": {"updated_at": now},
                "$setOnInsert": {"created_at": now, "title": turn["question"][:TITLE_CHARS]},
            },
            upsert=True,
        )
    except DuplicateKeyError:  # the id belongs to another user
        raise ConversationNotFound(conversation_id) from None


async def list_for(store, *, owner: str, limit: int = 50, skip: int = 0) -> list[dict[str, Any]]:
    pipeline = [
        {"$match": {"owner": owner}},
        {"$sort": {"updated_at": -1}},
        {"$skip": skip},
        {"$limit": limit},
        {
            "$project": {
                "title": 1,
                "created_at": 1,
                "updated_at": 1,
                "turn_count": {"$size": {"$ifNull": ["$turns", []]}},
            }
        },
    ]
    docs = await (await store[COLLECTION].aggregate(pipeline)).to_list()
    return [{"id": d.pop("_id"), **d} for d in docs]


async def delete(store, *, owner: str, conversation_id: str) -> None:
    result = await store[COLLECTION].delete_one({"_id": conversation_id, "owner": owner})
    if result.deleted_count == 0:
        raise ConversationNotFound(conversation_id)
