"""Rate limits shared by every worker and replica through MongoDB (one document per key). Free of FastAPI.

A key's document holds its hits in the order the store took them: a hit is appended by one atomic
`$push`, and it passes when fewer than the limit of the hits in the window come before it (those
refused or cancelled are pulled out again). So of many simultaneous hits exactly the limit pass,
whatever order the workers' requests reach the store in. (A document per hit, ranked by time and
`_id`, let a hit check before an earlier-ranked one was inserted: one more than the limit could
pass.) Hits that left the window are pulled before each append; a TTL index removes a key's document
once its window has passed. The TTL uses the real time, as it only collects garbage, while the
clock of the window is injectable for tests.
Used for failed logins (login_throttle), registrations per address and the LLM's calls per user.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

HITS = "rate_hits"


class TooManyAttempts(Exception):
    """A key (a username, an address, a user's model calls) is over its limit for `retry_after` seconds."""

    def __init__(self, retry_after: int, scope: str) -> None:
        super().__init__(f"locked ({scope}) for {retry_after}s")
        self.retry_after = retry_after
        self.scope = scope  # "username", "address", "registration" or "llm_plan"


@dataclass(frozen=True)
class Hit:
    id: ObjectId
    key: str
    at: float
    rank: int  # how many hits of the key in the window came before it


class RateLimiter:
    """At most `limit` hits per key in a sliding window of `window_seconds`, counted in MongoDB."""

    def __init__(
        self, store: Any, *, limit: int, window_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.limit = limit
        self.window = window_seconds
        self.clock = clock

    @property
    def hits(self) -> Any:
        return self.store[HITS]

    async def ensure_indexes(self) -> None:
        await self.hits.create_index("expires", expireAfterSeconds=0)
        await self.hits.create_index("hits.id")  # `forget` finds a hit's key by its id

    async def retry_after(self, key: str, now: float) -> int | None:
        """Seconds until `key` may hit again, or None when it is under its limit."""
        doc = await self.hits.find_one({"_id": key})
        recent = sorted(
            (h["at"] for h in (doc or {}).get("hits") or [] if h.get("at", 0) > now - self.window),
            reverse=True,
        )[: self.limit]
        if len(recent) < self.limit:
            return None
        oldest_blocking = recent[-1]  # free again when it leaves the window
        return max(1, math.ceil(oldest_blocking + self.window - now))

    async def add(self, key: str, now: float) -> Hit:
        """Append one hit to the key (an atomic `$push`: the order of the hits is the store's)."""
        own = ObjectId()
        await self.hits.update_one({"_id": key}, {"$pull": {"hits": {"at": {"$lte": now - self.window}}}})
        expires = datetime.now(UTC) + timedelta(seconds=self.window + 60)
        push = {"$push": {"hits": {"id": own, "at": now}}, "$set": {"key": key, "expires": expires}}
        try:
            doc = await self.hits.find_one_and_update(
                {"_id": key}, push, upsert=True, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError:  # two first hits of a key at once: the other one made it, push again
            doc = await self.hits.find_one_and_update(
                {"_id": key}, push, return_document=ReturnDocument.AFTER
            )
        if doc is None:  # SecantusDB may answer an upsert under concurrency without the document
            doc = await self.hits.find_one({"_id": key})
        return Hit(own, key, now, self._rank(doc, own, now))

    def _rank(self, doc: dict[str, Any] | None, own: ObjectId, now: float) -> int:
        """How many hits in the window come before `own` in the key's document."""
        before = 0
        for h in (doc or {}).get("hits") or []:
            if h.get("id") == own:
                return before
            before += h.get("at", 0) > now - self.window
        return self.limit  # not found: never let it pass

    async def over(self, hit: Hit) -> bool:
        """Whether `limit` hits of the key in the window come before this one (those refused or
        cancelled since it was taken no longer do: they were forgotten)."""
        if hit.rank < self.limit:
            return False  # fewer came before it when it was appended, and none can be added before it
        return self._rank(await self.hits.find_one({"_id": hit.key}), hit.id, hit.at) >= self.limit

    async def forget(self, ids: list[ObjectId]) -> None:
        if ids:
            await self.hits.update_many({"hits.id": {"$in": ids}}, {"$pull": {"hits": {"id": {"$in": ids}}}})

    async def hit(self, key: str, scope: str, *, now: float | None = None) -> None:
        """Count one hit, or raise TooManyAttempts when the key is over its limit (that hit is not kept)."""
        now = self.clock() if now is None else now
        taken = await self.add(key, now)
        if await self.over(taken):
            await self.forget([taken.id])
            raise TooManyAttempts(await self.retry_after(key, now) or 1, scope)

    async def reset(self) -> None:
        await self.hits.delete_many({})
