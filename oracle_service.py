"""Oracle: the async connection pool, read-only query execution, live metrics and audit trail sync.

python-oracledb's async pool (thin mode). Acquiring a connection is retried with exponential
backoff, within a bound; a statement is never run twice. Every acquired connection starts a
read-only transaction and gets a call timeout; rows are capped and fetched in batches; values travel
as bind variables. Nothing here imports FastAPI: routes turn the exceptions below into HTTP errors.
"""

import asyncio
import base64
import contextlib
import math
import re
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import oracledb
from loguru import logger
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

import sql_guard
from database import Store
from ingest import import_rows
from models import DependencyHealth

FETCH_BATCH = 500
LATENCY_WINDOW = 2048
SYNC_META_ID = "oracle_sync"
EPOCH = datetime(1970, 1, 1)

# Error codes meaning the statement ran out of time, or the session is gone.
TIMEOUT_CODES = {"DPY-4024", "ORA-03156", "DPY-4005"}
SESSION_LOST_CODES = {"DPY-1001", "DPY-4011", "ORA-03113", "ORA-03114", "ORA-03135", "ORA-00028"}

# Columns of UNIFIED_AUDIT_TRAIL read by the sync, as the audit contract names them.
SYNC_COLUMNS = (
    "EVENT_TIMESTAMP",
    "OS_USERNAME",
    "USERHOST",
    "TERMINAL",
    "DBUSERNAME",
    "CLIENT_PROGRAM_NAME",
    "ACTION_NAME",
    "RETURN_CODE",
    "OBJECT_SCHEMA",
    "OBJECT_NAME",
    "SQL_TEXT",
    "SQL_BINDS",
    "SESSIONID",
    "AUTHENTICATION_TYPE",
    "UNIFIED_AUDIT_POLICIES",
    "SYSTEM_PRIVILEGE_USED",
    "INSTANCE_ID",
)
SYNC_SQL = (
    f"SELECT {', '.join(SYNC_COLUMNS)} FROM UNIFIED_AUDIT_TRAIL "
    "WHERE EVENT_TIMESTAMP >= :since ORDER BY EVENT_TIMESTAMP"
)


# --------------------------------------------------------------------------- errors


class OracleError(Exception):
    """Base of the errors of this module; the message is French, for users."""


class OracleNotConfigured(OracleError):
    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = list(missing)
        super().__init__(
            "Oracle n'est pas configuré : "
            + ", ".join(self.missing)
            + " manquant(s). Renseignez-les dans l'environnement ou via POST /api/oracle/config."
        )


class OracleUnavailable(OracleError):
    """No connection could be had (after the configured retries), or the session was lost."""

    def __init__(self, message: str, *, attempts: int = 0, elapsed_s: float = 0.0) -> None:
        self.attempts = attempts
        self.elapsed_s = elapsed_s
        super().__init__(message)


class OracleTimeout(OracleError):
    """The statement exceeded the call timeout."""


class OracleQueryFailed(OracleError):
    """Oracle rejected the statement (unknown table, bad bind, syntax...)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        self.code = code
        super().__init__(message)


class SyncInProgress(OracleError):
    pass


class HostNotAllowed(OracleError):
    """A run-time configuration names a database host outside the allow-list."""

    def __init__(self, hosts: Sequence[str]) -> None:
        self.hosts = list(hosts)
        super().__init__(
            "Hôte Oracle non autorisé : "
            + ", ".join(self.hosts)
            + ". Ajoutez-le à ORACLE_ALLOWED_HOSTS dans la configuration du service."
        )


_TNS_HOST = re.compile(r"\(\s*HOST\s*=\s*([^)\s]+)\s*\)", re.IGNORECASE)


def dsn_hosts(dsn: str) -> set[str]:
    """The hosts a connect string points at: `host:port/service`, `tcps://host...` or a TNS description."""
    hosts = set(_TNS_HOST.findall(dsn))
    if hosts or "(" in dsn:
        return {h.lower() for h in hosts}
    rest = re.sub(r"^[a-z]+://", "", dsn.strip(), flags=re.IGNORECASE).split("/", 1)[0].split("?", 1)[0]
    rest = rest.rsplit("@", 1)[-1]
    host = rest[1:].split("]", 1)[0] if rest.startswith("[") else rest.split(":", 1)[0]
    return {host.lower()} if host else set()


def _error_code(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else None
    return getattr(arg, "full_code", "") or ""


def _error_text(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else None
    text = getattr(arg, "message", None) or str(exc)
    return text.strip().splitlines()[0][:300] if text else type(exc).__name__


def _is_transient(exc: BaseException) -> bool:
    """Worth another attempt at acquiring a connection."""
    if isinstance(exc, TimeoutError | OSError | oracledb.OperationalError | oracledb.InterfaceError):
        return True
    return _error_code(exc) in TIMEOUT_CODES | SESSION_LOST_CODES or _error_code(exc).startswith("DPY-6")


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class OracleConfig:
    host: str | None = None
    port: int = 1521
    service_name: str | None = None
    dsn: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    pool_min: int = 1
    pool_max: int = 4
    connect_timeout_seconds: float = 5.0
    connect_retries: int = 2
    call_timeout_ms: int = 30_000
    max_rows: int = 1_000
    driver_mode: str = "thin"

    @classmethod
    def from_settings(cls, settings: Any) -> "OracleConfig":
        return cls(
            host=settings.ORACLE_HOST or None,
            port=settings.ORACLE_PORT,
            service_name=settings.ORACLE_SERVICE_NAME or None,
            dsn=settings.ORACLE_DSN or None,
            username=settings.ORACLE_USERNAME or None,
            password=settings.ORACLE_PASSWORD or None,
            pool_min=settings.ORACLE_POOL_MIN,
            pool_max=settings.ORACLE_POOL_MAX,
            connect_timeout_seconds=settings.ORACLE_CONNECT_TIMEOUT_SECONDS,
            connect_retries=settings.ORACLE_CONNECT_RETRIES,
            call_timeout_ms=settings.ORACLE_CALL_TIMEOUT_MS,
            max_rows=settings.ORACLE_MAX_ROWS,
            driver_mode=settings.ORACLE_DRIVER_MODE,
        )

    def updated(self, **changes: Any) -> "OracleConfig":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def missing(self) -> list[str]:
        missing = []
        if not self.dsn:
            if not self.host:
                missing.append("ORACLE_HOST (ou ORACLE_DSN)")
            if not self.service_name:
                missing.append("ORACLE_SERVICE_NAME (ou ORACLE_DSN)")
        if not self.username:
            missing.append("ORACLE_USERNAME")
        if not self.password:
            missing.append("ORACLE_PASSWORD")
        return missing

    @property
    def configured(self) -> bool:
        return not self.missing()

    def hosts(self) -> set[str]:
        if self.dsn:
            return dsn_hosts(self.dsn)
        return {self.host.lower()} if self.host else set()

    @property
    def connect_string(self) -> str | None:
        if self.dsn:
            return self.dsn
        if self.host and self.service_name:
            return f"{self.host}:{self.port}/{self.service_name}"
        return None

    @property
    def acquire_bound_seconds(self) -> float:
        """The longest time spent getting a connection: every attempt plus the waits between."""
        attempts = self.connect_retries + 1
        return attempts * self.connect_timeout_seconds + self.connect_retries * 1.0

    def public(self) -> dict[str, Any]:
        """The configuration without the password."""
        data = asdict(self)
        data.pop("password")
        data["password_set"] = bool(self.password)
        data["configured"] = self.configured
        data["missing"] = self.missing()
        data["connect_string"] = self.connect_string
        return data


# --------------------------------------------------------------------------- metrics


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class Metrics:
    started_at: float = field(default_factory=time.time)
    queries: Counter = field(default_factory=Counter)  # ok, refused, failed...
    errors: Counter = field(default_factory=Counter)  # by kind
    connect_attempts: int = 0
    connect_failures: int = 0
    rows_returned: int = 0
    sync_runs: int = 0
    sync_rows: int = 0
    streams: int = 0  # SSE clients connected now
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    def record_query(self, outcome: str, *, elapsed_ms: float | None = None, rows: int = 0) -> None:
        self.queries["total"] += 1
        self.queries[outcome] += 1
        if outcome != "ok":
            self.errors[outcome] += 1
        if elapsed_ms is not None:
            self.latencies_ms.append(elapsed_ms)
        self.rows_returned += rows

    def latency(self) -> dict[str, Any]:
        values = sorted(self.latencies_ms)
        figures = {f"p{q}": percentile(values, q) for q in (50, 90, 95, 99)}
        figures["max"] = values[-1] if values else None
        figures["count"] = len(values)
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}


# --------------------------------------------------------------------------- values


def to_json_value(value: Any) -> Any:
    """A fetched Oracle value as JSON: dates in ISO 8601, LOB/RAW bytes in base64, intervals in text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return _iso_duration(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, oracledb.IntervalYM):
        return f"P{value.years}Y{value.months}M"
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    return str(value)


def _iso_duration(delta: timedelta) -> str:
    sign = "-" if delta < timedelta(0) else ""
    delta = abs(delta)
    seconds = delta.seconds + delta.microseconds / 1e6
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}P{delta.days}DT{int(hours)}H{int(minutes)}M{secs:g}S"


# --------------------------------------------------------------------------- the service


PoolFactory = Callable[..., Any]


class OracleService:
    """One Oracle pool for the app's life, reconfigurable at run time."""

    def __init__(
        self,
        config: OracleConfig,
        *,
        pool_factory: PoolFactory | None = None,
        allowed_hosts: Sequence[str] = (),
    ) -> None:
        self.config = config
        # Run-time configuration may point at these hosts, and at those of the start-up configuration.
        self.allowed_hosts = {h.strip().lower() for h in allowed_hosts if h.strip()} | config.hosts()
        self.pool_factory = pool_factory or oracledb.create_pool_async
        self.metrics = Metrics()
        self.closing = asyncio.Event()
        self._pool: Any = None
        self._lock = asyncio.Lock()
        self._sync_lock = asyncio.Lock()
        self._waiting = 0
        self._retiring: set[asyncio.Task] = set()
        self._snapshot: tuple[float, dict] | None = None

    # ----------------------------------------------------------------- pool

    @property
    def configured(self) -> bool:
        return self.config.configured

    def _require_config(self) -> OracleConfig:
        missing = self.config.missing()
        if missing:
            raise OracleNotConfigured(missing)
        return self.config

    def _create_pool(self, config: OracleConfig) -> Any:
        if config.driver_mode.lower() != "thin":
            logger.warning(
                "oracle: ORACLE_DRIVER_MODE={} ignored, the async pool is thin only", config.driver_mode
            )
        return self.pool_factory(
            user=config.username,
            password=config.password,
            dsn=config.connect_string,
            min=config.pool_min,
            max=config.pool_max,
            increment=1,
            getmode=oracledb.POOL_GETMODE_TIMEDWAIT,
            wait_timeout=int(config.connect_timeout_seconds * 1000),
            tcp_connect_timeout=config.connect_timeout_seconds,
            retry_count=0,  # retries are ours, bounded, and visible in the metrics
            ping_interval=60,
            program="sio-audit",
        )

    async def start(self) -> Any:
        """Open the pool if it is not (its connections are made in the background)."""
        config = self._require_config()
        async with self._lock:
            if self._pool is None:
                self._pool = self._create_pool(config)
                logger.info(
                    "oracle: pool opened for {}@{} (min {}, max {})",
                    config.username,
                    config.connect_string,
                    config.pool_min,
                    config.pool_max,
                )
            return self._pool

    async def configure(self, config: OracleConfig, *, start: bool = False) -> None:
        """Replace the configuration; the old pool is closed once its queries end.

        Raises HostNotAllowed for a host outside the allow-list: an admin token must not be enough
        to make the server open connections to any host (or scan the network).
        """
        refused = sorted(h for h in config.hosts() if h not in self.allowed_hosts)
        if refused:
            raise HostNotAllowed(refused)
        async with self._lock:
            old, self._pool = self._pool, None
            self.config = config
        self._retire(old)
        logger.info("oracle: configuration changed ({}@{})", config.username, config.connect_string)
        if start and config.configured:
            await self.start()

    async def resize(self, *, pool_min: int, pool_max: int) -> None:
        """New pool bounds: a new pool takes over, the old one closes once its queries end."""
        await self.configure(self.config.updated(pool_min=pool_min, pool_max=pool_max), start=True)

    async def close_pool(self) -> None:
        async with self._lock:
            old, self._pool = self._pool, None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close(force=True)

    def _retire(self, pool: Any) -> None:
        if pool is None:
            return

        async def drain() -> None:
            deadline = time.monotonic() + self.config.call_timeout_ms / 1000 + 1
            # the pool offers no event for "idle": poll its busy count
            while getattr(pool, "busy", 0) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            with contextlib.suppress(Exception):
                await pool.close(force=True)

        task = asyncio.create_task(drain(), name="oracle-pool-retire")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def close(self) -> None:
        """Shutdown: ends the metric streams and closes every pool."""
        self.closing.set()
        await self.close_pool()
        for task in list(self._retiring):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=2)

    def pool_status(self) -> dict[str, Any]:
        pool, config = self._pool, self.config
        opened = busy = 0
        if pool is not None:
            with contextlib.suppress(Exception):
                opened, busy = int(pool.opened), int(pool.busy)
        return {
            "configured": config.configured,
            "missing": config.missing(),
            "pool_open": pool is not None,
            "open": opened,
            "busy": busy,
            "idle": max(opened - busy, 0),
            "min": config.pool_min,
            "max": config.pool_max,
            "waiting": self._waiting,
            "connect_string": config.connect_string,
            "username": config.username,
            "driver_mode": "thin",
        }

    # ----------------------------------------------------------------- connections

    async def _acquire(
        self, *, attempts: int | None = None, attempt_timeout: float | None = None
    ) -> tuple[Any, Any]:
        """(pool, connection): the connection goes back to the pool it came from."""
        config = self._require_config()
        pool = await self.start()
        attempts = attempts or config.connect_retries + 1
        timeout = attempt_timeout or config.connect_timeout_seconds
        started = time.monotonic()
        tries = 0

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            logger.warning("oracle: connection attempt {} failed ({}), retrying", state.attempt_number, exc)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts) | stop_after_delay(config.acquire_bound_seconds),
            wait=wait_exponential(multiplier=0.1, min=0.1, max=1.0),
            retry=retry_if_exception(_is_transient),
            before_sleep=log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    tries += 1
                    self.metrics.connect_attempts += 1
                    self._waiting += 1
                    try:
                        return pool, await asyncio.wait_for(pool.acquire(), timeout=timeout)
                    finally:
                        self._waiting -= 1
        except Exception as exc:
            self.metrics.connect_failures += 1
            elapsed = time.monotonic() - started
            reason = "délai dépassé" if isinstance(exc, TimeoutError) else _error_text(exc)
            raise OracleUnavailable(
                f"Oracle est injoignable ({config.connect_string}) après {tries} tentative(s) "
                f"en {elapsed:.1f} s : {reason}",
                attempts=tries,
                elapsed_s=elapsed,
            ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.asynccontextmanager
    async def session(self, *, keep: bool = True) -> AsyncIterator[Any]:
        """A pooled connection in a read-only transaction with the call timeout.

        It goes back to the pool after a rollback, or is dropped when it broke (or when `keep` is
        false, for a session whose settings were changed).
        """
        config = self._require_config()
        pool, conn = await self._acquire()
        healthy = False
        try:
            conn.call_timeout = config.call_timeout_ms
            cursor = conn.cursor()
            try:
                await cursor.execute("SET TRANSACTION READ ONLY")
            except oracledb.Error as exc:
                raise _map_execution_error(exc) from exc
            finally:
                cursor.close()
            try:
                yield conn
                healthy = True
            except OracleQueryFailed:
                healthy = True
                raise
        finally:
            await self._give_back(pool, conn, healthy=healthy and keep)

    async def _give_back(self, pool: Any, conn: Any, *, healthy: bool) -> None:
        try:
            if healthy:
                await conn.rollback()  # ends the read-only transaction
                await pool.release(conn)
                return
        except Exception as exc:
            logger.warning("oracle: connection could not be released ({}), dropping it", exc)
        with contextlib.suppress(Exception):
            await pool.drop(conn)

    async def test_connection(self) -> dict[str, Any]:
        """Acquire a connection (with the retries), ping, and describe the server."""
        started = time.perf_counter()
        async with self.session() as conn:
            await conn.ping()
            version = getattr(conn, "version", None)
        return {
            "ok": True,
            "connect_string": self.config.connect_string,
            "username": self.config.username,
            "server_version": version,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        }

    async def health(self) -> DependencyHealth:
        """For /api/health: one quick attempt, no retries."""
        missing = self.config.missing()
        if missing:
            return DependencyHealth(status="not_configured", detail="manquant : " + ", ".join(missing))
        started = time.perf_counter()
        try:
            pool, conn = await self._acquire(
                attempts=1, attempt_timeout=min(self.config.connect_timeout_seconds, 2.0)
            )
            try:
                await asyncio.wait_for(conn.ping(), timeout=2.0)
            finally:
                await self._give_back(pool, conn, healthy=True)
        except (OracleError, oracledb.Error, TimeoutError) as exc:
            return DependencyHealth(status="down", detail=str(exc)[:200], kind="oracle")
        latency = round((time.perf_counter() - started) * 1000, 2)
        return DependencyHealth(status="up", latency_ms=latency, kind="oracle")

    # ----------------------------------------------------------------- queries

    async def run_query(
        self,
        query: str,
        *,
        binds: dict[str, Any] | list[Any] | None = None,
        max_rows: int | None = None,
    ) -> dict[str, Any]:
        """Check `query` with the guard, then run it read-only.

        Raises sql_guard.QueryRefused before any connection is tried, then OracleNotConfigured,
        OracleUnavailable, OracleTimeout or OracleQueryFailed.
        """
        try:
            checked = await asyncio.to_thread(sql_guard.check_query, query)
            _check_binds(checked, binds)
        except sql_guard.QueryRefused:
            self.metrics.record_query("refused")
            raise
        try:
            result = await self.execute(checked.sql, binds=binds, max_rows=max_rows)
        except OracleNotConfigured:
            self.metrics.record_query("not_configured")
            raise
        except OracleUnavailable:
            self.metrics.record_query("unavailable")
            raise
        except OracleTimeout:
            self.metrics.record_query("timeout")
            raise
        except OracleQueryFailed:
            self.metrics.record_query("oracle_error")
            raise
        self.metrics.record_query("ok", elapsed_ms=result["elapsed_ms"], rows=result["row_count"])
        return result

    async def execute(
        self,
        sql: str,
        *,
        binds: dict[str, Any] | list[Any] | None = None,
        max_rows: int | None = None,
    ) -> dict[str, Any]:
        """Run one statement already checked by the guard; rows capped, fetched in batches."""
        config = self._require_config()
        cap = max(1, min(max_rows or config.max_rows, config.max_rows))
        batch = min(cap + 1, FETCH_BATCH)
        async with self.session() as conn:
            started = time.perf_counter()
            cursor = conn.cursor()
            cursor.arraysize = batch
            cursor.prefetchrows = batch
            try:
                await cursor.execute(sql, binds or None, fetch_lobs=False)
                columns = [str(d[0]) for d in cursor.description or ()]
                rows: list = []
                while len(rows) <= cap:  # one row past the cap tells it was truncated
                    chunk = await cursor.fetchmany(min(batch, cap + 1 - len(rows)))
                    if not chunk:
                        break
                    rows.extend(chunk)
            except oracledb.Error as exc:
                raise _map_execution_error(exc) from exc
            finally:
                cursor.close()
            elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        truncated = len(rows) > cap
        rows = rows[:cap]
        data = await asyncio.to_thread(lambda: [[to_json_value(v) for v in row] for row in rows])
        return {
            "columns": columns,
            "rows": data,
            "row_count": len(data),
            "truncated": truncated,
            "elapsed_ms": elapsed_ms,
        }

    # ----------------------------------------------------------------- metrics

    def metrics_snapshot(self, *, max_age: float = 0.0) -> dict[str, Any]:
        """Pool figures, query and error counts, latency percentiles; cached for `max_age` seconds."""
        now = time.monotonic()
        if self._snapshot and now - self._snapshot[0] < max_age:
            return self._snapshot[1]
        m = self.metrics
        snapshot = {
            "time": datetime.now(UTC).isoformat(),
            "uptime_s": round(time.time() - m.started_at, 1),
            "pool": self.pool_status(),
            "queries": dict(m.queries),
            "errors": dict(m.errors),
            "connections": {"attempts": m.connect_attempts, "failures": m.connect_failures},
            "rows_returned": m.rows_returned,
            "latency_ms": m.latency(),
            "sync": {"runs": m.sync_runs, "rows": m.sync_rows},
            "streams": m.streams,
        }
        self._snapshot = (now, snapshot)
        return snapshot

    # ----------------------------------------------------------------- audit trail sync

    async def sync_audit(
        self,
        store: Store,
        *,
        batch_size: int = 5000,
        limit: int | None = None,
        restart: bool = False,
        on_batch: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Copy UNIFIED_AUDIT_TRAIL rows from the last synced EVENT_TIMESTAMP into the audit store.

        Rows are read in batches through one cursor, normalised like an import (same ids, so a row
        read twice is stored once), and the watermark in `store.meta` advances after each batch:
        an interrupted run resumes where it stopped. Rows at the watermark's own timestamp are
        read again on the next run and counted as duplicates.
        """
        if self._sync_lock.locked():
            raise SyncInProgress("Une synchronisation est déjà en cours.")
        async with self._sync_lock:
            return await self._sync(
                store, batch_size=batch_size, limit=limit, restart=restart, on_batch=on_batch
            )

    async def _sync(self, store, *, batch_size, limit, restart, on_batch) -> dict[str, Any]:
        self._require_config()
        state = await store.meta.find_one({"_id": SYNC_META_ID}) or {}
        since = EPOCH if restart else _naive_utc(state.get("last_event_timestamp")) or EPOCH
        started = time.perf_counter()
        summary: dict[str, Any] = {
            "since": since.replace(tzinfo=UTC).isoformat(),
            "rows_read": 0,
            "inserted": 0,
            "duplicates": 0,
            "errors": 0,
            "error_samples": [],
            "batches": 0,
            "last_event_timestamp": state.get("last_event_timestamp"),
            "complete": True,
        }
        watermark: datetime | None = None
        self.metrics.sync_runs += 1
        # The session's time zone is set to UTC so EVENT_TIMESTAMP comes (and compares) in UTC:
        # the connection is dropped afterwards rather than handed to the console with it.
        async with self.session(keep=False) as conn:
            cursor = conn.cursor()
            try:
                await cursor.execute("ALTER SESSION SET TIME_ZONE = 'UTC'")
                cursor.arraysize = batch_size
                cursor.prefetchrows = batch_size
                await cursor.execute(SYNC_SQL, {"since": since}, fetch_lobs=False)
                names = [str(d[0]).lower() for d in cursor.description or ()]
                ts_index = names.index("event_timestamp")
                names[ts_index] = "event_timestamp_utc"  # read as UTC by the normalisation
                while True:
                    size = batch_size if limit is None else min(batch_size, limit - summary["rows_read"])
                    if size <= 0:
                        summary["complete"] = False
                        break
                    rows = await cursor.fetchmany(size)
                    if not rows:
                        break
                    offset = summary["rows_read"]
                    docs = [dict(zip(names, row, strict=True)) for row in rows]
                    result = await import_rows(
                        store, enumerate(docs, start=offset + 1), tz=UTC, batch_size=len(docs)
                    )
                    stamps = [r[ts_index] for r in rows if isinstance(r[ts_index], datetime)]
                    if stamps:
                        # floor to the millisecond the store keeps: the next run reads from there again
                        top = max(_naive_utc(s) for s in stamps)
                        top = top.replace(microsecond=top.microsecond // 1000 * 1000)
                        watermark = max(watermark, top) if watermark else top
                    summary["rows_read"] += len(rows)
                    summary["inserted"] += result.inserted
                    summary["duplicates"] += result.duplicates
                    summary["errors"] += len(result.errors)
                    room = 20 - len(summary["error_samples"])
                    summary["error_samples"] += [e.model_dump() for e in result.errors[: max(room, 0)]]
                    summary["batches"] += 1
                    self.metrics.sync_rows += len(rows)
                    if watermark is not None:
                        await self._save_watermark(store, watermark, summary)
                    if on_batch:
                        on_batch(summary)
            except oracledb.Error as exc:
                raise _map_execution_error(exc) from exc
            finally:
                cursor.close()
        summary["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 2)
        if isinstance(summary["last_event_timestamp"], datetime):
            summary["last_event_timestamp"] = summary["last_event_timestamp"].isoformat()
        return summary

    async def _save_watermark(self, store: Store, watermark: datetime, summary: dict) -> None:
        stamp = watermark.replace(tzinfo=UTC)
        await store.meta.update_one(
            {"_id": SYNC_META_ID},
            {"$set": {"last_event_timestamp": stamp, "updated_at": datetime.now(UTC)}},
            upsert=True,
        )
        summary["last_event_timestamp"] = stamp

    async def sync_state(self, store: Store) -> dict[str, Any]:
        state = await store.meta.find_one({"_id": SYNC_META_ID}) or {}
        stamp = state.get("last_event_timestamp")
        return {
            "last_event_timestamp": stamp.isoformat() if isinstance(stamp, datetime) else None,
            "updated_at": state["updated_at"].isoformat() if state.get("updated_at") else None,
            "running": self._sync_lock.locked(),
        }


def _naive_utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _names(names: Sequence[str]) -> str:
    return ", ".join(":" + n for n in names)


def _check_binds(checked: sql_guard.CheckedQuery, binds: dict[str, Any] | list[Any] | None) -> None:
    """Named binds must match the placeholders; positional ones are left to Oracle."""
    if isinstance(binds, dict):
        given = {str(k).lstrip(":").upper() for k in binds}
        wanted = {n.upper() for n in checked.bind_names}
        missing, extra = sorted(wanted - given), sorted(given - wanted)
        if missing:
            raise sql_guard.QueryRefused(
                "Variable(s) de liaison sans valeur : " + ", ".join(":" + n for n in missing)
            )
        if extra:
            raise sql_guard.QueryRefused(
                "Variable(s) de liaison inconnue(s) : " + ", ".join(":" + n for n in extra)
            )
    elif not binds and checked.bind_names:
        raise sql_guard.QueryRefused(
            "Variable(s) de liaison sans valeur : " + ", ".join(":" + n for n in checked.bind_names)
        )


def _map_execution_error(exc: oracledb.Error) -> OracleError:
    code = _error_code(exc)
    text = _error_text(exc)
    if code in TIMEOUT_CODES or "call timeout" in text.lower():
        return OracleTimeout(f"La requête a dépassé le délai autorisé : {text}")
    if code in SESSION_LOST_CODES or isinstance(exc, oracledb.OperationalError):
        return OracleUnavailable(f"La connexion à Oracle a été perdue : {text}")
    return OracleQueryFailed(f"Oracle a rejeté la requête : {text}", code=code or None)
