"""Answer cache and chat statistics in SQLite (aiosqlite, WAL mode).

Answers are keyed by the resolved analysis (normalised question, intent, filters with the absolute
time range, grouping) and the audit trail's version, so a relative "hier" asked on another day is
another key and an import invalidates everything. Actions (one per answered question), question
counts and hit/miss counters are queued in memory and written in batches by one writer task: a
chat answer costs no SQLite commit on its own. One connection, every write transaction under a lock;
WAL lets readers of other processes run beside it.
"""

import asyncio
import contextlib
import hashlib
import json
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiosqlite
from rapidfuzz import fuzz, process

from plan import Plan

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    intent TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS answers_expires ON answers (expires_at);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    username TEXT NOT NULL,
    intent TEXT NOT NULL,
    question TEXT NOT NULL,
    cached INTEGER NOT NULL,
    source TEXT NOT NULL,
    duration_ms REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS actions_ts ON actions (ts);
CREATE TABLE IF NOT EXISTS user_questions (
    username TEXT NOT NULL,
    normalized TEXT NOT NULL,
    question TEXT NOT NULL,
    intent TEXT NOT NULL,
    count INTEGER NOT NULL,
    last_asked REAL NOT NULL,
    PRIMARY KEY (username, normalized)
);
CREATE INDEX IF NOT EXISTS user_questions_count ON user_questions (username, count DESC);
DROP TABLE IF EXISTS questions;
CREATE INDEX IF NOT EXISTS actions_user_ts ON actions (username, ts);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters (name, value) VALUES ('hits', 0), ('misses', 0);
"""

# Intents whose questions are worth offering again as suggestions.
NOT_SUGGESTED = {"unknown", "small_talk", "help", "files"}
RECENT_SIZE = 512


class CacheUnavailable(RuntimeError):
    """The SQLite cache cannot be opened or used."""


def normalize_question(text: str) -> str:
    """Lower case, no accents, no punctuation, single spaces: the form questions are compared in."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = "".join(c if c.isalnum() else " " for c in text)
    return " ".join(text.split())


def plan_cache_key(
    plan: Plan, *, notes: list[str], absent: dict[str, list[Any]], audit_version: int, extra: str = ""
) -> str:
    """The key of a planned answer: the plan with absolute times, what the answer says of the reading
    (notes, absent values), and the trail's version. Questions read into the same plan share it."""
    resolved = {
        "plan": plan.model_dump(mode="json", exclude_defaults=True),
        "notes": notes,
        "absent": absent,
        "v": audit_version,
        "extra": extra,
    }
    raw = json.dumps(resolved, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


class AnswerCache:
    def __init__(self, path: str, *, ttl_seconds: int) -> None:
        self.path = path
        self.ttl_seconds = ttl_seconds
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._actions: list[tuple] = []
        self._questions: list[tuple] = []
        self._hits = 0
        self._misses = 0
        self._wake = asyncio.Event()
        self._writer: asyncio.Task | None = None
        # The latest answers of this process, in front of SQLite (keys hold the audit version, so
        # an entry can only be stale by its TTL, which is checked here too).
        self._recent: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    # ------------------------------------------------------------------ life cycle

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            # Autocommit mode: write transactions are opened explicitly with BEGIN IMMEDIATE, which
            # waits for the write lock (busy_timeout) instead of failing on a read-to-write upgrade.
            self._db = await aiosqlite.connect(self.path, timeout=10, isolation_level=None)
            # Every cursor is closed: an open statement would hold a stale read snapshot, and its
            # connection could then never take the write lock.
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=10000"):
                await self._db.execute_fetchall(f"PRAGMA {pragma}")
            await self._db.executescript(SCHEMA)
        except (aiosqlite.Error, OSError) as exc:
            raise CacheUnavailable(f"cache SQLite indisponible: {exc}") from exc
        self._writer = asyncio.create_task(self._write_loop(), name="answer-cache-writer")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        if self._db is not None:
            with contextlib.suppress(aiosqlite.Error):
                await self.flush()
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise CacheUnavailable("cache SQLite fermé")
        return self._db

    async def ping(self) -> float:
        started = time.perf_counter()
        async with self.db.execute("SELECT 1") as cur:
            await cur.fetchone()
        return (time.perf_counter() - started) * 1000

    async def _begin(self) -> None:
        # SQLite may refuse the write lock at once (SQLITE_BUSY without waiting for busy_timeout)
        # while another connection commits; waiting a little and trying again is the documented cure.
        deadline = time.monotonic() + 10
        delay = 0.002
        while True:
            try:
                await self.db.execute("BEGIN IMMEDIATE")
                return
            except aiosqlite.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    @contextlib.asynccontextmanager
    async def _transaction(self):
        async with self._lock:
            await self._begin()
            try:
                yield
            except BaseException:
                with contextlib.suppress(aiosqlite.Error):
                    await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

    # ------------------------------------------------------------------ answers

    async def get(self, key: str) -> dict[str, Any] | None:
        """The cached answer for this key, if any and not expired; counts a hit or a miss."""
        recent = self._recent.get(key)
        if recent is not None and recent[0] > time.time():
            self._recent.move_to_end(key)
            self._hits += 1
            self._wake.set()
            return recent[1]
        async with self.db.execute(
            "SELECT value, expires_at FROM answers WHERE key = ? AND expires_at > ?", (key, time.time())
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            self._misses += 1
            self._wake.set()
            return None
        self._hits += 1
        self._wake.set()
        value = json.loads(row[0])
        self._remember(key, row[1], value)
        return value

    def _remember(self, key: str, expires_at: float, value: dict[str, Any]) -> None:
        self._recent[key] = (expires_at, value)
        self._recent.move_to_end(key)
        while len(self._recent) > RECENT_SIZE:
            self._recent.popitem(last=False)

    async def put(self, key: str, value: dict[str, Any], *, intent: str) -> None:
        now = time.time()
        raw = json.dumps(value, ensure_ascii=False, default=str)
        async with self._transaction():
            await self.db.execute(
                "INSERT OR REPLACE INTO answers (key, intent, value, created_at, expires_at, hits)"
                " VALUES (?, ?, ?, ?, ?, 0)",
                (key, intent, raw, now, now + self.ttl_seconds),
            )
        self._remember(key, now + self.ttl_seconds, json.loads(raw))

    async def cleanup(self, *, everything: bool = False, keep_actions_days: int = 90) -> dict[str, int]:
        """Remove expired answers (all answers with everything=True) and old action records."""
        await self.flush()
        now = time.time()
        if everything:
            self._recent.clear()
        else:
            for key in [k for k, (expires, _) in self._recent.items() if expires <= now]:
                del self._recent[key]
        async with self._transaction():
            if everything:
                cur = await self.db.execute("DELETE FROM answers")
            else:
                cur = await self.db.execute("DELETE FROM answers WHERE expires_at <= ?", (now,))
            removed = cur.rowcount
            oldest = now - keep_actions_days * 86400
            cur = await self.db.execute("DELETE FROM actions WHERE ts < ?", (oldest,))
            removed_actions = cur.rowcount
        return {"removed_entries": max(removed, 0), "removed_actions": max(removed_actions, 0)}

    async def stats(self) -> dict[str, Any]:
        await self.flush()
        now = time.time()
        async with self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(expires_at <= ?), 0), COALESCE(SUM(LENGTH(value)), 0)"
            " FROM answers",
            (now,),
        ) as cur:
            entries, expired, value_bytes = await cur.fetchone()
        async with self.db.execute("SELECT name, value FROM counters") as cur:
            counters = dict(await cur.fetchall())
        async with self.db.execute(
            "SELECT intent, COUNT(*) FROM answers WHERE expires_at > ? GROUP BY intent ORDER BY 2 DESC",
            (now,),
        ) as cur:
            by_intent = {intent: n for intent, n in await cur.fetchall()}
        hits, misses = counters.get("hits", 0), counters.get("misses", 0)
        file_bytes = sum(
            p.stat().st_size for p in Path(self.path).parent.glob(Path(self.path).name + "*") if p.is_file()
        ) if self.path != ":memory:" else 0  # fmt: skip
        return {
            "entries": entries,
            "active_entries": entries - expired,
            "expired_entries": expired,
            "size_bytes": value_bytes,
            "file_bytes": file_bytes,
            "hits": hits,
            "misses": misses,
            "hit_rate": round(hits / (hits + misses), 4) if hits + misses else 0.0,
            "ttl_seconds": self.ttl_seconds,
            "entries_by_intent": by_intent,
        }

    # ------------------------------------------------------------------ actions and questions

    def record(
        self,
        *,
        username: str,
        question: str,
        intent: str,
        cached: bool,
        source: str,
        duration_ms: float,
        at: float | None = None,
    ) -> None:
        """Queue one answered question (written by the background writer, in batches)."""
        ts = time.time() if at is None else at
        self._actions.append((ts, username, intent, question, int(cached), source, duration_ms))
        normalized = normalize_question(question)
        if normalized and intent not in NOT_SUGGESTED:
            self._questions.append((username, normalized, question, intent, ts))
        self._wake.set()

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except aiosqlite.Error as exc:  # keep the writer alive; the next batch retries the write
                from loguru import logger

                logger.warning("answer cache: batch write failed: {}", exc)
                await asyncio.sleep(1)

    async def flush(self) -> None:
        """Write the queued actions, question counts and hit/miss counters."""
        async with self._lock:
            actions, self._actions = self._actions, []
            questions, self._questions = self._questions, []
            hits, misses = self._hits, self._misses
            self._hits = self._misses = 0
            if not (actions or questions or hits or misses):
                return
            try:
                await self._begin()
                if actions:
                    await self.db.executemany(
                        "INSERT INTO actions (ts, username, intent, question, cached, source, duration_ms)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        actions,
                    )
                if questions:
                    await self.db.executemany(
                        "INSERT INTO user_questions"
                        " (username, normalized, question, intent, count, last_asked)"
                        " VALUES (?, ?, ?, ?, 1, ?)"
                        " ON CONFLICT (username, normalized) DO UPDATE SET"
                        " count = count + 1, question = excluded.question, intent = excluded.intent,"
                        " last_asked = excluded.last_asked",
                        questions,
                    )
                if hits or misses:
                    await self.db.executemany(
                        "UPDATE counters SET value = value + ? WHERE name = ?",
                        [(hits, "hits"), (misses, "misses")],
                    )
                await self.db.execute("COMMIT")
            except aiosqlite.Error:
                with contextlib.suppress(aiosqlite.Error):
                    await self.db.execute("ROLLBACK")
                self._actions[:0], self._questions[:0] = actions, questions
                self._hits += hits
                self._misses += misses
                raise

    async def actions(self, *, start: float, end: float, username: str | None = None) -> dict[str, Any]:
        """Answered questions in [start, end) (epoch seconds): totals per intent and per user.

        With `username`, only that user's questions (what an auditor may see).
        """
        await self.flush()
        where = "ts >= ? AND ts < ?" + (" AND username = ?" if username is not None else "")
        window: tuple[Any, ...] = (start, end) if username is None else (start, end, username)
        async with self.db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(cached), 0), AVG(duration_ms) FROM actions WHERE {where}",
            window,
        ) as cur:
            total, cached, avg_ms = await cur.fetchone()
        async with self.db.execute(
            "SELECT intent, COUNT(*), SUM(cached), AVG(duration_ms) FROM actions"
            f" WHERE {where} GROUP BY intent ORDER BY 2 DESC, 1",
            window,
        ) as cur:
            rows = await cur.fetchall()
        by_intent = [{"intent": i, "count": n, "cached": c, "avg_ms": round(a, 2)} for i, n, c, a in rows]
        async with self.db.execute(
            "SELECT username, COUNT(*), SUM(cached), MAX(ts) FROM actions"
            f" WHERE {where} GROUP BY username ORDER BY 2 DESC, 1",
            window,
        ) as cur:
            rows = await cur.fetchall()
        by_user = [{"username": u, "count": n, "cached": c, "last_action": t} for u, n, c, t in rows]
        return {
            "total": total,
            "cached": cached,
            "avg_ms": round(avg_ms, 2) if avg_ms is not None else None,
            "by_intent": by_intent,
            "by_user": by_user,
        }

    async def frequent_questions(self, *, username: str | None, limit: int = 10) -> list[dict[str, Any]]:
        """The questions asked most often: by `username`, or by everyone (None, for admins)."""
        await self.flush()
        if username is not None:
            sql = (
                "SELECT question, intent, count, last_asked FROM user_questions WHERE username = ?"
                " ORDER BY count DESC, last_asked DESC LIMIT ?"
            )
            args: tuple[Any, ...] = (username, limit)
        else:
            sql = (
                "SELECT MAX(question), MAX(intent), SUM(count), MAX(last_asked) FROM user_questions"
                " GROUP BY normalized ORDER BY 3 DESC, 4 DESC LIMIT ?"
            )
            args = (limit,)
        async with self.db.execute(sql, args) as cur:
            rows = await cur.fetchall()
        return [{"question": q, "intent": i, "count": n, "last_asked": t} for q, i, n, t in rows]

    async def suggest(
        self, partial: str, *, username: str, catalogue: Iterable[str], limit: int = 5
    ) -> list[str]:
        """Questions starting like `partial`, then close ones (fuzzy): the user's own frequent ones and
        the catalogue; never another user's words."""
        frequent = [
            q["question"]
            for q in await self.frequent_questions(username=username, limit=200)
            if q["intent"] not in NOT_SUGGESTED_INTENTS and not _is_bare_follow_up(q["question"])
        ]
        candidates = list(dict.fromkeys([*frequent, *catalogue]))
        wanted = normalize_question(partial)
        if not wanted:
            return candidates[:limit]
        return await asyncio.to_thread(_match, wanted, candidates, limit)


# Questions that were not understood, or say nothing on their own, are not offered to others.
NOT_SUGGESTED_INTENTS = {"unknown", "help", "small_talk"}


def _is_bare_follow_up(question: str) -> bool:
    """'et hier ?', 'seulement les DELETE': meaningful only after the question they follow."""
    words = normalize_question(question).split()
    return bool(words) and words[0] in ("et", "seulement", "uniquement", "sauf", "pareil")


def _match(wanted: str, candidates: list[str], limit: int) -> list[str]:
    normalized = [normalize_question(c) for c in candidates]
    picked = [c for c, n in zip(candidates, normalized, strict=True) if n.startswith(wanted)]
    if len(picked) < limit:
        fuzzy = process.extract(
            wanted,
            normalized,
            scorer=fuzz.partial_ratio if len(wanted) < 12 else fuzz.WRatio,
            limit=limit * 3,
            score_cutoff=60,
        )
        for _, _, index in fuzzy:
            if candidates[index] not in picked:
                picked.append(candidates[index])
    return picked[:limit]
