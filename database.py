"""The MongoDB store: one AsyncMongoClient for the app's life, its collections and indexes.

With no MONGODB_URI the store starts SecantusDB (a MongoDB-compatible server on WiredTiger) as a
child process on a free loopback port and talks to it over the wire like to any MongoDB. A child
process rather than threads in this interpreter: measured with 4 concurrent 30-day aggregations,
the app's worst event-loop stall is 2.9 ms with a child and 16.9 ms in-process, for the same
throughput (see README, "Store").
"""

import asyncio
import contextlib
import ctypes
import fcntl
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loguru import logger
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, PyMongoError

AUDIT_COLLECTION = "actions_audit"
AUDIT_VERSION_MAX_AGE = 1.0  # seconds
HEARTBEAT_TIMEOUT_MS = 30_000

# Indexes the audit queries rely on: every time-bounded query can lead with a filter field and
# range-scan event_timestamp.
AUDIT_INDEXES: list[list[tuple[str, int]]] = [
    [("event_timestamp", DESCENDING)],
    [("dbusername", ASCENDING), ("event_timestamp", DESCENDING)],
    [("userhost", ASCENDING), ("event_timestamp", DESCENDING)],
    [("action_name", ASCENDING), ("event_timestamp", DESCENDING)],
    [("object_schema", ASCENDING), ("object_name", ASCENDING), ("event_timestamp", DESCENDING)],
    [("return_code", ASCENDING), ("event_timestamp", DESCENDING)],
    [("session_id", ASCENDING)],
]


class StoreUnavailable(RuntimeError):
    """The MongoDB store cannot be reached."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # Linux: the server gets SIGTERM if the app process dies, so it never keeps the data dir locked.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedMongo:
    """A SecantusDB server in a child process, restarted on the same port if it dies."""

    def __init__(
        self,
        *,
        data_dir: str,
        host: str = "127.0.0.1",
        port: int | None = None,
        cache_size: str | None = None,
    ) -> None:
        from config import settings

        self.data_dir = str(Path(data_dir).resolve())
        # WiredTiger's cache (SecantusDB's default: 1G) bounds most of the store's memory.
        self.cache_size = cache_size or settings.EMBEDDED_CACHE_SIZE
        self.host = host
        self.port = port or free_port(host)
        self._proc: subprocess.Popen | None = None
        self._watch: asyncio.Task | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    @property
    def uri_file(self) -> Path:
        return Path(self.data_dir).parent / "embedded-mongo.uri"

    @staticmethod
    def running_uri(data_dir: str) -> str | None:
        """The URI of a live embedded server already serving this data dir (e.g. the app's)."""
        path = Path(data_dir).resolve().parent / "embedded-mongo.uri"
        try:
            uri = path.read_text().strip()
            host, port = uri.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
            with socket.create_connection((host, int(port)), 0.5):
                return uri
        except (OSError, ValueError, IndexError):
            return None

    def _spawn(self) -> None:
        Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, "-m", "secantus",
            "--host", self.host, "--port", str(self.port),
            "--storage-path", self.data_dir, "--log-level", "WARNING", "--standalone",
            "--cache-size", self.cache_size,
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )

    def start_sync(self, timeout: float = 30.0) -> None:
        """Start and wait until the server accepts connections (for CLI and tests)."""
        self._spawn()
        proc = self._proc
        assert proc is not None  # _spawn set it
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StoreUnavailable(f"embedded SecantusDB exited with code {proc.returncode}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 0.2):
                self.uri_file.write_text(self.uri)
                return
            time.sleep(0.05)
        raise StoreUnavailable("embedded SecantusDB did not start in time")

    async def start(self) -> None:
        await asyncio.to_thread(self.start_sync)
        self.watch()

    def watch(self) -> None:
        """Restart the server if it dies (after `start_sync` from a worker thread)."""
        self._watch = asyncio.create_task(self._supervise(), name="embedded-mongo-watch")

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(2)
            if self._proc is not None and self._proc.poll() is not None:
                logger.warning("embedded SecantusDB exited ({}), restarting", self._proc.returncode)
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.start_sync)

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """Kill the server abruptly (tests of store outages)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()

    def stop_sync(self) -> None:
        if self._proc is None:
            return
        self.uri_file.unlink(missing_ok=True)
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
        self._proc = None

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        await asyncio.to_thread(self.stop_sync)


class Store:
    """The app's MongoDB database and its collections."""

    def __init__(
        self, *, uri: str | None, db_name: str, data_dir: str = "./data", timeout_ms: int = 3000
    ) -> None:
        self._uri = uri
        self.db_name = db_name
        self.data_dir = data_dir
        self.timeout_ms = timeout_ms
        self.audit_name = AUDIT_COLLECTION  # tests point this at a scratch collection
        self._version: tuple[float, int] | None = None  # (read at, audit version)
        self.embedded: EmbeddedMongo | None = None
        self._follower: asyncio.Task | None = None
        self._client: AsyncMongoClient | None = None
        self._db: AsyncDatabase | None = None

    @property
    def client(self) -> AsyncMongoClient:
        if self._client is None:
            raise StoreUnavailable("the store is not started")
        return self._client

    @property
    def db(self) -> AsyncDatabase:
        if self._db is None:
            raise StoreUnavailable("the store is not started")
        return self._db

    @property
    def kind(self) -> str:
        return "embedded-secantusdb" if self.embedded else "mongodb"

    def _attach_or_spawn(self, data_dir: str, port: int | None = None) -> str:
        """The URI of the embedded server for `data_dir`: the running one, or one started here.

        Several workers (uvicorn --workers) start at once: a file lock makes one of them start the
        server, and the others find it through its URI file.
        """
        lock = Path(data_dir).resolve().parent / "embedded-mongo.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                if uri := EmbeddedMongo.running_uri(data_dir):
                    return uri
                embedded = EmbeddedMongo(data_dir=data_dir, port=port)
                embedded.start_sync()
                self.embedded = embedded
                return embedded.uri
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    async def _follow(self, data_dir: str, port: int) -> None:
        """In a worker that did not start the embedded server: take over if its owner stops."""
        while self.embedded is None:
            await asyncio.sleep(2)
            if EmbeddedMongo.running_uri(data_dir) is None:
                with contextlib.suppress(StoreUnavailable, OSError):
                    await asyncio.to_thread(self._attach_or_spawn, data_dir, port)
                if self.embedded is not None:
                    logger.warning("store: the embedded SecantusDB had stopped, restarted on port {}", port)
                    self.embedded.watch()

    async def start(self) -> None:
        uri = self._uri
        data_dir = str(Path(self.data_dir) / "mongo")
        if uri is None:
            uri = await asyncio.to_thread(self._attach_or_spawn, data_dir)
            if self.embedded is not None:
                self.embedded.watch()
                logger.info("store: embedded SecantusDB on {} (data in {})", uri, self.embedded.data_dir)
            else:
                logger.info("store: the embedded SecantusDB already running on {}", uri)
                port = int(uri.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
                self._follower = asyncio.create_task(self._follow(data_dir, port), name="embedded-follow")
        else:
            logger.info("store: MongoDB at {}", _redact(uri))
        self._client = AsyncMongoClient(
            uri,
            tz_aware=True,
            serverSelectionTimeoutMS=self.timeout_ms,
            # Also the heartbeat's socket timeout: a busy store (a long aggregation at 1M events) may
            # answer a heartbeat late, and a missed one clears the pool and cancels every command in
            # flight (503 for the chat questions). A store that is down refuses at once; a question
            # still waits at most serverSelectionTimeoutMS for one that is up.
            connectTimeoutMS=max(self.timeout_ms, HEARTBEAT_TIMEOUT_MS),
            appname="sio-audit",
        )
        self._db = self._client.get_default_database(self.db_name)
        await self.ensure_indexes()

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self.embedded is not None:
            await self.embedded.stop()
            self.embedded = None

    def __getitem__(self, name: str) -> AsyncCollection:
        return self.db[name]

    @property
    def audit(self) -> AsyncCollection:
        return self.db[self.audit_name]

    async def aggregate(
        self, pipeline: list[dict[str, Any]], collection: str | None = None
    ) -> list[dict[str, Any]]:
        """Every document of one aggregation on the audit trail (or `collection`); a `$group` or
        `$sort` over millions of events may spill to disk."""
        target = self.audit if collection is None else self.db[collection]
        cursor = await target.aggregate(pipeline, allowDiskUse=True)
        return await cursor.to_list(None)

    @property
    def users(self) -> AsyncCollection:
        return self.db["users"]

    @property
    def meta(self) -> AsyncCollection:
        return self.db["meta"]

    async def ensure_indexes(self) -> None:
        try:
            for keys in AUDIT_INDEXES:
                await self.audit.create_index(keys)
            await self.users.create_index("username_key", unique=True)
            await self.users.create_index("email_key", unique=True)
        except ConnectionFailure as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def ping(self) -> float:
        """Round-trip time of a ping, in milliseconds."""
        started = time.perf_counter()
        try:
            await self.client.admin.command("ping")
        except PyMongoError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return (time.perf_counter() - started) * 1000

    async def audit_version(self) -> int:
        """A counter bumped by every write to the audit trail; caches key on it.

        Read at most once a second: writes made by this process update it at once, an import made
        by another process (the CLI, another worker) is seen within AUDIT_VERSION_MAX_AGE.
        """
        now = time.monotonic()
        if self._version is not None and now - self._version[0] < AUDIT_VERSION_MAX_AGE:
            return self._version[1]
        doc = await self.meta.find_one({"_id": "audit"})
        version = int(doc["version"]) if doc else 0
        self._version = (now, version)
        return version

    async def bump_audit_version(self) -> int:
        doc = await self.meta.find_one_and_update(
            {"_id": "audit"},
            {"$inc": {"version": 1}, "$set": {"updated_at": datetime.now(UTC)}},
            upsert=True,
            return_document=True,
        )
        if doc is None:  # SecantusDB may answer concurrent upserts of a new document without it
            doc = await self.meta.find_one({"_id": "audit"})
        if doc is None:
            raise StoreUnavailable("the audit version could not be read")
        self._version = (time.monotonic(), int(doc["version"]))
        return self._version[1]


def _redact(uri: str) -> str:
    if "@" not in uri:
        return uri
    scheme, rest = uri.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def make_store() -> Store:
    from config import settings

    return Store(
        uri=settings.MONGODB_URI,
        db_name=settings.MONGODB_DB,
        data_dir=settings.EMBEDDED_DATA_DIR,
        timeout_ms=settings.MONGODB_TIMEOUT_MS,
    )
