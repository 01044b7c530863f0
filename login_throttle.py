"""Login throttling and rate limits, shared by every worker and replica through MongoDB. Free of FastAPI.

Failed logins are counted per username and per client address in a sliding window. Each attempt is
one document, inserted *before* the password is checked; it passes when fewer than the limit came
before it (by time, then `_id`), so of many simultaneous guesses exactly the limit pass.
A TTL index removes the documents once the window has passed.

A shared address (NAT, office proxy) must not let one person lock out everyone behind it: a
username that signed in successfully from an address within `trust_seconds` is not held back by
that address's lock. It is still held back by its own username lock, so a guesser at the same
address gets no more tries on that account than anyone else.

The clock is injectable so tests do not sleep; the TTL uses the real time, as it only collects garbage.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING

HITS = "rate_hits"
TRUST = "login_trust"


class TooManyAttempts(Exception):
    """The username or the address is locked for `retry_after` seconds."""

    def __init__(self, retry_after: int, scope: str) -> None:
        super().__init__(f"locked ({scope}) for {retry_after}s")
        self.retry_after = retry_after
        self.scope = scope  # "username", "address" or "registration"


@dataclass(frozen=True)
class Attempt:
    username: str
    address: str | None
    at: float
    ids: list[ObjectId] = field(default_factory=list)


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

    async def hit(self, key: str, scope: str) -> None:
        """Count one hit, or raise TooManyAttempts when the key is over its limit (that hit is not kept)."""
        now = self.clock()
        ids = await self.add([key], now)
        if await self.over(key, now, ids[0]):
            await self.forget(ids)
            raise TooManyAttempts(await self.retry_after(key, now) or 1, scope)

    async def reset(self) -> None:
        await self.hits.delete_many({})


class LoginThrottle:
    """Counts failed logins; `begin` refuses when max_attempts failures fall within the window."""

    def __init__(
        self,
        store: Any,
        *,
        max_attempts: int,
        window_seconds: float,
        trust_seconds: float = 24 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limiter = RateLimiter(store, limit=max_attempts, window_seconds=window_seconds, clock=clock)
        self.store = store
        self.trust_seconds = trust_seconds
        self.clock = clock

    @property
    def _trust(self) -> Any:
        return self.store[TRUST]

    async def ensure_indexes(self) -> None:
        await self.limiter.ensure_indexes()
        await self._trust.create_index("expires", expireAfterSeconds=0)

    @staticmethod
    def _user(username: str) -> str:
        return "login:u:" + username.strip().casefold()

    @staticmethod
    def _addr(address: str) -> str:
        return "login:a:" + address

    @staticmethod
    def _pair(address: str, username: str) -> str:
        return f"{address}|{username.strip().casefold()}"

    async def _is_trusted(self, address: str, username: str, now: float) -> bool:
        doc = await self._trust.find_one({"_id": self._pair(address, username)})
        return doc is not None and now - doc["at"] < self.trust_seconds

    async def begin(self, *, username: str, address: str | None) -> Attempt:
        """Reserve an attempt, or raise TooManyAttempts.

        The attempt counts as a failure until `succeeded` or `cancel`, so concurrent guesses cannot
        all pass the check before the first one is verified.
        """
        now = self.clock()
        user_key = self._user(username)
        keys = [user_key] + ([self._addr(address)] if address else [])
        ids = await self.limiter.add(keys, now)
        attempt = Attempt(username=username, address=address, at=now, ids=ids)
        scope = None
        if await self.limiter.over(user_key, now, ids[0]):
            scope, key = "username", user_key
        elif (
            address
            and not await self._is_trusted(address, username, now)
            and await self.limiter.over(self._addr(address), now, ids[1])
        ):
            scope, key = "address", self._addr(address)
        if scope is not None:
            await self.limiter.forget(ids)
            raise TooManyAttempts(await self.limiter.retry_after(key, now) or 1, scope)
        return attempt

    async def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the username starts afresh and is trusted from this address."""
        await self.limiter.forget(attempt.ids)
        await self.limiter.hits.delete_many({"key": self._user(attempt.username)})
        if attempt.address:
            now = self.clock()
            expires = datetime.now(UTC) + timedelta(seconds=self.trust_seconds)
            await self._trust.update_one(
                {"_id": self._pair(attempt.address, attempt.username)},
                {"$set": {"at": now, "expires": expires}},
                upsert=True,
            )

    async def cancel(self, attempt: Attempt) -> None:
        """The attempt could not be checked (e.g. the store was down): it does not count."""
        await self.limiter.forget(attempt.ids)

    async def reset(self) -> None:
        await self.limiter.reset()
        await self._trust.delete_many({})
