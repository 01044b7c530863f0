"""Anomaly detection on the audit trail, computed in the store.

`detect_anomalies(store, start=, end=)` runs a few aggregations concurrently and turns their
(small, already aggregated) results into findings with a type, a severity, a French title and
explanation, the user and host concerned, the time window and the evidence:

- failed_logon_burst: at least ANOMALY_FAILED_LOGON_THRESHOLD failed logons within
  ANOMALY_FAILED_LOGON_WINDOW_MINUTES, per user and per host ($setWindowFields); the user and host
  views of one burst are merged into one finding.
- off_hours_activity: activity outside business hours or at the weekend, per user and local day.
  Users active off-hours on most days of the history (ETL, monitoring) are routine: one low finding.
- volume_spike: a user's hourly volume far above their own baseline, scored as
  (count - median) / (1.4826 * MAD) over their active hours (history included), in the store.
- sensitive_action: DROP, TRUNCATE, GRANT, REVOKE, ALTER USER, audit policy changes, graded by
  what they are (GRANT DBA is high, a routine object grant in business hours is low).
- privileged_account: use of SYS / SYSTEM.
- new_host_or_program: a user seen for the first time on a host or with a program, relative to
  their history before the window (ANOMALY_BASELINE_DAYS); with less than ANOMALY_LEARNING_DAYS
  of history, relative to the first ANOMALY_LEARNING_DAYS of the trail (`Detection.baseline`).
- mass_dml: at least ANOMALY_MASS_DML_THRESHOLD INSERT/UPDATE/DELETE/MERGE by one user within
  ANOMALY_MASS_DML_WINDOW_MINUTES.
"""

import asyncio
import contextlib
import copy
import hashlib
import math
import re
from collections import OrderedDict
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

import rollups
from analytics import CHANGE_ACTIONS, local_hour, local_weekday, off_hours_expr
from config import settings as _settings
from database import Store
from french import plural
from rollups import DML_ACTIONS

# Thresholds of one call in place of the global settings (an alert policy's own parameters).
_OVERRIDES: ContextVar[dict[str, Any]] = ContextVar("anomaly_overrides", default={})  # noqa: B039
TUNABLE = (
    "ANOMALY_FAILED_LOGON_THRESHOLD", "ANOMALY_FAILED_LOGON_WINDOW_MINUTES", "ANOMALY_MAD_THRESHOLD",
    "ANOMALY_MIN_HOURLY_VOLUME", "ANOMALY_MASS_DML_THRESHOLD", "ANOMALY_MASS_DML_WINDOW_MINUTES",
    "ANOMALY_BASELINE_DAYS", "ANOMALY_LEARNING_DAYS", "ANOMALY_ROUTINE_NIGHTS_RATIO",
    "ANOMALY_NIGHT_START_HOUR", "ANOMALY_NIGHT_END_HOUR",
)  # fmt: skip


class _Settings:
    """`config.settings`, with the thresholds overridden by `parameters()` in the current context."""

    def __getattr__(self, name: str) -> Any:
        overrides = _OVERRIDES.get()
        return overrides[name] if name in overrides else getattr(_settings, name)


settings = _Settings()


@contextlib.contextmanager
def parameters(overrides: dict[str, Any]) -> Iterator[None]:
    """Run the detectors with these ANOMALY_* thresholds in place of the settings (tasks started
    inside inherit them; other calls running at the same time do not see them)."""
    unknown = set(overrides) - set(TUNABLE)
    if unknown:
        raise ValueError(f"unknown anomaly parameters: {sorted(unknown)}")
    token = _OVERRIDES.set({**_OVERRIDES.get(), **overrides})
    try:
        yield
    finally:
        _OVERRIDES.reset(token)


Severity = Literal["low", "medium", "high"]
SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2}

PRIVILEGED_ACCOUNTS = ("SYS", "SYSTEM")
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

POWERFUL_GRANT = re.compile(
    r"\b(DBA|SYSDBA|SYSOPER|SYSBACKUP|SYSDG|SYSKM|AUDIT_ADMIN|AUDIT_VIEWER|IMP_FULL_DATABASE|"
    r"EXP_FULL_DATABASE|DATAPUMP_\w+|ALL\s+PRIVILEGES|BECOME\s+USER|ANY\s+\w+)\b",
    re.IGNORECASE,
)
POWERFUL_SYSTEM_PRIVILEGES = {"GRANT ANY ROLE", "GRANT ANY PRIVILEGE"}
TEMPORARY_NAME = re.compile(r"^(TMP|TEMP|BKP|BAK)_|_(TMP|TEMP)$", re.IGNORECASE)
MAX_SENSITIVE_GROUPS = 2000
SAMPLE_SIZE = 5
# Bound of the in-process result cache, in rows (hourly groups, query results): a few MB.
CACHE_MAX_ROWS = 200_000
HOUR = timedelta(hours=1)

SAMPLE_FIELDS = (
    "event_timestamp", "dbusername", "os_username", "userhost", "client_program_name", "action_name",
    "object_schema", "object_name", "return_code", "sql_text", "session_id",
)  # fmt: skip

TYPE_LABELS = {
    "failed_logon_burst": "Rafale d'échecs de connexion",
    "off_hours_activity": "Activité hors heures ouvrées",
    "volume_spike": "Volume horaire anormal",
    "sensitive_action": "Action sensible",
    "privileged_account": "Utilisation d'un compte privilégié",
    "new_host_or_program": "Nouveau poste ou programme",
    "mass_dml": "Modifications de données en masse",
}


class Anomaly(BaseModel):
    """One finding, with what it is, how serious, who, when and the evidence."""

    id: str
    type: str
    severity: Severity
    title: str
    explanation: str
    dbusername: str | None = None
    userhost: str | None = None
    os_username: str | None = None
    client_program_name: str | None = None
    start: datetime
    end: datetime
    count: int = 0
    evidence: dict[str, Any] = Field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _local(dt: datetime) -> datetime:
    return _utc(dt).astimezone(settings.tz)


def _fmt(dt: datetime) -> str:
    return _local(dt).strftime("%d/%m/%Y %H:%M")


def _fmt_time(dt: datetime) -> str:
    return _local(dt).strftime("%H:%M")


def _n(n: float, one: str, many: str) -> str:
    """'1 jour', '3 jours' (French: 0 and 1 take the singular)."""
    return plural(n, one, many)


def _span(start: datetime, end: datetime) -> str:
    if _fmt(start) == _fmt(end):
        return f"le {_local(start):%d/%m/%Y} à {_fmt_time(start)}"
    if _local(start).date() == _local(end).date():
        return f"le {_local(start):%d/%m/%Y} entre {_fmt_time(start)} et {_fmt_time(end)}"
    return f"du {_fmt(start)} au {_fmt(end)}"


def _is_off_hours(dt: datetime) -> bool:
    local = _local(dt)
    return (
        local.hour < settings.BUSINESS_HOURS_START
        or local.hour >= settings.BUSINESS_HOURS_END
        or local.isoweekday() >= 6
    )


def _is_night(dt: datetime) -> bool:
    hour = _local(dt).hour
    return hour >= settings.ANOMALY_NIGHT_START_HOUR or hour < settings.ANOMALY_NIGHT_END_HOUR


def _night_expr(hour: Any) -> dict[str, Any]:
    return {
        "$or": [
            {"$gte": [hour, settings.ANOMALY_NIGHT_START_HOUR]},
            {"$lt": [hour, settings.ANOMALY_NIGHT_END_HOUR]},
        ]
    }


def _anomaly(type_: str, severity: Severity, title: str, explanation: str, **fields: Any) -> Anomaly:
    key = "|".join(str(x) for x in (type_, fields.get("dbusername"), fields.get("userhost"), fields["start"]))
    return Anomaly(
        id=hashlib.sha1(key.encode()).hexdigest()[:16],
        type=type_,
        severity=severity,
        title=title,
        explanation=explanation,
        **fields,
    )


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


def clear_cache() -> None:
    """Forget every cached result (the bench measures cold calls with it)."""
    CACHE.clear()


class _Queries:
    """The store queries of one detection, through the cache for this audit collection and version."""

    def __init__(self, store: Store, version: int) -> None:
        self.store = store
        self.prefix = (store.audit_name, version)
        CACHE.see_version(store.audit_name, version)

    def key(self, *parts: Any) -> tuple:
        return (*self.prefix, *parts)

    async def aggregate(self, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        key = self.key("query", repr(pipeline))
        rows = CACHE.get(key)
        if rows is None:
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
        if from_rollups and segments[i][0] != "tail":
            return _rollup_groups(await q.store.aggregate(_rollup_summary_pipeline(since, until), rollup_set))
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


# --------------------------------------------------------------------------- findings


def _failed_logon_findings(doc: dict[str, Any]) -> list[Anomaly]:
    """Merge the user and host views: bursts that overlap in time and share the user or host."""
    threshold = settings.ANOMALY_FAILED_LOGON_THRESHOLD
    window = settings.ANOMALY_FAILED_LOGON_WINDOW_MINUTES
    bursts = [("user", b) for b in doc.get("by_user", [])] + [("host", b) for b in doc.get("by_host", [])]
    groups: list[list[tuple[str, dict]]] = []
    for view, burst in bursts:
        joined = None
        for group in groups:
            for _, other in group:
                overlap = burst["start"] <= other["end"] and other["start"] <= burst["end"]
                shared = set(burst["users"]) & set(other["users"]) or set(burst["hosts"]) & set(
                    other["hosts"]
                )
                if overlap and shared:
                    joined = group
                    break
            if joined:
                break
        if joined is None:
            groups.append([(view, burst)])
        else:
            joined.append((view, burst))
    findings = []
    for group in groups:
        start = min(b["start"] for _, b in group)
        end = max(b["end"] for _, b in group)
        users = sorted({u for _, b in group for u in b["users"] if u})
        hosts = sorted({h for _, b in group for h in b["hosts"] if h})
        os_users = sorted({o for _, b in group for o in b["os_users"] if o})
        programs = sorted({p for _, b in group for p in b["programs"] if p})
        codes = sorted({c for _, b in group for c in b["codes"] if c is not None})
        count = max(b["n"] for _, b in group)
        peak = max(b["peak"] for _, b in group)
        privileged = any(u in PRIVILEGED_ACCOUNTS for u in users)
        severity: Severity = "high" if privileged or count >= 3 * threshold or len(users) >= 3 else "medium"
        who = users[0] if len(users) == 1 else f"{len(users)} comptes ({', '.join(users[:5])})"
        where = hosts[0] if len(hosts) == 1 else f"{len(hosts)} postes ({', '.join(hosts[:5])})"
        reasons = []
        if privileged:
            reasons.append("le compte visé est privilégié")
        if len(users) >= 3:
            reasons.append(
                "plusieurs comptes sont visés depuis la même origine (attaque par pulvérisation ?)"
            )
        explanation = (
            f"{count} tentatives de connexion échouées sur {who} depuis {where} {_span(start, end)} "
            f"(jusqu'à {peak} en {window} minutes ; seuil : {threshold} en {window} minutes)"
            + (f", codes d'erreur {', '.join(f'ORA-{c:05d}' for c in codes)}" if codes else "")
            + "."
            + (f" Gravité élevée : {' ; '.join(reasons)}." if reasons else "")
        )
        samples = next(b["samples"] for _, b in group)
        minutes = max(1, round((end - start).total_seconds() / 60))
        findings.append(
            _anomaly(
                "failed_logon_burst",
                severity,
                f"{count} échecs de connexion sur {who} en {minutes} min",
                explanation,
                dbusername=users[0] if len(users) == 1 else None,
                userhost=hosts[0] if len(hosts) == 1 else None,
                os_username=os_users[0] if len(os_users) == 1 else None,
                client_program_name=programs[0] if len(programs) == 1 else None,
                start=start,
                end=end,
                count=count,
                evidence={
                    "failed_logons": count,
                    "peak_in_window": peak,
                    "window_minutes": window,
                    "threshold": threshold,
                    "users": users,
                    "hosts": hosts,
                    "os_users": os_users,
                    "programs": programs,
                    "return_codes": codes,
                    "views": [
                        {
                            "by": view,
                            "key": b["_id"]["key"],
                            "count": b["n"],
                            "start": b["start"],
                            "end": b["end"],
                        }
                        for view, b in group
                    ],
                    "samples": [_sample(s) for s in samples],
                },
            )
        )
    return findings


def _grade_sensitive(item: dict[str, Any]) -> tuple[Severity, str] | None:
    """Severity and French label of one sensitive action, or None if it is not sensitive."""
    action = item["a"] or ""
    sql = item.get("sql") or ""
    obj = item.get("o") or ""
    priv = item.get("priv") or ""
    off = _is_off_hours(item["first"])
    failed = item.get("rc", 0) != 0
    if action in AUDIT_POLICY_ACTIONS:
        return "high", "modification de la politique d'audit"
    if action == "GRANT":
        if priv in POWERFUL_SYSTEM_PRIVILEGES or (
            sql and " ON " not in sql.upper() and POWERFUL_GRANT.search(sql)
        ):
            return "high", f"attribution d'un rôle ou privilège puissant ({sql or priv})"
        if sql and " ON " not in sql.upper():
            return "medium", f"attribution d'un privilège système ou d'un rôle ({sql})"
        return ("medium" if off else "low"), "attribution d'un droit sur un objet"
    if action == "REVOKE":
        if sql and " ON " not in sql.upper():
            return "medium", "retrait d'un privilège système ou d'un rôle"
        return ("medium" if off else "low"), "retrait d'un droit sur un objet"
    if action in ("DROP USER", "DROP ROLE"):
        return "high", f"suppression d'un compte ou rôle ({obj})"
    if action in ("CREATE USER", "CREATE ROLE", "ALTER ROLE"):
        return "medium", f"création ou modification d'un compte ou rôle ({obj})"
    if action == "ALTER USER":
        target = obj.upper()
        if target in PRIVILEGED_ACCOUNTS:
            return "high", f"modification du compte privilégié {target}"
        upper = sql.upper()
        if "IDENTIFIED BY" in upper and "UNLOCK" not in upper and not off:
            return "low", f"changement de mot de passe de {obj}"
        return "medium", f"modification du compte {obj}"
    if action in DESTRUCTIVE_ACTIONS:
        what = "vidage" if action.startswith("TRUNCATE") else "suppression"
        if TEMPORARY_NAME.search(obj):
            # Scratch tables come and go in routine DBA work; off-hours it is worth a look, no more.
            return ("medium" if off else "low"), f"{what} d'un objet temporaire ({obj})"
        if failed:
            return "medium", f"tentative de {what} échouée ({obj})"
        return ("high" if off else "medium"), f"{what} d'objet ({action} {obj})"
    return None


def _sensitive_findings(items: list[dict[str, Any]]) -> list[Anomaly]:
    """One finding per user and session; routine low-severity actions grouped per user."""
    sessions: dict[tuple, list[tuple[Severity, str, dict]]] = {}
    for raw in items:
        item = {**raw["_id"], "n": raw["n"], "first": raw["first"], "last": raw["last"]}
        graded = _grade_sensitive(item)
        if graded is None:
            continue
        severity, label = graded
        key = (item["u"], item["session"]) if severity != "low" else (item["u"], "routine")
        sessions.setdefault(key, []).append((severity, label, item))
    findings = []
    for (user, session), entries in sessions.items():
        severity = min((s for s, _, _ in entries), key=SEVERITY_RANK.__getitem__)
        start = min(i["first"] for _, _, i in entries)
        end = max(i["last"] for _, _, i in entries)
        count = sum(i["n"] for _, _, i in entries)
        hosts = sorted({i["host"] for _, _, i in entries if i.get("host")})
        programs = sorted({i["p"] for _, _, i in entries if i.get("p")})
        labels = list(
            dict.fromkeys(label for _, label, _ in sorted(entries, key=lambda e: SEVERITY_RANK[e[0]]))
        )
        off = any(_is_off_hours(i["first"]) for _, _, i in entries)
        if session == "routine":
            title = f"{_n(count, 'action sensible courante', 'actions sensibles courantes')} par {user}"
            explanation = (
                f"{user} a effectué {_n(count, 'action sensible', 'actions sensibles')} de routine "
                f"{_span(start, end)} : "
                f"{'; '.join(labels[:6])}. Faible gravité : administration courante en heures ouvrées."
            )
        else:
            title = f"{labels[0][0].upper()}{labels[0][1:]} par {user}"
            explanation = (
                f"{user} a effectué {_n(count, 'action sensible', 'actions sensibles')} {_span(start, end)}"
                f"{' hors heures ouvrées' if off else ''}"
                f"{f' depuis {hosts[0]}' if len(hosts) == 1 else ''} : {'; '.join(labels[:6])}."
            )
        findings.append(
            _anomaly(
                "sensitive_action",
                severity,
                title,
                explanation,
                dbusername=user,
                userhost=hosts[0] if len(hosts) == 1 else None,
                client_program_name=programs[0] if len(programs) == 1 else None,
                os_username=next((i["os"] for _, _, i in entries if i.get("os")), None),
                start=start,
                end=end,
                count=count,
                evidence={
                    "session_id": None if session == "routine" else session,
                    "off_hours": off,
                    "hosts": hosts,
                    "actions": [
                        {
                            "severity": s,
                            "label": label,
                            "action_name": i["a"],
                            "object_schema": i.get("s"),
                            "object_name": i.get("o"),
                            "sql_text": i.get("sql"),
                            "system_privilege_used": i.get("priv"),
                            "return_code": i.get("rc"),
                            "count": i["n"],
                            "first": i["first"],
                        }
                        for s, label, i in sorted(entries, key=lambda e: e[2]["first"])[:20]
                    ],
                },
            )
        )
    return findings


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


async def _off_hours_findings(
    q: _Queries,
    days: list[dict[str, Any]],
    watched: list[dict[str, Any]],
    user_first: dict[str, datetime],
    *,
    start: datetime,
    history_start: datetime,
    end: datetime,
) -> list[Anomaly]:
    ratio = settings.ANOMALY_ROUTINE_NIGHTS_RATIO
    hour = timedelta(hours=1)
    per_user: dict[str, list[dict]] = {}
    for d in days:
        per_user.setdefault(d["_id"]["u"], []).append(d)
    # Off-hours DDL and sensitive actions, per user and local day, to grade the days they fall in.
    ddl: dict[tuple[str, str], list[dict]] = {}
    for raw in watched:
        item = {**raw["_id"], "n": raw["n"], "first": raw["first"]}
        if item.get("rc", 0) == 0 and _is_off_hours(item["first"]):
            ddl.setdefault((item["u"], _local(item["first"]).date().isoformat()), []).append(item)
    serious: list[tuple[Severity, str, dict, list[dict], int, float]] = []
    findings = []
    for user, user_days in per_user.items():
        since = max(history_start, min(user_first.get(user, start), start))
        span_days = max(1.0, (end - since).total_seconds() / 86400)
        active_days = len(user_days)
        routine = active_days / span_days >= ratio
        low: list[dict] = []
        for d in user_days:
            if not d["n_win"]:
                continue
            changes = ddl.get((user, d["_id"]["d"]), [])
            if routine:
                low.append(d)
            elif any(_is_night(c["first"]) for c in changes):
                serious.append(("high", user, d, changes, active_days, span_days))
            elif changes or d["night"] > 0:
                serious.append(("medium", user, d, changes, active_days, span_days))
            else:
                low.append(d)
        if low:
            n = sum(d["n_win"] for d in low)
            first = max(start, min(d["first"] for d in low))
            last = min(end, max(d["last"] for d in low) + hour)
            hosts = sorted({h for d in low for h in d["hosts"] if h})
            if routine:
                why = (
                    "activité habituelle : ce compte travaille hors heures "
                    f"{_n(active_days, 'jour', 'jours')} sur "
                    f"{round(span_days)} (traitements de nuit, supervision)"
                )
            else:
                why = "en soirée, tôt le matin ou le week-end, sans opération sensible"
            findings.append(
                _anomaly(
                    "off_hours_activity",
                    "low",
                    f"Activité hors heures de {user} ({_n(len(low), 'jour', 'jours')})",
                    f"{user} a eu {_n(n, 'événement', 'événements')} hors heures ouvrées sur "
                    f"{_n(len(low), 'jour', 'jours')} "
                    f"{_span(first, last)} ; faible gravité : {why}.",
                    dbusername=user,
                    userhost=hosts[0] if len(hosts) == 1 else None,
                    start=first,
                    end=last,
                    count=n,
                    evidence={
                        "days": [
                            {"local_day": d["_id"]["d"], "events": d["n_win"], "night_events": d["night"]}
                            for d in low
                        ],
                        "hosts": hosts,
                        "off_hours_days_in_history": active_days,
                        "history_days": round(span_days),
                        "routine": routine,
                    },
                )
            )
    refined = await asyncio.gather(
        *(
            _refine(q, user, max(start, d["first"]), min(end, d["last"] + hour), _off_hours_match())
            for _, user, d, *_ in serious
        )
    )
    for (severity, user, d, changes, active_days, span_days), exact in zip(serious, refined, strict=True):
        if not exact["n"]:
            continue
        day = d["_id"]["d"]
        when = "la nuit" if d["night"] else ("le week-end" if d["weekend"] else "hors heures ouvrées")
        what = ""
        if changes:
            acts = ", ".join(
                f"{c['a']} {'.'.join(x for x in (c.get('s'), c.get('o')) if x)}" for c in changes[:6]
            )
            ops = _n(
                sum(c["n"] for c in changes),
                "opération de structure ou sensible",
                "opérations de structure ou sensibles",
            )
            what = f", dont {ops} : {acts}"
        hosts = sorted(h for h in d["hosts"] if h)
        explanation = (
            f"{user} a été actif {when} {_span(exact['first'], exact['last'])} : "
            f"{_n(exact['n'], 'événement', 'événements')}"
            f"{what}. Ce compte n'a d'activité hors heures que {_n(active_days, 'jour', 'jours')} sur "
            f"{round(span_days)} : ce n'est pas une habitude."
        )
        findings.append(
            _anomaly(
                "off_hours_activity",
                severity,
                f"Activité {when} de {user} le {day[8:10]}/{day[5:7]}",
                explanation,
                dbusername=user,
                userhost=hosts[0] if len(hosts) == 1 else None,
                start=exact["first"],
                end=exact["last"],
                count=exact["n"],
                evidence={
                    "local_day": day,
                    "events": exact["n"],
                    "night_events": d["night"],
                    "weekend": bool(d["weekend"]),
                    "hosts": hosts,
                    "actions": exact["actions"],
                    "off_hours_days_in_history": active_days,
                    "history_days": round(span_days),
                    "routine": False,
                    "changes": [
                        {k: c.get(k) for k in ("first", "a", "s", "o", "sql", "session")}
                        for c in changes[:20]
                    ],
                    "samples": exact["samples"],
                },
            )
        )
    return findings


def _volume_findings(rows: list[dict[str, Any]]) -> list[Anomaly]:
    threshold = settings.ANOMALY_MAD_THRESHOLD
    per_user: dict[str, list[dict]] = {}
    for r in rows:
        per_user.setdefault(r["_id"], []).append(r)
    findings = []
    for user, hours in per_user.items():
        # Consecutive flagged hours make one finding.
        runs: list[list[dict]] = []
        for r in sorted(hours, key=lambda r: r["hours"]["h"]):
            if runs and r["hours"]["h"] - runs[-1][-1]["hours"]["h"] <= timedelta(hours=1):
                runs[-1].append(r)
            else:
                runs.append([r])
        for run in runs:
            start = run[0]["hours"]["h"]
            end = run[-1]["hours"]["h"] + timedelta(hours=1)
            count = sum(r["hours"]["n"] for r in run)
            peak = max(run, key=lambda r: r["score"])
            median, mad, score = peak["median"], peak["mad"], peak["score"]
            hosts = sorted({h for r in run for h in r["hours"]["hosts"] if h})
            severity: Severity = (
                "high"
                if score >= 3 * threshold and peak["hours"]["n"] >= 3 * settings.ANOMALY_MIN_HOURLY_VOLUME
                else "medium"
            )
            explanation = (
                f"{user} a généré {_n(count, 'événement', 'événements')} {_span(start, end)}, soit jusqu'à "
                f"{peak['hours']['n']} en une heure, alors que sa médiane est de "
                f"{_n(median, 'événement', 'événements')} par "
                f"heure d'activité (écart absolu médian {mad:g}, sur {peak['active_hours']} heures) : "
                f"score robuste {score:.1f} pour un seuil de {threshold:g}."
            )
            findings.append(
                _anomaly(
                    "volume_spike",
                    severity,
                    f"Volume horaire anormal pour {user} ({peak['hours']['n']} événements en une heure)",
                    explanation,
                    dbusername=user,
                    userhost=hosts[0] if len(hosts) == 1 else None,
                    start=start,
                    end=end,
                    count=count,
                    evidence={
                        "hourly_counts": [{"hour": r["hours"]["h"], "events": r["hours"]["n"]} for r in run],
                        "median": median,
                        "mad": mad,
                        "robust_score": round(score, 2),
                        "threshold": threshold,
                        "active_hours": peak["active_hours"],
                        "hosts": hosts,
                    },
                )
            )
    return findings


def _mass_dml_findings(bursts: list[dict[str, Any]]) -> list[Anomaly]:
    threshold = settings.ANOMALY_MASS_DML_THRESHOLD
    window = settings.ANOMALY_MASS_DML_WINDOW_MINUTES
    findings = []
    for b in bursts:
        user = b["_id"]["key"]
        hosts = sorted({h for hs in b["hosts"] for h in hs if h})
        programs = sorted({p for ps in b["programs"] for p in ps if p})
        os_users = sorted({o for os_ in b["os_users"] for o in os_ if o})
        targets = sorted(b["targets"], key=lambda t: -t["n"])
        deletes = sum(t["n"] for t in targets if t["a"] == "DELETE")
        severity: Severity = "high" if deletes * 2 >= b["n"] or b["n"] >= 2 * threshold else "medium"
        top = targets[0]
        top_obj = ".".join(x for x in (top.get("s"), top.get("o")) if x) or "divers objets"
        explanation = (
            f"{user} a exécuté {b['n']} ordres de modification de données {_span(b['start'], b['end'])} "
            f"(jusqu'à {b['peak']} en {window} minutes ; seuil : {threshold}), "
            f"surtout {top['a']} sur {top_obj} ({top['n']} fois)"
            + (f" ; {deletes} suppressions de lignes au total" if deletes else "")
            + "."
        )
        findings.append(
            _anomaly(
                "mass_dml",
                severity,
                f"{b['n']} modifications en masse par {user} ({top['a']} {top_obj})",
                explanation,
                dbusername=user,
                userhost=hosts[0] if len(hosts) == 1 else None,
                os_username=os_users[0] if len(os_users) == 1 else None,
                client_program_name=programs[0] if len(programs) == 1 else None,
                start=b["start"],
                end=b["end"],
                count=b["n"],
                evidence={
                    "statements": b["n"],
                    "peak_in_window": b["peak"],
                    "window_minutes": window,
                    "threshold": threshold,
                    "by_action_and_object": [
                        {
                            "action_name": t["a"],
                            "object_schema": t.get("s"),
                            "object_name": t.get("o"),
                            "count": t["n"],
                        }
                        for t in targets[:10]
                    ],
                    "hosts": hosts,
                    "samples": [_sample(s) for s in b["samples"]],
                },
            )
        )
    return findings


def _privileged_findings(account: str, rows: list[dict[str, Any]], new_hosts: set[str]) -> list[Anomaly]:
    findings = []
    for r in rows:
        host = r["_id"].get("host")
        if host in new_hosts:
            continue  # reported as a first-seen host, with higher severity
        actions = sorted({a for acts in r["actions"] for a in acts if a})
        severity: Severity = "medium" if r["off"] else "low"
        explanation = (
            f"Le compte privilégié {account} a été utilisé {r['n']} fois {_span(r['first'], r['last'])}"
            f" depuis {host or 'un poste inconnu'} (utilisateur système {r['_id'].get('os') or 'inconnu'}, "
            f"programme {r['_id'].get('p') or 'inconnu'})"
            + (f", dont {r['off']} fois hors heures ouvrées" if r["off"] else ", en heures ouvrées")
            + f". Actions : {', '.join(actions[:10])}."
        )
        findings.append(
            _anomaly(
                "privileged_account",
                severity,
                f"Utilisation du compte {account} depuis {host or 'un poste inconnu'}",
                explanation,
                dbusername=account,
                userhost=host,
                os_username=r["_id"].get("os"),
                client_program_name=r["_id"].get("p"),
                start=r["first"],
                end=r["last"],
                count=r["n"],
                evidence={"events": r["n"], "off_hours_events": r["off"], "actions": actions},
            )
        )
    return findings


async def _new_pair_findings(q: _Queries, pairs: list[dict[str, Any]], *, start: datetime) -> list[Anomaly]:
    """Users seen on a new host or with a new program in the window, relative to their history.

    The groups are per clock hour: a pair first seen in the hour that holds `start` is checked
    against the exact events before it is reported.
    """
    hour = timedelta(hours=1)
    if not any(p["first"] + hour <= start for p in pairs):
        return []  # no history before the window: nothing to compare with
    by_user: dict[str, list[dict]] = {}
    for p in pairs:
        by_user.setdefault(p["_id"]["u"], []).append(p)
    candidates = []
    for user, items in by_user.items():
        before = [p for p in items if p["first"] + hour <= start]
        if not before:
            continue  # a new account: no history to compare with
        known_hosts = {p["_id"].get("host") for p in before}
        known_programs = {p["_id"].get("p") for p in before}
        fresh: dict[str | None, list[dict]] = {}
        for p in items:
            if p["first"] + hour > start:
                new_host = p["_id"].get("host") not in known_hosts
                new_program = p["_id"].get("p") not in known_programs
                if new_host or new_program:
                    fresh.setdefault(p["_id"].get("host"), []).append(
                        {**p, "nh": new_host, "np": new_program}
                    )
        for host, combos in fresh.items():
            candidates.append((user, host, combos, known_hosts, known_programs))
    refined = await asyncio.gather(
        *(
            _refine(
                q,
                user,
                min(c["first"] for c in combos),
                max(c["last"] for c in combos) + hour,
                {
                    "userhost": host,
                    "return_code": 0,
                    "client_program_name": {"$in": [c["_id"].get("p") for c in combos]},
                },
            )
            for user, host, combos, _, _ in candidates
        )
    )
    out = []
    for (user, host, combos, known_hosts, known_programs), exact in zip(candidates, refined, strict=True):
        if not exact["n"] or exact["first"] < start:
            continue  # seen just before the window after all
        new_host = any(c["nh"] for c in combos)
        new_programs = sorted({c["_id"].get("p") for c in combos if c["np"] and c["_id"].get("p")})
        programs = sorted({c["_id"].get("p") for c in combos if c["_id"].get("p")})
        if new_host and new_programs:
            severity: Severity = "high"
            what = f"depuis un nouveau poste ({host}) avec un nouveau programme ({', '.join(new_programs)})"
        elif new_host:
            severity = "high" if user in PRIVILEGED_ACCOUNTS else "medium"
            what = f"depuis un nouveau poste ({host})"
        else:
            severity = "low"
            what = f"avec un nouveau programme ({', '.join(new_programs)}) sur {host}"
        explanation = (
            f"{user} s'est connecté {what} : {_n(exact['n'], 'événement', 'événements')} "
            f"{_span(exact['first'], exact['last'])}. "
            f"Auparavant, ce compte n'était vu que sur {', '.join(sorted(str(h) for h in known_hosts))} "
            f"avec {', '.join(sorted(str(p) for p in known_programs))}."
        )
        out.append(
            _anomaly(
                "new_host_or_program",
                severity,
                f"{user} vu pour la première fois {what}",
                explanation,
                dbusername=user,
                userhost=host,
                client_program_name=programs[0] if len(programs) == 1 else None,
                start=exact["first"],
                end=exact["last"],
                count=exact["n"],
                evidence={
                    "new_host": new_host,
                    "new_programs": new_programs,
                    "known_hosts": sorted(str(h) for h in known_hosts),
                    "known_programs": sorted(str(p) for p in known_programs),
                    "events": exact["n"],
                    "actions": exact["actions"],
                    "samples": exact["samples"],
                },
            )
        )
    return out


# --------------------------------------------------------------------------- entry point


class Baseline(BaseModel):
    """What the window was compared with: the history before it, or the first days of the trail."""

    kind: Literal["history", "learning", "none"]
    start: datetime | None = None  # the baseline's span
    end: datetime | None = None  # "first seen" is judged from here on
    days: float = 0
    explanation: str


class Detection(BaseModel):
    """The findings of one run of the detectors, and the baseline they were judged against."""

    start: datetime
    end: datetime
    baseline: Baseline
    findings: list[Anomaly]


def _baseline(
    hours: dict[tuple[str, datetime], list], start: datetime, end: datetime, history_start: datetime
) -> Baseline:
    """The history before the window when it holds at least ANOMALY_LEARNING_DAYS; otherwise the first
    ANOMALY_LEARNING_DAYS of the trail (a window that covers the whole trail learns from its start)."""
    learning = timedelta(days=settings.ANOMALY_LEARNING_DAYS)
    first = min((h for _, h in hours), default=None)
    if first is None:
        return Baseline(kind="none", explanation="Aucun événement : rien à comparer.")
    since = max(first, history_start)
    if since + learning <= start:
        days = round((start - since).total_seconds() / 86400, 1)
        return Baseline(
            kind="history",
            start=since,
            end=start,
            days=days,
            explanation=f"Comparaison avec l'historique des {_n(round(days), 'jour', 'jours')} qui précèdent "
            f"la période (du {_fmt(since)} au {_fmt(start)}).",
        )
    learn_end = first + learning
    if learn_end >= end:
        return Baseline(
            kind="none",
            start=first,
            end=end,
            days=round((end - first).total_seconds() / 86400, 1),
            explanation=f"Historique insuffisant : la piste commence le {_fmt(first)}, moins de "
            f"{_n(settings.ANOMALY_LEARNING_DAYS, 'jour', 'jours')} avant la fin de la période ; les "
            "nouveaux postes et programmes ne sont pas signalés.",
        )
    return Baseline(
        kind="learning",
        start=first,
        end=learn_end,
        days=float(settings.ANOMALY_LEARNING_DAYS),
        explanation=f"Peu d'historique avant la période : les "
        f"{_n(settings.ANOMALY_LEARNING_DAYS, 'premier jour', 'premiers jours')} de la piste "
        f"(du {_fmt(first)} au {_fmt(learn_end)}) servent de référence ; un poste ou un programme est "
        "« nouveau » s'il apparaît après.",
    )


async def detect_anomalies(store: Store, *, start: datetime, end: datetime) -> list[Anomaly]:
    """Findings in [start, end), most severe first, then latest first (see `detect`)."""
    return (await detect(store, start=start, end=end)).findings


async def detect(store: Store, *, start: datetime, end: datetime, use_rollups: bool = True) -> Detection:
    """Findings in [start, end), most severe first, then latest first, with the baseline used.

    The history (ANOMALY_BASELINE_DAYS before the window, from local midnight) and the window are
    summarised per user and clock hour in one pass (from the hourly rollups when they can be trusted
    and `use_rollups`), cached per local day for the current audit version: a repeated or sliding
    window only reads the hours not seen yet. When the history holds
    less than ANOMALY_LEARNING_DAYS, the first days of the trail are the baseline (`_baseline`).
    """
    start, end = _utc(start), _utc(end)
    if start >= end:
        raise ValueError("La date de début doit précéder la date de fin.")
    q = _Queries(store, await store.audit_version())
    since_day = _local(start - timedelta(days=settings.ANOMALY_BASELINE_DAYS)).date()
    history_start = _local_midnight(since_day)
    failed, watched, (hours, pair_groups), *privileged = await asyncio.gather(
        q.aggregate(_failed_logons_pipeline(start, end)),
        q.aggregate(_watched_pipeline(start, end)),
        _summary(q, since_day, end, use_rollups=use_rollups),
        *(q.aggregate(_privileged_pipeline(a, start, end)) for a in PRIVILEGED_ACCOUNTS),
    )
    pairs = [
        {"_id": {"u": u, "host": host, "p": p}, "first": first, "last": last, "n": n}
        for (u, host, p), (first, last, n) in pair_groups.items()
    ]
    user_first: dict[str, datetime] = {}
    for p in pairs:
        u = p["_id"]["u"]
        user_first[u] = min(p["first"], user_first.get(u, p["first"]))
    baseline = _baseline(hours, start, end, history_start)
    cutoff = start if baseline.kind == "history" else (baseline.end or end)
    dml, off_hours, new_pairs = await asyncio.gather(
        asyncio.gather(
            *(q.aggregate(_mass_dml_pipeline(u, lo, hi)) for u, lo, hi in _mass_dml_spans(hours, start, end))
        ),
        _off_hours_findings(
            q,
            _off_hours_days(hours, start),
            watched,
            user_first,
            start=start,
            history_start=history_start,
            end=end,
        ),
        _new_pair_findings(q, pairs, start=cutoff),
    )
    findings: list[Anomaly] = []
    findings += _failed_logon_findings(failed[0] if failed else {})
    findings += _mass_dml_findings([b for bursts in dml for b in bursts])
    findings += _sensitive_findings(watched)
    findings += _volume_findings(_volume_rows(hours, start))
    findings += off_hours
    findings += new_pairs
    for account, rows in zip(PRIVILEGED_ACCOUNTS, privileged, strict=True):
        new_hosts = {a.userhost for a in new_pairs if a.dbusername == account}
        findings += _privileged_findings(account, rows, new_hosts)
    findings.sort(key=lambda a: (SEVERITY_RANK[a.severity], -a.start.timestamp()))
    return Detection(start=start, end=end, baseline=baseline, findings=findings)
