"""Rate limits shared by every worker and replica through MongoDB (one document per hit). Free of FastAPI.

A hit is inserted *before* the check; it passes when fewer than the limit came before it in the
sliding window (by time, then `_id`), so of many simultaneous hits exactly the limit pass, with no
read-modify-write to lose. A TTL index removes the documents once the window has passed; it uses the
real time, as it only collects garbage, while the clock of the count is injectable for tests.
Used for failed logins (login_throttle), registrations per address and the LLM's calls per user.
"""

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING

HITS = "rate_hits"


class TooManyAttempts(Exception):
    """A key (a username, an address, a user's model calls) is over its limit for `retry_after` seconds."""

    def __init__(self, retry_after: int, scope: str) -> None:
        super().__init__(f"locked ({scope}) for {retry_after}s")
        self.retry_after = retry_after
        self.scope = scope  # "username", "address", "registration" or "llm_plan"


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
        await self.hits.create_index([("key", ASCENDING), ("at", ASCENDING)])
        await self.hits.create_index("expires", expireAfterSeconds=0)

    async def retry_after(self, key: str, now: float) -> int | None:
        """Seconds until `key` may hit again, or None when it is under its limit."""
        recent = (
            await self.hits.find({"key": key, "at": {"$gt": now - self.window}}, {"at": 1})
            .sort("at", -1)
            .limit(self.limit)
            .to_list()
        )
        if len(recent) < self.limit:
            return None
        oldest_blocking = recent[-1]["at"]  # free again when it leaves the window
        return max(1, math.ceil(oldest_blocking + self.window - now))

    async def add(self, keys: list[str], now: float) -> list[ObjectId]:
        expires = datetime.now(UTC) + timedelta(seconds=self.window + 60)
        ids = [ObjectId() for _ in keys]
        docs = [{"_id": i, "key": k, "at": now, "expires": expires} for i, k in zip(ids, keys, strict=True)]
        await self.hits.insert_many(docs)
        return ids

    async def over(self, key: str, now: float, own: ObjectId) -> bool:
        """Whether `limit` hits of `key` in the window came before the caller's own hit `own`.

        Hits are ranked by time, then by `_id` between hits of the same instant, so exactly `limit`
        of many simultaneous hits pass, where counting all of them could refuse every one. (`_id`
        alone is no order across processes: within one second, ObjectIds sort by a per-process
        random part.)
        """
        recent = {
            "key": key,
            "at": {"$gt": now - self.window},
            "$or": [{"at": {"$lt": now}}, {"at": now, "_id": {"$lt": own}}],
        }
        return await self.hits.count_documents(recent, limit=self.limit) >= self.limit

    async def forget(self, ids: list[ObjectId]) -> None:
        if ids:
            await self.hits.delete_many({"_id": {"$in": ids}})

    async def hit(self, key: str, scope: str, *, now: float | None = None) -> None:
        """Count one hit, or raise TooManyAttempts when the key is over its limit (that hit is not kept)."""
        now = self.clock() if now is None else now
        ids = await self.add([key], now)
        if await self.over(key, now, ids[0]):
            await self.forget(ids)
            raise TooManyAttempts(await self.retry_after(key, now) or 1, scope)

    async def reset(self) -> None:
        await self.hits.delete_many({})
