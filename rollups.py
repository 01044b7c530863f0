"""Rollups of the audit trail, maintained as events arrive, and one document per session.

Why: an all-time question read from the events costs ~20 µs per event on the embedded store, so it
grows with the trail (22 s at 1M events). A rollup holds one document per (time bucket, values of a
few dimensions, return code) with its event count `n`: a few thousand documents per dimension.

Shape of a rollup document (collection `<audit>_rollups`):
    {_id, g: "d" | "h", r: <set name>, t: <bucket start, UTC date>, off: <bool, day grain only>,
     return_code, <the set's dimensions...>, n, dml: <DML_COUNTED sets only>}
- grain "d": the local day (APP_TIMEZONE) starting at `t`, split by `off` (outside business hours or
  at the weekend, as `analytics.off_hours_expr` says): every set of DAY_SETS.
- grain "h": the UTC hour starting at `t`, for hours of the day, hour filters and periods that do not
  fall on local midnights: the sets of HOUR_SETS.
Several documents may share one key (the incremental path writes a string `_id`, the rebuild
writes the group key): readers always `$sum` the `n` of a key, so this never changes a figure.
The incremental path inserts the documents of the keys a batch creates and upserts (`$inc`) only
the keys that already exist (see `_insert_or_add`): on SecantusDB an insert costs about an eighth
of an upsert (~1,800 rollup documents for a 2,000-event batch: 0.05-0.15 s inserted, 0.5-0.9 s
upserted, measured on the shared 2-core machine).

Sessions (collection `<audit>_sessions`): `_id` = session_id, with dbusername, userhost,
client_program_name, os_username (from the first batch that held the session), start, end, dur
(end - start in milliseconds, indexed: the longest sessions are read from the top of it), events,
failures, actions (the set of action names), logon (a successful LOGON was seen), logoff.

Consistency: `ingest._insert` counts the documents the store actually inserted (never the
duplicates it refused with code 11000), so a re-imported event is never counted twice. One import
sums the counts of its batches in an `Accumulator` and writes them every FLUSH_EVENTS imported events
(in the background, while the next batches are inserted) and at its end, adding their number to
`meta.rollups:<audit>.events`. Before inserting a batch it takes a lease (`begin`):
`meta.rollups:<audit>.inflight.<id> = {n, until}`, the batch's size and an expiry; the update that
adds the batch's events to `events` removes it, and a failed import ends its leases. Readers trust
the rollups (`usable`) when the collection holds at least the events they count and at most that plus
the unexpired leases: the rollups then never count an event the collection does not hold (so never
one twice) and lag by at most the events not yet written. A write that bypassed the import path
(another writer, a deleted event, a crash before the counts were written, once its leases have
expired) makes them fall back to the events until `rebuild` recomputes the rollups.
"""

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from loguru import logger
from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.errors import BulkWriteError

from config import settings

# A rollup set: its name and the dimensions it holds (besides the time bucket and return_code).
DAY_SETS: dict[str, tuple[str, ...]] = {
    "all": (),
    "dbusername": ("dbusername",),
    "os_username": ("os_username",),
    "userhost": ("userhost",),
    "terminal": ("terminal",),
    "client_program_name": ("client_program_name",),
    "action_name": ("action_name",),
    "object_schema": ("object_schema",),
    "object_name": ("object_schema", "object_name"),
    "authentication_type": ("authentication_type",),
    "unified_audit_policies": ("unified_audit_policies",),
    "system_privilege_used": ("system_privilege_used",),
    "user_action": ("dbusername", "action_name"),
    "user_host": ("dbusername", "userhost"),
    "user_program": ("dbusername", "client_program_name"),
    "user_schema": ("dbusername", "object_schema"),
    "action_schema": ("action_name", "object_schema"),
}
HOUR_SETS: dict[str, tuple[str, ...]] = {
    "all": (),
    "dbusername": ("dbusername",),
    "action_name": ("action_name",),
    # The anomaly detectors' hourly baseline (`anomaly_queries._summary`): about as many documents as
    # `dbusername` (a user works from few hosts and programs), with the DML statements counted.
    "user_host_program": ("dbusername", "userhost", "client_program_name"),
}
GRAINS: dict[str, dict[str, tuple[str, ...]]] = {"d": DAY_SETS, "h": HOUR_SETS}
DML_ACTIONS = ("INSERT", "UPDATE", "DELETE", "MERGE")
# Sets whose documents also hold `dml`, how many of their `n` events are DML_ACTIONS.
DML_COUNTED: frozenset[tuple[str, str]] = frozenset({("h", "user_host_program")})
# Every field a rollup document may hold, which a query on rollups may filter or group on.
ROLLUP_FIELDS: frozenset[str] = frozenset(
    {"return_code", *(d for sets in GRAINS.values() for dims in sets.values() for d in dims)}
)
SESSION_FIELDS: tuple[str, ...] = ("dbusername", "userhost", "client_program_name", "os_username")
# What a session document holds besides SESSION_FIELDS (in the layout: a change rebuilds them).
SESSION_COUNTS: tuple[str, ...] = ("start", "end", "dur", "events", "failures", "logon", "logoff", "actions")
TS = "$event_timestamp"
HOUR_MS = 3_600_000
_DUR = {"$subtract": ["$end", "$start"]}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rollups_name(audit_name: str) -> str:
    return f"{audit_name}_rollups"


def sessions_name(audit_name: str) -> str:
    return f"{audit_name}_sessions"


def _meta_id(audit_name: str) -> str:
    return f"rollups:{audit_name}"


def _layout() -> str:
    """The sets and what they count, as kept in the meta document: rollups built with other sets (a
    store from before a set was added) are not trusted, and are rebuilt at start-up."""
    sets = [
        [g, name, list(dims), (g, name) in DML_COUNTED]
        for g, sets in GRAINS.items()
        for name, dims in sets.items()
    ]
    return _key([*sorted(sets), list(DML_ACTIONS), list(SESSION_COUNTS)])


# --------------------------------------------------------------------------- buckets


def _tz() -> ZoneInfo:
    return settings.tz


def whole_hour_zone(tz: ZoneInfo | None = None) -> bool:
    """Whether the zone's offsets are whole hours (then a UTC hour is one local hour of the day)."""
    zone = tz or _tz()
    year = datetime.now(UTC).year
    for month in (1, 4, 7, 10):
        offset = datetime(year, month, 15, tzinfo=UTC).astimezone(zone).utcoffset() or timedelta()
        if offset.total_seconds() % 3600:
            return False
    return True


def day_start(ts: datetime, tz: ZoneInfo | None = None) -> datetime:
    """The UTC instant of the local midnight that starts the day of `ts`."""
    zone = tz or _tz()
    local = ts.astimezone(zone)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone)
    return midnight.astimezone(UTC)


def hour_start(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def is_off_hours(ts: datetime, tz: ZoneInfo | None = None) -> bool:
    """Outside business hours or at the weekend (the same rule as analytics.off_hours_expr)."""
    local = ts.astimezone(tz or _tz())
    return (
        local.hour < settings.BUSINESS_HOURS_START
        or local.hour >= settings.BUSINESS_HOURS_END
        or local.isoweekday() >= 6
    )


# --------------------------------------------------------------------------- incremental path


def _key(parts: Iterable[Any]) -> str:
    return json.dumps(list(parts), default=str, ensure_ascii=False, separators=(",", ":"))


@dataclass
class _Delta:
    """What a batch of inserted events adds: rollup counts and session summaries."""

    rollups: Counter = field(default_factory=Counter)  # key tuple -> count
    dml: Counter = field(default_factory=Counter)  # key tuple of a DML_COUNTED set -> DML count
    sessions: dict[Any, dict[str, Any]] = field(default_factory=dict)


def _delta(docs: list[dict[str, Any]], tz: ZoneInfo) -> _Delta:
    delta = _Delta()
    for doc in docs:
        ts = doc.get("event_timestamp")
        if not isinstance(ts, datetime):
            continue
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        rc = doc.get("return_code")
        day, hour, off = day_start(ts, tz), hour_start(ts), is_off_hours(ts, tz)
        for name, dims in DAY_SETS.items():
            delta.rollups[("d", name, day, off, rc, *(doc.get(d) for d in dims))] += 1
        action = doc.get("action_name")
        for name, dims in HOUR_SETS.items():
            key = ("h", name, hour, None, rc, *(doc.get(d) for d in dims))
            delta.rollups[key] += 1
            if ("h", name) in DML_COUNTED and action in DML_ACTIONS:
                delta.dml[key] += 1
        sid = doc.get("session_id")
        if sid is None:
            continue
        s = delta.sessions.get(sid)
        failed = rc not in (0, None)
        if s is None:
            s = delta.sessions[sid] = {
                "start": ts,
                "end": ts,
                "events": 0,
                "failures": 0,
                "actions": set(),
                "logon": False,
                "logoff": False,
                **{f: doc.get(f) for f in SESSION_FIELDS},
            }
        s["start"], s["end"] = min(s["start"], ts), max(s["end"], ts)
        s["events"] += 1
        s["failures"] += int(failed)
        if isinstance(action, str):
            s["actions"].add(action)
        s["logon"] = s["logon"] or (action == "LOGON" and rc == 0)
        s["logoff"] = s["logoff"] or action == "LOGOFF"
    return delta


# A (new document, increment) pair per key: the document is inserted when the key is new, the
# increment (an upsert) applied when the insert finds the key already there.
Write = tuple[dict[str, Any], UpdateOne]


def _rollup_writes(delta: _Delta) -> list[Write]:
    writes: list[Write] = []
    for key, n in delta.rollups.items():
        grain, name, t, off, rc, *values = key
        dims = GRAINS[grain][name]
        fields: dict[str, Any] = {"g": grain, "r": name, "t": t, "return_code": rc}
        if grain == "d":
            fields["off"] = off
        fields.update(zip(dims, values, strict=True))
        ident = _key([grain, name, t.isoformat(), off, rc, *values])
        counts = {"n": n, "dml": delta.dml[key]} if (grain, name) in DML_COUNTED else {"n": n}
        inc = UpdateOne({"_id": ident}, {"$inc": counts, "$setOnInsert": fields}, upsert=True)
        writes.append(({"_id": ident, **fields, **counts}, inc))
    return writes


def _session_writes(delta: _Delta) -> list[Write]:
    writes: list[Write] = []
    for sid, s in delta.sessions.items():
        fields = {f: s[f] for f in SESSION_FIELDS}
        update: dict[str, Any] = {
            "$min": {"start": s["start"]},
            "$max": {"end": s["end"], "logon": s["logon"], "logoff": s["logoff"]},
            "$inc": {"events": s["events"], "failures": s["failures"]},
            "$setOnInsert": fields,
        }
        doc: dict[str, Any] = {"_id": sid, **fields, "start": s["start"], "end": s["end"]}
        doc["dur"] = _ms(s["end"]) - _ms(s["start"])
        doc.update(events=s["events"], failures=s["failures"], logon=s["logon"], logoff=s["logoff"])
        if s["actions"]:
            update["$addToSet"] = {"actions": {"$each": sorted(s["actions"])}}
            doc["actions"] = sorted(s["actions"])
        writes.append((doc, UpdateOne({"_id": sid}, update, upsert=True)))
    return writes


def _ms(ts: datetime) -> int:
    """Milliseconds since the epoch, as the store keeps a date (truncated)."""
    return (ts - EPOCH) // timedelta(milliseconds=1)


async def _insert_or_add(collection: Any, writes: list[Write]) -> list[Any]:
    """Insert the documents of new keys; add the increments of the keys that exist (code 11000).

    Why not upsert every key: on SecantusDB an upsert costs ~0.4 ms, an insert ~0.05 ms, and in a
    trail imported in time order most keys of a batch are new (its hours, its sessions). The insert
    is the atomic "create if absent": a key a concurrent import created meanwhile is refused, then
    incremented, so each count is added exactly once either way.
    """
    if not writes:
        return []
    try:
        await collection.insert_many([doc for doc, _ in writes], ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            raise
        await collection.bulk_write([writes[e["index"]][1] for e in errors], ordered=False)
        return [writes[e["index"]][0]["_id"] for e in errors]
    return []


async def _add_sessions(collection: Any, writes: list[Write]) -> None:
    """`_insert_or_add` for sessions, then the duration of those that grew. Each writer sets it after
    its own update, from the document as it then is: the last writer's sets the final one."""
    if grown := await _insert_or_add(collection, writes):
        await collection.update_many({"_id": {"$in": grown}}, [{"$set": {"dur": _DUR}}])


# How long a batch may stay in flight (inserted, its rollups not yet written) before readers stop
# counting on it: a crashed import's lease expires, and the rollups are distrusted from then on.
LEASE_SECONDS = 300.0


async def begin(store: Any, events: int, *, seconds: float = LEASE_SECONDS) -> str:
    """Declare a batch of `events` about to be inserted (before its insert); returns its lease id."""
    lease = uuid.uuid4().hex
    until = datetime.now(UTC) + timedelta(seconds=seconds)
    await store.meta.update_one(
        {"_id": _meta_id(store.audit_name)},
        {"$set": {f"inflight.{lease}": {"n": events, "until": until}}, "$setOnInsert": {"layout": _layout()}},
        upsert=True,
    )
    return lease


async def release(store: Any, lease: str) -> None:
    """End a batch's lease without counting its events (its insert or its rollups failed)."""
    await store.meta.update_one(
        {"_id": _meta_id(store.audit_name)},
        _dropping_trust({"$unset": {f"inflight.{lease}": ""}}),
    )


def count(docs: list[dict[str, Any]]) -> _Delta:
    """What a batch of events adds to the rollups and sessions (CPU only: run it in a thread)."""
    return _delta(docs, _tz())


async def _write(store: Any, delta: _Delta, events: int, leases: Iterable[str]) -> None:
    """Write a delta of `events` inserted events, then count them and end their leases in one update."""
    if events:
        rollup_writes, session_writes = await asyncio.to_thread(
            lambda: (_rollup_writes(delta), _session_writes(delta))
        )
        done = await asyncio.gather(
            _insert_or_add(store[rollups_name(store.audit_name)], rollup_writes),
            _add_sessions(store[sessions_name(store.audit_name)], session_writes),
            return_exceptions=True,  # both writes over before a failure is reported
        )
        if failed := next((e for e in done if isinstance(e, BaseException)), None):
            raise failed
    update: dict[str, Any] = {"$inc": {"events": events}, "$setOnInsert": {"layout": _layout()}}
    if unset := {f"inflight.{lease}": "" for lease in leases}:
        update["$unset"] = unset
    # A true verdict stays true (these events were inserted and are now counted); a false one is
    # recounted by `watch`.
    await store.meta.update_one({"_id": _meta_id(store.audit_name)}, update, upsert=True)


async def apply(store: Any, docs: list[dict[str, Any]], lease: str | None = None) -> None:
    """Add events the store has just inserted (only those) to the rollups and sessions, then count
    them and end the batch's lease in one update."""
    if not docs:
        if lease is not None:
            await release(store, lease)
        return
    delta = await asyncio.to_thread(_delta, docs, _tz())
    await _write(store, delta, len(docs), [lease] if lease is not None else [])


# Events imported (inserted, or refused as duplicates) before their counts are written: over 20,000
# events instead of one batch of 2,000, a 200k import upserts ~4k existing keys instead of ~39k (an
# upsert costs ~8 inserts on SecantusDB), and a session or an hour that spans batches is written once.
FLUSH_EVENTS = 20_000


class Accumulator:
    """The rollups of one import: each batch's counts are summed in memory, and written every
    FLUSH_EVENTS imported events (in the background, while the next batches are inserted) and at
    the end.

    Every event not yet written stays covered by the lease of its batch (taken before its insert by
    `begin`), and the update that counts the written events ends their leases: readers trust the
    rollups meanwhile, lagging by at most the leases. A crash loses the sums but not the leases,
    which expire: the rollups are then distrusted (never wrong) until `rebuild`. The sums are also
    written after a batch once the oldest lease is past a third of LEASE_SECONDS.
    """

    def __init__(self, store: Any, flush_events: int | None = None) -> None:
        self.store = store
        self.flush_events = FLUSH_EVENTS if flush_events is None else flush_events
        self._delta = _Delta()
        self._events = 0  # inserted events in `_delta`
        self._leases: list[str] = []  # the leases of every batch not yet written
        self._leased = 0  # the events they cover (duplicates the store refused included)
        self._oldest: float | None = None  # when the oldest of them was taken (monotonic)
        self._writing: asyncio.Task | None = None
        self._unmatched = 0  # batches begun whose insert never reported (it failed partway, perhaps)

    async def __aenter__(self) -> "Accumulator":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def begin(self, events: int) -> str:
        """Take the lease of a batch of `events` about to be inserted."""
        lease = await begin(self.store, events)
        self._unmatched += 1
        self._leases.append(lease)
        self._leased += events
        if self._oldest is None:
            self._oldest = time.monotonic()
        return lease

    async def add(self, delta: _Delta, events: int) -> None:
        """Add what a batch inserted (`count` of exactly the documents the store took)."""
        _merge(self._delta, delta)
        self._unmatched -= 1
        self._events += events
        due = self._oldest is not None and time.monotonic() - self._oldest > LEASE_SECONDS / 3
        if self._leased >= self.flush_events or due:  # a re-import of duplicates too ends its leases
            await self._flush(wait=False)

    async def _flush(self, *, wait: bool) -> None:
        await self._settle()
        delta, events, leases = self._delta, self._events, self._leases
        self._delta, self._events, self._leases, self._leased, self._oldest = _Delta(), 0, [], 0, None
        if events or leases:
            self._writing = asyncio.create_task(self._write(delta, events, leases))
        if wait:
            await self._settle()

    async def _write(self, delta: _Delta, events: int, leases: list[str]) -> None:
        try:
            await _write(self.store, delta, events, leases)
        except BaseException:
            # Part of the delta may be written and none of it counted: end the leases, so the
            # collection holds more than the rollups count and readers fall back to the events.
            await self.store.meta.update_one(
                {"_id": _meta_id(self.store.audit_name)},
                _dropping_trust({"$unset": {f"inflight.{lease}": "" for lease in leases}}),
            )
            raise

    async def _settle(self) -> None:
        task, self._writing = self._writing, None
        if task is not None:
            await task

    async def close(self) -> None:
        """Write what is summed and end every lease (a batch that failed included: its events, if
        some were inserted, are then beyond the leases and the rollups distrusted)."""
        try:
            await self._settle()
        finally:
            await self._flush(wait=True)
            if self._unmatched:  # some of those events may be in the collection, never to be counted
                await forget(self.store)


def _merge(into: _Delta, other: _Delta) -> None:
    into.rollups.update(other.rollups)
    into.dml.update(other.dml)
    for sid, s in other.sessions.items():
        t = into.sessions.get(sid)
        if t is None:
            into.sessions[sid] = s
            continue
        t["start"], t["end"] = min(t["start"], s["start"]), max(t["end"], s["end"])
        t["events"] += s["events"]
        t["failures"] += s["failures"]
        t["actions"] |= s["actions"]
        t["logon"] = t["logon"] or s["logon"]
        t["logoff"] = t["logoff"] or s["logoff"]


# --------------------------------------------------------------------------- readers


async def ensure_indexes(store: Any) -> None:
    rollups = store[rollups_name(store.audit_name)]
    await rollups.create_index([("g", ASCENDING), ("r", ASCENDING), ("t", ASCENDING)])
    sessions = store[sessions_name(store.audit_name)]
    await sessions.create_index([("start", ASCENDING)])
    await sessions.create_index([("end", ASCENDING)])  # the sessions that cross a period's bound
    await sessions.create_index([("dur", DESCENDING)])  # the longest sessions


async def held_if_trusted(store: Any) -> int | None:
    """How many events the rollups hold, when a fresh verdict says that is the collection's count
    (leased batches aside); None otherwise. Never counts."""
    if not await _stored(store) or (held := await _held(store)) is None:
        return None
    return held[0] + held[1]  # counted plus leased: at least what the collection holds


async def counted(store: Any) -> int | None:
    """How many events the rollups hold (None: never built for this collection)."""
    held = await _held(store)
    return None if held is None else held[0]


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _leases(doc: dict[str, Any], now: datetime) -> tuple[int, datetime | None]:
    """(events of the unexpired leases, the earliest of their expiries)."""
    leases = doc.get("inflight") or {}
    flying, first = 0, None
    for lease in leases.values() if isinstance(leases, dict) else []:
        if isinstance(lease, dict) and (until := _utc(lease.get("until"))) is not None and until > now:
            flying += int(lease.get("n") or 0)
            first = until if first is None else min(first, until)
    return flying, first


def _trusted_layout(doc: dict[str, Any] | None) -> bool:
    return doc is not None and not doc.get("building") and doc.get("layout") == _layout()


async def _held(store: Any) -> tuple[int, int] | None:
    """(events the rollups hold, events of the leased batches); None: never built, building, or built
    with other sets (`_layout`)."""
    doc = await store.meta.find_one({"_id": _meta_id(store.audit_name)})
    if doc is None or not _trusted_layout(doc):
        return None
    return int(doc.get("events", 0)), _leases(doc, datetime.now(UTC))[0]


# The trust verdict: whether the collection holds the rollups' events plus at most the leased
# batches. Counting the collection walks it on SecantusDB while holding the whole store (~0.3 s at
# 20k events, ~5.8 s at 1M: every question waits meanwhile), so the count is kept off the request
# path: the verdict is kept in the meta document, shared by every worker, and recounted in the
# background (`watch`) when it is `_refresh_after` old, at most every TRUST_REFRESH seconds and
# seldomer as the count grows, so that it holds the store about 1/TRUST_COST_SHARE of the time.
# Readers use a verdict up to twice that old, taken at the current audit version. An import through
# `ingest` keeps a true verdict true (it counts exactly the events it inserted) and carries it to the
# version it bumps (`carry`); a writer that bumps the version without counting is noticed at once,
# and one that does not bump it at the next recount. A verdict that counted on a lease is not used
# past that lease's expiry, and every path that may leave events uncounted (`release`, a failed
# write, `rebuild`, `reset`) drops it (`forget`).
TRUST_REFRESH = 30.0
TRUST_COST_SHARE = 50.0
TRUST_CLAIM_SECONDS = 300.0  # one worker recounts at a time; a claim outlives a crashed one by this


async def check_trust(store: Any) -> bool:
    """Count the collection against the rollups, and store the verdict for every reader.

    The meta document is read before and after the count: an event counted by the rollups before the
    count began must be in it (lower bound), and every event in it was either counted or leased by
    the end of the count (upper bound). A verdict is stored only if nobody dropped the previous one
    meanwhile (`trust_epoch`), so a stale true verdict never replaces a `forget`.
    """
    meta_id = _meta_id(store.audit_name)
    at = datetime.now(UTC)
    version = await _version(store)
    before = await store.meta.find_one({"_id": meta_id})
    if before is None or not _trusted_layout(before):
        return False
    started = time.monotonic()
    total = await store.audit.estimated_document_count()
    took = time.monotonic() - started
    after = await store.meta.find_one({"_id": meta_id})
    if after is None or not _trusted_layout(after):
        return False
    flying, first_expiry = _leases(after, datetime.now(UTC))
    ok = int(before.get("events", 0)) <= total <= int(after.get("events", 0)) + flying
    verdict = {"ok": ok, "at": at, "until": first_expiry if ok else None, "version": version, "took": took}
    await store.meta.update_one(
        {"_id": meta_id, "trust_epoch": before.get("trust_epoch")},
        {"$set": {"trust": verdict}},
    )
    return ok


async def _version(store: Any) -> int:
    """The audit version as stored now (not the per-process copy, which lags another worker's)."""
    doc = await store.meta.find_one({"_id": "audit"})
    return int(doc.get("version") or 0) if doc else 0


def _refresh_after(trust: dict[str, Any]) -> float:
    """Seconds after which `watch` recounts a verdict: TRUST_COST_SHARE times what its count took."""
    took = trust.get("took")
    return max(TRUST_REFRESH, TRUST_COST_SHARE * float(took if isinstance(took, int | float) else 0.0))


def _fresh(doc: dict[str, Any], now: datetime, version: int, *, reader: bool = True) -> bool | None:
    """The stored verdict if a reader (or, with reader=False, the watcher) may still use it at this
    audit version, else None."""
    trust = doc.get("trust")
    if not isinstance(trust, dict) or (at := _utc(trust.get("at"))) is None:
        return None
    if trust.get("version") != version:
        return None
    max_age = _refresh_after(trust) * (2 if reader else 1)
    if not -TRUST_REFRESH < (now - at).total_seconds() < max_age:  # a clock a little behind is fine
        return None
    until = _utc(trust.get("until"))
    if until is not None and now >= until:
        return None
    return bool(trust.get("ok"))


async def usable(store: Any) -> bool:
    """Whether the rollups hold the events of the collection, but for the leased batches (not yet written).

    One read of the meta document: the verdict `watch` keeps fresh; counted here only when there is
    none (the first question after a start-up, a rebuild or a failed import, or no watcher running).
    """
    return whole_hour_zone() and await _verdict(store)


async def _verdict(store: Any) -> bool:
    """The stored verdict if fresh, else a count's."""
    if (verdict := await _stored(store)) is not None:
        return verdict
    # One count at a time in this process: the others wait for it and read its verdict (each count
    # holds the whole store on SecantusDB).
    async with _count_lock(store):
        verdict = await _stored(store)
        return verdict if verdict is not None else await check_trust(store)


async def _stored(store: Any) -> bool | None:
    """The stored verdict a reader may use (False for rollups being built or of another layout);
    None when there is none."""
    doc = await store.meta.find_one({"_id": _meta_id(store.audit_name)})
    if doc is None or not _trusted_layout(doc):
        return False
    return _fresh(doc, datetime.now(UTC), await _version(store))


_counting: dict[tuple[str, str], asyncio.Lock] = {}


def _count_lock(store: Any) -> asyncio.Lock:
    """One count of a collection at a time in this process (the readers', the watcher's, start-up's)."""
    return _counting.setdefault((store.db_name, store.audit_name), asyncio.Lock())


async def carry(store: Any, version: int) -> None:
    """An import that counted every event it inserted bumped the audit version to `version`: a true
    verdict taken just before stays true."""
    await store.meta.update_one(
        {"_id": _meta_id(store.audit_name), "trust.version": version - 1, "trust.ok": True},
        {"$set": {"trust.version": version}},
    )


async def forget(store: Any) -> None:
    """Drop the stored verdict: the next reader counts (after a rebuild, a reset, or events left
    uncounted)."""
    await store.meta.update_one({"_id": _meta_id(store.audit_name)}, _dropping_trust({}))


def _dropping_trust(update: dict[str, Any]) -> dict[str, Any]:
    """`update` that also drops the verdict, and makes a recount that started before it store nothing."""
    return {**update, "$unset": {**update.get("$unset", {}), "trust": ""}, "$inc": {"trust_epoch": 1}}


async def _claim(store: Any) -> datetime | None:
    """Take the recount for this worker if the verdict is due and no other worker holds it: the claim."""
    now = datetime.now(UTC)
    doc = await store.meta.find_one({"_id": _meta_id(store.audit_name)})
    if doc is None or not _trusted_layout(doc):
        return None
    if _fresh(doc, now, await _version(store), reader=False) is not None:
        return None
    claim = _utc(doc.get("trust_claim"))
    if claim is not None and claim > now:
        return None
    mine = now + timedelta(seconds=TRUST_CLAIM_SECONDS)
    taken = await store.meta.update_one(
        {"_id": doc["_id"], "trust_claim": doc.get("trust_claim")}, {"$set": {"trust_claim": mine}}
    )
    return mine if taken.modified_count == 1 else None


async def watch(store: Any, every: float = TRUST_REFRESH / 3) -> None:
    """Keep the trust verdict fresh, so that no question waits on the count (runs for the app's life)."""
    while True:
        try:
            if whole_hour_zone() and (mine := await _claim(store)) is not None:
                try:
                    async with _count_lock(store):  # start-up's count may have just stored one
                        doc = await store.meta.find_one({"_id": _meta_id(store.audit_name)})
                        now, version = datetime.now(UTC), await _version(store)
                        if doc is None or _fresh(doc, now, version, reader=False) is None:
                            await check_trust(store)
                finally:  # ours only: another worker may hold a newer claim
                    await store.meta.update_one(
                        {"_id": _meta_id(store.audit_name), "trust_claim": mine},
                        {"$unset": {"trust_claim": ""}},
                    )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store may be down for a while: the next round tries again
            logger.warning("rollups trust check failed: {}", exc)
        await asyncio.sleep(every)


async def known_values(store: Any, fields: Iterable[str]) -> dict[str, list[Any]] | None:
    """Distinct values of each field, read from the day rollups (None if they cannot be trusted)."""
    if not await usable(store):
        return None
    rollups = store[rollups_name(store.audit_name)]

    async def one(f: str) -> tuple[str, list[Any]]:
        name = next((n for n, dims in DAY_SETS.items() if f in dims), None)
        if name is None:
            return f, []
        return f, [v for v in await rollups.distinct(f, {"g": "d", "r": name}) if isinstance(v, str) and v]

    return dict(await asyncio.gather(*(one(f) for f in fields)))


async def span(store: Any) -> tuple[datetime, datetime] | None:
    """The first and the last hour the rollups hold events in, as (start, end); a hint only.

    The rollups may lag the events or miss another writer's: callers must stay correct when an
    event lies outside (search uses it to place its first window, never to exclude an event).
    Read from the day set, then from the hour set within the first and the last day (on the
    `{g, r, t}` index): the whole hour set is ~8,800 documents a year.
    """
    collection = store[rollups_name(store.audit_name)]

    async def edges(match: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
        group = {"$group": {"_id": None, "lo": {"$min": "$t"}, "hi": {"$max": "$t"}}}
        rows = await _agg(collection, [{"$match": match}, group])
        return (_utc(rows[0].get("lo")), _utc(rows[0].get("hi"))) if rows else (None, None)

    first, last = await edges({"g": "d", "r": "all"})
    if first is None or last is None:
        return None
    day = timedelta(hours=25)  # a local day is at most 25 hours long
    (lo, _), (_, hi) = await asyncio.gather(
        edges({"g": "h", "r": "all", "t": {"$gte": first - timedelta(hours=1), "$lt": first + day}}),
        edges({"g": "h", "r": "all", "t": {"$gte": last, "$lt": last + day}}),
    )
    return lo or first, (hi or last + day) + timedelta(hours=1)


# --------------------------------------------------------------------------- rebuild


def _hour_expr() -> dict[str, Any]:
    return {"$toDate": {"$subtract": [{"$toLong": TS}, {"$mod": [{"$toLong": TS}, HOUR_MS]}]}}


def _day_expr() -> dict[str, Any]:
    # $dateTrunc: 20x faster than $dateFromString of the local date on SecantusDB.
    return {"$dateTrunc": {"date": TS, "unit": "day", "timezone": settings.APP_TIMEZONE}}


def _off_expr() -> dict[str, Any]:
    from analytics import local_hour, local_weekday, off_hours_expr

    return off_hours_expr(local_hour(), local_weekday())


def rollup_pipeline(grain: str, name: str) -> list[dict[str, Any]]:
    """The rollup documents of one set, computed from the events (rebuild and check)."""
    dims = GRAINS[grain][name]
    key: dict[str, Any] = {"t": _day_expr() if grain == "d" else _hour_expr()}
    if grain == "d":
        key["off"] = _off_expr()
    key.update({"return_code": "$return_code", **{d: f"${d}" for d in dims}})
    project: dict[str, Any] = {"_id": 0, "g": {"$literal": grain}, "r": {"$literal": name}, "n": 1}
    project.update({k: f"$_id.{k}" for k in key})
    counts: dict[str, Any] = {"n": {"$sum": 1}}
    if (grain, name) in DML_COUNTED:
        counts["dml"] = {"$sum": {"$cond": [{"$in": ["$action_name", list(DML_ACTIONS)]}, 1, 0]}}
        project["dml"] = 1
    return [
        {"$match": {"event_timestamp": {"$type": "date"}}},
        {"$group": {"_id": key, **counts}},
        {"$project": project},
    ]


def session_pipeline() -> list[dict[str, Any]]:
    ts = {"$cond": [{"$eq": [{"$type": TS}, "date"]}, TS, None]}
    return [
        {"$match": {"session_id": {"$ne": None}, "event_timestamp": {"$type": "date"}}},
        {
            "$group": {
                "_id": "$session_id",
                "start": {"$min": ts},
                "end": {"$max": ts},
                "events": {"$sum": 1},
                "failures": {"$sum": {"$cond": [{"$in": ["$return_code", [0, None]]}, 0, 1]}},
                "actions": {"$addToSet": "$action_name"},
                "logon": {
                    "$max": {"$and": [{"$eq": ["$action_name", "LOGON"]}, {"$eq": ["$return_code", 0]}]}
                },
                "logoff": {"$max": {"$eq": ["$action_name", "LOGOFF"]}},
                **{f: {"$first": f"${f}"} for f in SESSION_FIELDS},
            }
        },
        {"$set": {"actions": {"$setDifference": ["$actions", [None]]}, "dur": _DUR}},
    ]


async def _agg(collection: Any, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cursor = await collection.aggregate(pipeline, allowDiskUse=True)
    return await cursor.to_list(None)


async def rebuild(store: Any) -> int:
    """Recompute the rollups and sessions from the events (imports must be paused meanwhile).

    Each set is computed by the store and written by it (`$merge`); returns the events counted.
    """
    meta_id = _meta_id(store.audit_name)
    await store.meta.update_one({"_id": meta_id}, {"$set": {"building": True}}, upsert=True)
    await forget(store)
    rollups = store[rollups_name(store.audit_name)]
    sessions = store[sessions_name(store.audit_name)]
    await rollups.delete_many({})
    await sessions.delete_many({})
    events = await store.audit.count_documents({})
    for grain, sets in GRAINS.items():
        for name in sets:
            merge = {"$merge": {"into": rollups.name, "whenMatched": "fail", "whenNotMatched": "insert"}}
            await _agg(store.audit, [*rollup_pipeline(grain, name), merge])
    into = {"$merge": {"into": sessions.name, "whenMatched": "replace", "whenNotMatched": "insert"}}
    await _agg(store.audit, [*session_pipeline(), into])
    await ensure_indexes(store)
    await store.meta.update_one(
        {"_id": meta_id},
        {"$set": {"events": events, "building": False, "rebuilt_at": datetime.now(UTC), "layout": _layout()}},
    )
    await forget(store)
    logger.info("rollups of {} rebuilt from {} events", store.audit_name, events)
    return events


@dataclass
class CheckReport:
    events: int  # events in the collection
    counted: int | None  # events the rollups say they hold
    mismatches: list[str]  # a line per set (or sessions) that disagrees

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.counted == self.events


def _freeze(doc: dict[str, Any], skip: Iterable[str]) -> str:
    return _key(sorted((k, v) for k, v in doc.items() if k not in skip))


async def check(store: Any) -> CheckReport:
    """Recompute every set from the events and compare with the stored rollups (sums per key)."""
    rollups = store[rollups_name(store.audit_name)]
    events = await store.audit.count_documents({})
    report = CheckReport(events=events, counted=await counted(store), mismatches=[])
    for grain, sets in GRAINS.items():
        for name, dims in sets.items():
            counts = ("n", "dml") if (grain, name) in DML_COUNTED else ("n",)
            fresh_docs = await _agg(store.audit, rollup_pipeline(grain, name))
            fresh = {_freeze(d, counts): [d[c] for c in counts] for d in fresh_docs}
            key: dict[str, Any] = {k: f"${k}" for k in ("t", "return_code", *dims)}
            if grain == "d":
                key["off"] = "$off"
            stored_docs = await _agg(
                rollups,
                [
                    {"$match": {"g": grain, "r": name}},
                    {"$group": {"_id": key, **{c: {"$sum": f"${c}"} for c in counts}}},
                    {"$project": {"_id": 0, **{c: 1 for c in counts}, "g": {"$literal": grain},
                                  "r": {"$literal": name}, **{k: f"$_id.{k}" for k in key}}},
                ],
            )  # fmt: skip
            stored = {_freeze(d, counts): [d[c] for c in counts] for d in stored_docs}
            if fresh != stored:
                differ = sum(1 for k in fresh.keys() | stored.keys() if fresh.get(k) != stored.get(k))
                report.mismatches.append(f"{grain}/{name}: {differ} key(s) differ")
    fresh_s = {d["_id"]: d for d in await _agg(store.audit, session_pipeline())}
    stored_s = {d["_id"]: d for d in await store[sessions_name(store.audit_name)].find({}).to_list(None)}
    fields = [f for f in SESSION_COUNTS if f != "actions"]
    bad = [
        sid
        for sid in fresh_s.keys() | stored_s.keys()
        if sid not in fresh_s
        or sid not in stored_s
        or any(fresh_s[sid].get(f) != stored_s[sid].get(f) for f in fields)
        or sorted(fresh_s[sid].get("actions") or []) != sorted(stored_s[sid].get("actions") or [])
    ]
    if bad:
        report.mismatches.append(f"sessions: {len(bad)} session(s) differ")
    return report


async def reset(store: Any) -> None:
    """Empty rollups for an emptied audit collection (tests, and a trail deleted on purpose)."""
    await ensure_indexes(store)
    await forget(store)  # before the rollups are emptied: no reader may trust them meanwhile
    await store[rollups_name(store.audit_name)].delete_many({})
    await store[sessions_name(store.audit_name)].delete_many({})
    await store.meta.update_one(
        {"_id": _meta_id(store.audit_name)},
        _dropping_trust({"$set": {"events": 0, "building": False, "inflight": {}, "layout": _layout()}}),
        upsert=True,
    )


async def prepare(store: Any) -> asyncio.Task | None:
    """At start-up: indexes; rollups for an empty trail; whether they lag, and a rebuild if so.

    Counting the collection grows with it (1.1 s at 200k events on SecantusDB): when the rollups
    already hold events, that check runs in the background (readers check `usable` on their own).
    """
    await ensure_indexes(store)
    held = await _held(store)
    if held is not None and held[0] > 0:
        return asyncio.create_task(_catch_up(store), name="rollups-check")
    return await _catch_up(store, foreground=True)


async def _catch_up(store: Any, *, foreground: bool = False) -> asyncio.Task | None:
    """Rebuild the rollups if they lag the collection (another worker's import may be in flight)."""
    async with _count_lock(store):  # counted once at start-up: another writer may have added events
        if await check_trust(store):
            return None
    held = await counted(store)
    total = await store.audit.estimated_document_count()
    if total == 0:
        await reset(store)
        return None
    logger.warning("rollups of {} hold {} of {} events: rebuilding", store.audit_name, held, total)
    if foreground:
        return asyncio.create_task(rebuild(store), name="rollups-rebuild")
    await rebuild(store)
    return None
