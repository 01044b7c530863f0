"""Login throttling: failed attempts per username and per client address in a sliding window.

In memory, for one process (several workers each keep their own counts). Free of FastAPI.
The clock is injectable so tests do not sleep.

A shared address (NAT, office proxy) must not let one person lock out everyone behind it: a
username that signed in successfully from an address within `trust_seconds` is not held back by
that address's lock. It is still held back by its own username lock, so a guesser at the same
address gets no more tries on that account than anyone else.
"""

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


class TooManyAttempts(Exception):
    """The username or the address is locked for `retry_after` seconds."""

    def __init__(self, retry_after: int, scope: str) -> None:
        super().__init__(f"locked ({scope}) for {retry_after}s")
        self.retry_after = retry_after
        self.scope = scope  # "username" or "address"


@dataclass(frozen=True)
class Attempt:
    username: str
    address: str | None
    at: float


class LoginThrottle:
    """Counts failed logins; `begin` refuses when max_attempts failures fall within the window."""

    def __init__(
        self,
        *,
        max_attempts: int,
        window_seconds: float,
        trust_seconds: float = 24 * 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_attempts = max_attempts
        self.window = window_seconds
        self.trust_seconds = trust_seconds
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._trusted: dict[tuple[str, str], float] = {}  # (address, username) -> last success
        self._next_prune = 0.0

    @staticmethod
    def _user(username: str) -> str:
        return "u:" + username.strip().casefold()

    @staticmethod
    def _addr(address: str) -> str:
        return "a:" + address

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def _retry_after(self, key: str, now: float) -> int | None:
        q = self._recent(key, now)
        if len(q) < self.max_attempts:
            return None
        # Free again when enough of the oldest failures have left the window.
        oldest_blocking = q[len(q) - self.max_attempts]
        return max(1, math.ceil(oldest_blocking + self.window - now))

    def _is_trusted(self, address: str, username: str, now: float) -> bool:
        at = self._trusted.get((address, username.strip().casefold()))
        return at is not None and now - at < self.trust_seconds

    def begin(self, *, username: str, address: str | None) -> Attempt:
        """Reserve an attempt, or raise TooManyAttempts.

        The attempt counts as a failure until `succeeded` or `cancel`, so concurrent guesses cannot
        all pass the check before the first one is verified.
        """
        now = self.clock()
        self._maybe_prune(now)
        retry = self._retry_after(self._user(username), now)
        if retry is not None:
            raise TooManyAttempts(retry, "username")
        if address and not self._is_trusted(address, username, now):
            retry = self._retry_after(self._addr(address), now)
            if retry is not None:
                raise TooManyAttempts(retry, "address")
        keys = [self._user(username)] + ([self._addr(address)] if address else [])
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)
        return Attempt(username=username, address=address, at=now)

    def _forget(self, attempt: Attempt) -> None:
        keys = [self._user(attempt.username)]
        if attempt.address:
            keys.append(self._addr(attempt.address))
        for key in keys:
            q = self._failures.get(key)
            if q is not None and attempt.at in q:
                q.remove(attempt.at)

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the username starts afresh and is trusted from this address."""
        self._forget(attempt)
        self._failures.pop(self._user(attempt.username), None)
        if attempt.address:
            self._trusted[(attempt.address, attempt.username.strip().casefold())] = self.clock()

    def cancel(self, attempt: Attempt) -> None:
        """The attempt could not be checked (e.g. the store was down): it does not count."""
        self._forget(attempt)

    def reset(self) -> None:
        self._failures.clear()
        self._trusted.clear()

    def _maybe_prune(self, now: float) -> None:
        if now < self._next_prune:
            return
        self._next_prune = now + 60
        for key in [k for k, q in self._failures.items() if not q or q[-1] <= now - self.window]:
            del self._failures[key]
        for pair in [p for p, at in self._trusted.items() if now - at >= self.trust_seconds]:
            del self._trusted[pair]
