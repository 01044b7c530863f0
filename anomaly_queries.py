"""The store reads of the anomaly detectors (anomalies.py): aggregation pipelines over the events, the
hourly summary of a user's history from the events or the hourly rollups, and the in-process cache of
their results.

- `_Queries` runs one detection's aggregations through `CACHE` (`ResultCache`), keyed by the audit
  collection and its version: a result can never be stale.
- The pipelines (`_failed_logons_pipeline`, `_mass_dml_pipeline`, `_watched_pipeline`,
  `_privileged_pipeline`, `_refine`) count in the store and return a few aggregated rows.
- `_summary` reads the history and the window per user and clock hour (`_summary_pipeline` on the
  events, `_rollup_summary_pipeline` on the rollups when they can be trusted), cached per local day;
  `_volume_rows`, `_off_hours_days` and `_mass_dml_spans` reduce it in Python.

`settings` is `config.settings` with the thresholds of the current call (`anomalies.parameters`).
"""

import asyncio
import copy
import math
from collections import OrderedDict
from contextvars import ContextVar
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import rollups
from analytics import CHANGE_ACTIONS, local_hour, local_weekday, off_hours_expr
from config import settings as _settings
from database import Store
from rollups import DML_ACTIONS

# Thresholds of one call in place of the global settings (an alert policy's own parameters).
_OVERRIDES: ContextVar[dict[str, Any]] = ContextVar("anomaly_overrides", default={})  # noqa: B039


class _Settings:
    """`config.settings`, with the thresholds overridden by `anomalies.parameters()` in the current
    context."""

    def __getattr__(self, name: str) -> Any:
        overrides = _OVERRIDES.get()
        return overrides[name] if name in overrides else getattr(_settings, name)


settings = _Settings()

AUDIT_POLICY_ACTIONS = ("CREATE AUDIT POLICY", "ALTER AUDIT POLICY", "DROP AUDIT POLICY", "AUDIT", "NOAUDIT")
ACCOUNT_ACTIONS = (
    "GRANT",
    "REVOKE",
    "ALTER USER",
    "CREATE USER",
    "DROP USER",
    "CREATE ROLE",
    "DROP ROLE",
    "ALTER ROLE",
)
DESTRUCTIVE_ACTIONS = tuple(a for a in CHANGE_ACTIONS if a.startswith(("DROP ", "TRUNCATE ", "PURGE ")))
SENSITIVE_ACTIONS = (*ACCOUNT_ACTIONS, *AUDIT_POLICY_ACTIONS, *DESTRUCTIVE_ACTIONS)
# Every action the "sensitive" query reads: sensitive ones plus other DDL (used to grade off-hours work).
WATCHED_ACTIONS = tuple(dict.fromkeys((*SENSITIVE_ACTIONS, *CHANGE_ACTIONS)))

MAX_SENSITIVE_GROUPS = 2000
SAMPLE_SIZE = 5
# Bound of the in-process result cache, in rows (hourly groups, query results): a few MB.
CACHE_MAX_ROWS = 200_000
HOUR = timedelta(hours=1)

SAMPLE_FIELDS = (
    "event_timestamp", "dbusername", "os_username", "userhost", "client_program_name", "action_name",
    "object_schema", "object_name", "return_code", "sql_text", "session_id",
)  # fmt: skip


# --------------------------------------------------------------------------- helpers


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _local(dt: datetime) -> datetime:
    return _utc(dt).astimezone(settings.tz)


def _night_expr(hour: Any) -> dict[str, Any]:
    return {
        "$or": [
            {"$gte": [hour, settings.ANOMALY_NIGHT_START_HOUR]},
            {"$lt": [hour, settings.ANOMALY_NIGHT_END_HOUR]},
        ]
    }


def _sample(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc.get(k) for k in SAMPLE_FIELDS if doc.get(k) is not None}


def _sample_expr() -> dict[str, Any]:
    return {k: f"${k}" for k in SAMPLE_FIELDS}


# --------------------------------------------------------------------------- cache


class ResultCache:
    """Aggregated results of store queries, in process memory, keyed by the audit collection and its
    version (`Store.audit_version()`, bumped by every import): an entry can never be stale, and the
    entries of older versions are dropped as soon as a newer version is seen. Least recently used
    entries go first once the cached rows exceed `max_rows`."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._data: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
        self._versions: dict[str, int] = {}
        self._rows = 0
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        self._data.clear()
        self._versions.clear()
        self._rows = 0
        self.hits = self.misses = 0

    def stats(self) -> dict[str, int]:
        return {"entries": len(self._data), "rows": self._rows, "hits": self.hits, "misses": self.misses}

    def see_version(self, audit_name: str, version: int) -> None:
        if self._versions.get(audit_name) == version:
            return
        self._versions[audit_name] = version
        for key in [k for k in self._data if k[0] == audit_name and k[1] != version]:
            self._rows -= self._data.pop(key)[1]

    def get(self, key: tuple) -> Any:
        entry = self._data.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return entry[0]

    def put(self, key: tuple, value: Any, rows: int) -> None:
        if key in self._data:
            self._rows -= self._data.pop(key)[1]
        self._data[key] = (value, max(1, rows))
        self._rows += max(1, rows)
        while self._rows > self.max_rows and len(self._data) > 1:
            self._rows -= self._data.popitem(last=False)[1][1]


CACHE = ResultCache(max_rows=CACHE_MAX_ROWS)


# Store queries of one detection in flight at once. A detection over a month of a busy trail asks
# for a hundred burst windows; all at once, they queue in the store ahead of every chat question
# (81 s for one answer while the detectors ran after an import at 1M events); two at a time, a
# question waits for at most two of them, and the detection takes as long.
DETECTION_CONCURRENCY = 2


class _Queries:
    """The store queries of one detection, through the cache for this audit collection and version."""

    def __init__(self, store: Store, version: int) -> None:
        self.store = store
        self.prefix = (store.audit_name, version)
        self.slots = asyncio.Semaphore(DETECTION_CONCURRENCY)
        CACHE.see_version(store.audit_name, version)

    def key(self, *parts: Any) -> tuple:
        return (*self.prefix, *parts)

    async def aggregate(self, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        key = self.key("query", repr(pipeline))
        rows = CACHE.get(key)
        if rows is None:
            async with self.slots:
                rows = await self.store.aggregate(pipeline)
            CACHE.put(key, rows, len(rows))
        return copy.deepcopy(rows)


def _burst_stages(key: str, window_minutes: int, threshold: int, extra_group: dict[str, Any]) -> list[dict]:
    """Stages that turn time-ordered events into bursts of >= threshold events within the window.

    An event is "hot" when its trailing window holds >= threshold events; an event belongs to a burst
    when a hot event follows it within the window; consecutive burst events closer than the window
    form one burst. Only the trailing count uses a range window: the store sums a window row by row,
    so "a hot event follows within the window" and "the burst this event belongs to" are carried
    forward with $locf (linear) instead of $max / running $sum windows (quadratic in the partition).
    """
    w = window_minutes
    asc = {"partitionBy": f"${key}", "sortBy": {"event_timestamp": 1}}
    desc = {"partitionBy": f"${key}", "sortBy": {"event_timestamp": -1}}
    return [
        {"$match": {key: {"$ne": None}}},
        {
            "$setWindowFields": {
                **asc,
                "output": {"inwin": {"$count": {}, "window": {"range": [-w, 0], "unit": "minute"}}},
            }
        },
        {"$set": {"hot_at": {"$cond": [{"$gte": ["$inwin", threshold]}, "$event_timestamp", None]}}},
        # The nearest hot event at or after this one (an event tied with a hot one is hot itself).
        {"$setWindowFields": {**desc, "output": {"next_hot": {"$locf": "$hot_at"}}}},
        {
            "$match": {
                "$expr": {
                    "$and": [
                        {"$ne": ["$next_hot", None]},
                        {"$lte": [{"$subtract": ["$next_hot", "$event_timestamp"]}, w * 60_000]},
                    ]
                }
            }
        },
        {
            "$setWindowFields": {
                **asc,
                "output": {"prev": {"$shift": {"output": "$event_timestamp", "by": -1}}},
            }
        },
        {
            "$set": {
                "burst_start": {
                    "$cond": [
                        {
                            "$or": [
                                {"$eq": ["$prev", None]},
                                {"$gt": [{"$subtract": ["$event_timestamp", "$prev"]}, w * 60_000]},
                            ]
                        },
                        "$event_timestamp",
                        None,
                    ]
                }
            }
        },
        {"$setWindowFields": {**asc, "output": {"burst": {"$locf": "$burst_start"}}}},
        {
            "$group": {
                "_id": {"key": f"${key}", "burst": "$burst"},
                "n": {"$sum": 1},
                "peak": {"$max": "$inwin"},
                "start": {"$min": "$event_timestamp"},
                "end": {"$max": "$event_timestamp"},
                "samples": {"$firstN": {"n": SAMPLE_SIZE, "input": _sample_expr()}},
                **extra_group,
            }
        },
        {"$sort": {"start": 1}},
    ]


# --------------------------------------------------------------------------- queries


def _failed_logons_pipeline(start: datetime, end: datetime) -> list[dict[str, Any]]:
    threshold = settings.ANOMALY_FAILED_LOGON_THRESHOLD
    window = settings.ANOMALY_FAILED_LOGON_WINDOW_MINUTES
    extra = {
        "users": {"$addToSet": "$dbusername"},
        "hosts": {"$addToSet": "$userhost"},
        "os_users": {"$addToSet": "$os_username"},
        "programs": {"$addToSet": "$client_program_name"},
        "codes": {"$addToSet": "$return_code"},
    }
    return [
        {"$match": {"event_timestamp": {"$gte": start, "$lt": end}, "action_name": "LOGON"}},
        {"$match": {"return_code": {"$ne": 0}}},
        {
            "$facet": {
                "by_user": _burst_stages("dbusername", window, threshold, extra),
                "by_host": _burst_stages("userhost", window, threshold, extra),
            }
        },
    ]


def _mass_dml_pipeline(user: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Bursts of DML by one user (a candidate found on the hourly groups), with targets counted."""
    stages = _burst_stages(
        "dbusername", settings.ANOMALY_MASS_DML_WINDOW_MINUTES, settings.ANOMALY_MASS_DML_THRESHOLD, {}
    )
    # Count per action and object in the store rather than shipping every target.
    stages[-2:] = [
        {
            "$group": {
                "_id": {
                    "key": "$dbusername",
                    "burst": "$burst",
                    "a": "$action_name",
                    "s": "$object_schema",
                    "o": "$object_name",
                },
                "n": {"$sum": 1},
                "peak": {"$max": "$inwin"},
                "start": {"$min": "$event_timestamp"},
                "end": {"$max": "$event_timestamp"},
                "samples": {"$firstN": {"n": SAMPLE_SIZE, "input": _sample_expr()}},
                "hosts": {"$addToSet": "$userhost"},
                "programs": {"$addToSet": "$client_program_name"},
                "os_users": {"$addToSet": "$os_username"},
            }
        },
        {"$sort": {"n": -1}},
        {
            "$group": {
                "_id": {"key": "$_id.key", "burst": "$_id.burst"},
                "n": {"$sum": "$n"},
                "peak": {"$max": "$peak"},
                "start": {"$min": "$start"},
                "end": {"$max": "$end"},
                "samples": {"$first": "$samples"},
                "hosts": {"$push": "$hosts"},
                "programs": {"$push": "$programs"},
                "os_users": {"$push": "$os_users"},
                "targets": {"$push": {"a": "$_id.a", "s": "$_id.s", "o": "$_id.o", "n": "$n"}},
            }
        },
        {"$sort": {"start": 1}},
    ]
    return [
        {"$match": {"event_timestamp": {"$gte": start, "$lt": end}, "dbusername": user}},
        {"$match": {"action_name": {"$in": list(DML_ACTIONS)}}},
        *stages,
    ]


def mass_dml_hourly_floor() -> int:
    """A burst of T statements within W minutes puts at least this many in one of the clock hours it
    overlaps: users below it in every hour cannot have a burst and are not scanned."""
    hours_spanned = -(-settings.ANOMALY_MASS_DML_WINDOW_MINUTES // 60) + 1
    return max(1, -(-settings.ANOMALY_MASS_DML_THRESHOLD // hours_spanned))


def _watched_pipeline(start: datetime, end: datetime) -> list[dict[str, Any]]:
    # These actions are rare: the action index over all time reads less than the time range.
    return [
        {"$match": {"action_name": {"$in": list(WATCHED_ACTIONS)}}},
        {"$match": {"event_timestamp": {"$gte": start, "$lt": end}}},
        {
            "$group": {
                "_id": {
                    "u": "$dbusername",
                    "session": "$session_id",
                    "a": "$action_name",
                    "s": "$object_schema",
                    "o": "$object_name",
                    "sql": "$sql_text",
                    "priv": "$system_privilege_used",
                    "rc": "$return_code",
                    "host": "$userhost",
                    "os": "$os_username",
                    "p": "$client_program_name",
                },
                "n": {"$sum": 1},
                "first": {"$min": "$event_timestamp"},
                "last": {"$max": "$event_timestamp"},
            }
        },
        {"$sort": {"first": 1}},
        {"$limit": MAX_SENSITIVE_GROUPS},
    ]


def _privileged_pipeline(account: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    return [
        {"$match": {"event_timestamp": {"$gte": start, "$lt": end}, "dbusername": account}},
        {"$match": {"return_code": 0}},
        {
            "$group": {
                "_id": {
                    "host": "$userhost",
                    "os": "$os_username",
                    "p": "$client_program_name",
                    "h": {"$dateTrunc": {"date": "$event_timestamp", "unit": "hour"}},
                },
                "n": {"$sum": 1},
                "first": {"$min": "$event_timestamp"},
                "last": {"$max": "$event_timestamp"},
                "actions": {"$addToSet": "$action_name"},
            }
        },
        {"$set": {"lh": local_hour("$_id.h"), "lw": local_weekday("$_id.h")}},
        {
            "$group": {
                "_id": {"host": "$_id.host", "os": "$_id.os", "p": "$_id.p"},
                "n": {"$sum": "$n"},
                "off": {
                    "$sum": {
                        "$cond": [
                            {
                                "$or": [
                                    {"$lt": ["$lh", settings.BUSINESS_HOURS_START]},
                                    {"$gte": ["$lh", settings.BUSINESS_HOURS_END]},
                                    {"$gte": ["$lw", 6]},
                                ]
                            },
                            "$n",
                            0,
                        ]
                    }
                },
                "first": {"$min": "$first"},
                "last": {"$max": "$last"},
                "actions": {"$push": "$actions"},
            }
        },
        {"$sort": {"n": -1}},
    ]


def _summary_pipeline(since: datetime, until: datetime, trunc_tz: str | None) -> list[dict[str, Any]]:
    """One pass over [since, until), grouped per user, clock hour, host, program, action and return
    code (plain field keys and one date truncation: the store evaluates expressions per event).
    The groups (a few per user and active hour) are reduced in Python by `_reduce`: the store
    spends some 50 µs per group on the expressions of a further $group or $facet, more than the
    groups take to ship.

    `trunc_tz` is None when the time zone's offsets are whole hours: UTC clock hours are then local
    clock hours and the truncation is cheaper without a time zone.
    """
    trunc: dict[str, Any] = {"date": "$event_timestamp", "unit": "hour"}
    if trunc_tz:
        trunc["timezone"] = trunc_tz
    return [
        {"$match": {"event_timestamp": {"$gte": since, "$lt": until}}},
        {
            "$group": {
                "_id": {
                    "u": "$dbusername",
                    "h": {"$dateTrunc": trunc},
                    "host": "$userhost",
                    "p": "$client_program_name",
                    "a": "$action_name",
                    "rc": "$return_code",
                },
                "n": {"$sum": 1},
            }
        },
        {"$match": {"_id.u": {"$ne": None}}},
    ]


def _rollup_summary_pipeline(since: datetime, until: datetime) -> list[dict[str, Any]]:
    """The same groups as `_summary_pipeline` but per host and program, not per action (their DML
    statements counted in `dml`), read from the hourly rollups on their {g, r, t} index."""
    fields = ("t", "dbusername", "userhost", "client_program_name", "return_code", "n", "dml")
    return [
        {"$match": {"g": "h", "r": "user_host_program", "t": {"$gte": since, "$lt": until}}},
        {"$project": {"_id": 0, **{f: 1 for f in fields}}},
    ]


async def _refine(
    q: _Queries, user: str, first: datetime, last: datetime, extra: dict[str, Any]
) -> dict[str, Any]:
    """Exact count, first and last time, actions and sample events of one user's events in a span
    (the baseline groups are per clock hour)."""
    pipeline = [
        {"$match": {"dbusername": user, "event_timestamp": {"$gte": first, "$lt": last}}},
        {"$match": extra},
        {
            "$facet": {
                "stats": [
                    {
                        "$group": {
                            "_id": None,
                            "n": {"$sum": 1},
                            "first": {"$min": "$event_timestamp"},
                            "last": {"$max": "$event_timestamp"},
                        }
                    }
                ],
                "actions": [{"$sortByCount": "$action_name"}],
                "samples": [{"$sort": {"event_timestamp": 1}}, {"$limit": SAMPLE_SIZE}],
            }
        },
    ]
    doc = (await q.aggregate(pipeline) or [{}])[0]
    stats = (doc.get("stats") or [{"n": 0, "first": first, "last": last}])[0]
    return {
        "n": stats["n"],
        "first": stats["first"],
        "last": stats["last"],
        "actions": {a["_id"]: a["count"] for a in doc.get("actions", []) if a["_id"]},
        "samples": [_sample(d) for d in doc.get("samples", [])],
    }


def _off_hours_match() -> dict[str, Any]:
    return {"$expr": off_hours_expr(local_hour(), local_weekday())}


# --------------------------------------------------------------------------- history summary


def _floor_hour(dt: datetime) -> datetime:
    """Start of the local clock hour holding dt, in UTC."""
    return _local(dt).replace(minute=0, second=0, microsecond=0).astimezone(UTC)


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=settings.tz).astimezone(UTC)


def _segments(since_day: date, end: datetime) -> list[tuple[str, datetime, datetime]]:
    """[local midnight of since_day, end) cut into local days, the day holding `end` cut at its last
    whole hour, then the rest of that hour. Whole days and the cut day are cached (the cut day until
    the next hour); the rest of the hour is recomputed unless the very same `end` comes back."""
    end_hour = _floor_hour(end)
    segments = []
    day = since_day
    while (lo := _local_midnight(day)) < end_hour:
        hi = _local_midnight(day + timedelta(days=1))
        if hi > end_hour:
            segments.append(("part", lo, end_hour))
            break
        segments.append(("day", lo, hi))
        day += timedelta(days=1)
    if end_hour < end:
        segments.append(("tail", end_hour, end))
    return segments


HourRow = tuple[str, datetime, int, int, tuple]  # user, hour, events, DML statements, hosts
PairRow = tuple[str, str | None, str | None, datetime, datetime, int]  # user, host, program, first, last, n
# user, hour, host, program, return code, events, DML statements among them
Group = tuple[str, datetime, str | None, str | None, Any, int, int]


def _event_groups(docs: list[dict[str, Any]]) -> list[Group]:
    """The groups of `_summary_pipeline` (per action) as summary groups."""
    groups: list[Group] = []
    for g in docs:
        k, n = g["_id"], g["n"]
        dml = n if k.get("a") in DML_ACTIONS else 0
        groups.append((k["u"], k["h"], k.get("host"), k.get("p"), k.get("rc"), n, dml))
    return groups


def _rollup_groups(docs: list[dict[str, Any]]) -> list[Group]:
    """The documents of `_rollup_summary_pipeline` as summary groups (events with no user left out,
    as `_summary_pipeline` does)."""
    return [
        (d["dbusername"], d["t"], d.get("userhost"), d.get("client_program_name"), d.get("return_code"),
         d["n"], d.get("dml", 0))
        for d in docs
        if d.get("dbusername") is not None
    ]  # fmt: skip


def _reduce(groups: list[Group]) -> dict[str, tuple[list[HourRow], list[PairRow]]]:
    """Hourly groups per local day: per user and hour the events, DML statements and hosts; per user,
    host and program the first and last hour and the count of successful events."""
    local_days: dict[datetime, str] = {}
    hours: dict[str, dict[tuple[str, datetime], list]] = {}
    pairs: dict[str, dict[tuple, list]] = {}
    for u, h, host, program, rc, n, dml in groups:
        d = local_days.get(h) or local_days.setdefault(h, _local(h).date().isoformat())
        row = hours.setdefault(d, {}).setdefault((u, h), [0, 0, set()])
        row[0] += n
        row[1] += dml
        row[2].add(host)
        if rc == 0:
            pair = pairs.setdefault(d, {}).setdefault((u, host, program), [h, h, 0])
            pair[0], pair[1], pair[2] = min(pair[0], h), max(pair[1], h), pair[2] + n
    return {
        d: (
            [(u, h, n, dml, tuple(hosts)) for (u, h), (n, dml, hosts) in hours[d].items()],
            [(u, host, p, first, last, n) for (u, host, p), (first, last, n) in pairs.get(d, {}).items()],
        )
        for d in hours
    }


async def _summary(
    q: _Queries, since_day: date, end: datetime, *, use_rollups: bool = True
) -> tuple[dict[tuple[str, datetime], list], dict[tuple, list]]:
    """Hourly groups of [local midnight of since_day, end), per local day from the cache, the missing
    days read in one pass per run of consecutive days: from the hourly rollups when they can be
    trusted (`rollups.usable`, as for the questions), else from the events; the last, partial hour
    always from the events.

    Returns {(user, hour): [events, dml, hosts]} and {(user, host, program): [first, last, n]}.
    """
    tz_whole_hours = all(
        _local(x).utcoffset().total_seconds() % 3600 == 0 for x in (_local_midnight(since_day), end)
    )
    trunc_tz = None if tz_whole_hours else settings.APP_TIMEZONE
    segments = _segments(since_day, end)
    # Both sources give the same groups (tests/test_rollups.py): one cache entry per segment.
    keys = [q.key("summary", settings.APP_TIMEZONE, trunc_tz, lo, hi) for _, lo, hi in segments]
    parts: list[Any] = [CACHE.get(k) for k in keys]
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(segments):
        j = i + 1
        if parts[i] is None:
            while j < len(segments) and parts[j] is None and "tail" not in (segments[i][0], segments[j][0]):
                j += 1
            runs.append((i, j))
        i = j
    rollup_set = rollups.rollups_name(q.store.audit_name)
    # The trust check counts the events (~2 s at 200k): only when whole hours are to be read.
    wanted = use_rollups and trunc_tz is None and any(segments[i][0] != "tail" for i, _ in runs)
    from_rollups = wanted and await rollups.usable(q.store)

    async def read(i: int, j: int) -> list[Group]:
        since, until = segments[i][1], segments[j - 1][2]
        async with q.slots:
            if from_rollups and segments[i][0] != "tail":
                pipeline = _rollup_summary_pipeline(since, until)
                return _rollup_groups(await q.store.aggregate(pipeline, rollup_set))
            return _event_groups(await q.store.aggregate(_summary_pipeline(since, until, trunc_tz)))

    docs = await asyncio.gather(*(read(i, j) for i, j in runs))
    for (i, j), groups in zip(runs, docs, strict=True):
        by_day = _reduce(groups)
        for k in range(i, j):
            value = by_day.get(_local(segments[k][1]).date().isoformat(), ([], []))
            parts[k] = value
            CACHE.put(keys[k], value, len(value[0]) + len(value[1]))
    hour_groups: dict[tuple[str, datetime], list] = {}
    pair_groups: dict[tuple, list] = {}
    for hours, pairs in parts:
        for u, h, n, dml, hosts in hours:
            g = hour_groups.setdefault((u, h), [0, 0, set()])
            g[0] += n
            g[1] += dml
            g[2].update(hosts)
        for u, host, p, first, last, n in pairs:
            pg = pair_groups.get((u, host, p))
            if pg is None:
                pair_groups[(u, host, p)] = [first, last, n]
            else:
                pg[0], pg[1], pg[2] = min(pg[0], first), max(pg[1], last), pg[2] + n
    return hour_groups, pair_groups


def _discrete_median(values: list[float]) -> float:
    """The store's $median: sorted[max(0, ceil(n / 2) - 1)]."""
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(0.5 * len(ordered)) - 1)])


def _volume_rows(hours: dict[tuple[str, datetime], list], start: datetime) -> list[dict[str, Any]]:
    """Hours of the window whose volume is far above the user's median of active hours (history and
    window), as (count - median) / (1.4826 * MAD)."""
    per_user: dict[str, list[tuple[datetime, int, set]]] = {}
    for (u, h), (n, _, hosts) in hours.items():
        per_user.setdefault(u, []).append((h, n, hosts))
    rows = []
    for user in sorted(per_user):
        items = sorted(per_user[user], key=lambda x: x[0])
        median = _discrete_median([n for _, n, _ in items])
        mad = _discrete_median([abs(n - median) for _, n, _ in items])
        for h, n, hosts in items:
            if h + HOUR <= start or n < settings.ANOMALY_MIN_HOURLY_VOLUME:
                continue
            score = (n - median) / max(mad * 1.4826, 1)
            if score >= settings.ANOMALY_MAD_THRESHOLD:
                rows.append(
                    {
                        "_id": user,
                        "hours": {"h": h, "n": n, "hosts": list(hosts)},
                        "median": median,
                        "mad": mad,
                        "active_hours": len(items),
                        "score": score,
                    }
                )
    return rows


def _off_hours_days(hours: dict[tuple[str, datetime], list], start: datetime) -> list[dict[str, Any]]:
    """Per user and local day with activity outside business hours: events, night events, weekend,
    events and first hour in the window, last hour, hosts."""
    local: dict[datetime, datetime] = {}
    days: dict[tuple[str, str], dict[str, Any]] = {}
    for (u, h), (n, _, hosts) in hours.items():
        loc = local.get(h) or local.setdefault(h, _local(h))
        lh, lw = loc.hour, loc.isoweekday()
        if settings.BUSINESS_HOURS_START <= lh < settings.BUSINESS_HOURS_END and lw < 6:
            continue
        d = loc.date().isoformat()
        row = days.get((u, d))
        if row is None:
            row = days[(u, d)] = {
                "_id": {"u": u, "d": d},
                "n": 0, "night": 0, "weekend": False, "n_win": 0, "first": None, "last": h, "hosts": set(),
            }  # fmt: skip
        row["n"] += n
        if lh >= settings.ANOMALY_NIGHT_START_HOUR or lh < settings.ANOMALY_NIGHT_END_HOUR:
            row["night"] += n
        row["weekend"] = row["weekend"] or lw >= 6
        if h + HOUR > start:
            row["n_win"] += n
            row["first"] = h if row["first"] is None else min(row["first"], h)
        row["last"] = max(row["last"], h)
        row["hosts"].update(hosts)
    return [days[k] for k in sorted(days)]


def _mass_dml_spans(
    hours: dict[tuple[str, datetime], list], start: datetime, end: datetime
) -> list[tuple[str, datetime, datetime]]:
    """(user, since, until) spans of the window that can hold a mass-DML burst.

    A burst's hot statement has >= T statements in its trailing window of W minutes, which overlaps
    at most ceil(W / 60) + 1 clock hours: one of them holds >= mass_dml_hourly_floor() statements.
    Every statement of the burst and every statement counted in its windows lie within W before or
    after that hour, so only those spans are read; spans less than W apart are merged, so no burst
    is cut in two.
    """
    w = timedelta(minutes=settings.ANOMALY_MASS_DML_WINDOW_MINUTES)
    floor = mass_dml_hourly_floor()
    per_user: dict[str, list[datetime]] = {}
    for (u, h), (_, dml, _) in hours.items():
        if dml >= floor and h + HOUR > start and h < end:
            per_user.setdefault(u, []).append(h)
    spans = []
    for user in sorted(per_user):
        merged: list[list[datetime]] = []
        for h in sorted(per_user[user]):
            lo, hi = max(start, h - w), min(end, h + HOUR + w)
            if merged and lo - merged[-1][1] <= w:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        spans += [(user, lo, hi) for lo, hi in merged]
    return spans
