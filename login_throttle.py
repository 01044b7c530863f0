"""Login throttling, shared by every worker and replica through MongoDB. Free of FastAPI.

Failed logins are counted per username and per client address in a sliding window (rate_limit): each
attempt is a hit inserted *before* the password is checked, so of many simultaneous guesses exactly
the limit pass.

A shared address (NAT, office proxy) must not let one person lock out everyone behind it: a
username that signed in successfully from an address within `trust_seconds` is not held back by
that address's lock. It is still held back by its own username lock, so a guesser at the same
address gets no more tries on that account than anyone else.

The clock is injectable so tests do not sleep; the TTL uses the real time, as it only collects garbage.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

from rate_limit import RateLimiter, TooManyAttempts

TRUST = "login_trust"


@dataclass(frozen=True)
class Attempt:
    username: str
    address: str | None
    at: float
    ids: list[ObjectId] = field(default_factory=list)


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
        # The address is counted only once the username passed: a guess refused for its username
        # never takes a place in its address's window (so concurrent guesses are not refused twice).
        user_hit = await self.limiter.add(user_key, now)
        ids = [user_hit.id]
        scope, key = None, user_key
        if await self.limiter.over(user_hit):
            scope = "username"
        elif address:
            address_hit = await self.limiter.add(self._addr(address), now)
            ids.append(address_hit.id)
            if await self.limiter.over(address_hit) and not await self._is_trusted(address, username, now):
                scope, key = "address", self._addr(address)
        attempt = Attempt(username=username, address=address, at=now, ids=ids)
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
