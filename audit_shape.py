"""The shape of an audit document, as the queries need it, enforced where documents are written.

MongoDB is shared with other writers. The queries group and compare the audit columns as text,
integers and dates; a document with `DBUSERNAME` as an object or a timestamp as text would break
them. So the shape is checked in three places, all derived from `models.AuditEvent`:
- import coerces each column where that is lossless and reports the row otherwise (`coerce_text`);
- the collection carries a `$jsonSchema` validator (`protect`), so another writer's malformed
  insert is refused by the store itself (code 121);
- documents that were already there (written before the validator, or with validation bypassed)
  are moved to a quarantine collection by a sweep in the background of start-up (`quarantine`),
  counted and logged, never deleted.
"""

import contextlib
import json
import time
import types
import typing
from datetime import datetime, timedelta
from typing import Any

from loguru import logger
from pymongo.errors import CollectionInvalid, OperationFailure, PyMongoError

from models import AuditEvent

QUARANTINE_SUFFIX = "_quarantine"


class ColumnTypeError(ValueError):
    """A column holds a value of a type the model does not allow, and no lossless coercion exists."""


def _base(annotation: Any) -> type:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


COLUMN_TYPES: dict[str, type] = {
    name: _base(field.annotation) for name, field in AuditEvent.model_fields.items()
}
TEXT_COLUMNS = tuple(name for name, kind in COLUMN_TYPES.items() if kind is str)
INT_COLUMNS = tuple(name for name, kind in COLUMN_TYPES.items() if kind is int)
_BSON = {str: ["string", "null"], int: ["int", "long", "null"], datetime: "date"}

AUDIT_SCHEMA: dict[str, Any] = {
    "$jsonSchema": {
        "bsonType": "object",
        "required": ["event_timestamp"],
        "properties": {name: {"bsonType": _BSON[kind]} for name, kind in COLUMN_TYPES.items()},
    }
}


def coerce_text(name: str, value: Any) -> str | None:
    """Text as stored: numbers become their digits; booleans, objects and lists are refused."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    raise ColumnTypeError(f"{name.upper()} doit être un texte, pas {_kind(value)}")


def coerce_extra(value: Any) -> Any:
    """An unknown column is kept; an object or a list is kept as its JSON text (keys may hold '$')."""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "un booléen"
    if isinstance(value, dict):
        return "un objet"
    if isinstance(value, list):
        return "une liste"
    return f"une valeur de type {type(value).__name__}"


async def protect(store: Any) -> None:
    """Put the validator on the audit collection; a store that refuses (no privilege) gets a warning."""
    db, name = store.db, store.audit_name
    try:
        with contextlib.suppress(CollectionInvalid):  # it exists (or another worker just made it)
            await db.create_collection(name, validator=AUDIT_SCHEMA)
            return
        await db.command("collMod", name, validator=AUDIT_SCHEMA, validationLevel="strict")
    except OperationFailure as exc:
        logger.warning("store: no audit validator ({}); documents are only checked at start-up", exc)


SWEEP_WINDOW = timedelta(hours=6)  # the quarantine sweep reads the trail this many hours at a time
_NOT_FITTING: dict[str, Any] = {"$nor": [AUDIT_SCHEMA]}


async def quarantine(store: Any, batch: int = 1000) -> int:
    """Move the documents that do not fit AUDIT_SCHEMA to `<audit>_quarantine`.

    One query over the whole trail held the store for 16 s at 200k events (every document decoded
    and checked in one command), so start-up waited behind it. The sweep reads the span the rollups
    know in SWEEP_WINDOW windows on the `event_timestamp` index, one short query each, and scans the
    whole collection only when those windows saw fewer documents than it holds (a timestamp missing,
    not a date, or outside the span; no rollups).
    """
    import rollups

    moved = seen = 0
    started = time.monotonic()
    try:
        # The rollups' count when trusted: SecantusDB counts a collection by walking it (6.5 s at 1M).
        total = await rollups.held_if_trusted(store)
        if total is None:
            total = await store.audit.estimated_document_count()
        span = await rollups.span(store)
        if span is not None:
            at, end = span[0] - timedelta(days=1), span[1] + timedelta(days=1)
            while at < end:
                window = {"event_timestamp": {"$gte": at, "$lt": at + SWEEP_WINDOW}}
                facet = {"$facet": {"n": [{"$count": "n"}], "bad": [{"$match": _NOT_FITTING}]}}
                rows = await store.aggregate([{"$match": window}, facet])
                seen += int(rows[0]["n"][0]["n"]) if rows and rows[0]["n"] else 0
                moved += await _set_aside(store, rows[0]["bad"] if rows else [])
                at += SWEEP_WINDOW
        if seen < total:
            while docs := await store.audit.find(_NOT_FITTING).limit(batch).to_list():
                moved += await _set_aside(store, docs)
    except PyMongoError as exc:
        logger.warning("store: the audit quarantine sweep stopped: {}", exc)
    logger.info(
        "store: audit quarantine sweep done in {:.1f} s ({} documents in windows)",
        time.monotonic() - started,
        seen,
    )
    if moved:
        logger.warning(
            "store: {} audit document(s) of another shape moved to {}",
            moved,
            store.audit_name + QUARANTINE_SUFFIX,
        )
        await store.bump_audit_version()
    return moved


async def _set_aside(store: Any, docs: list[dict[str, Any]]) -> int:
    import rollups  # (audit_shape is imported by the modules rollups needs)

    if not docs:
        return 0
    # The rollups may count these documents: no reader trusts them from before the deletion until a
    # recount after it.
    await rollups.forget(store)
    target = store.db[store.audit_name + QUARANTINE_SUFFIX]
    ids = [d["_id"] for d in docs]
    await target.delete_many({"_id": {"$in": ids}})
    await target.insert_many(docs, bypass_document_validation=True)
    await store.audit.delete_many({"_id": {"$in": ids}})
    await rollups.forget(store)
    return len(docs)
