"""Continuous detection: findings of the anomaly detectors become alerts in MongoDB. Free of FastAPI.

`run_detection(store)` runs the detectors on what changed since the last run, in three steps:

1. Which hours changed. The audit events of the last ALERTS_SCAN_DAYS are counted per clock hour in
   the store; the counts are kept in `alert_hours` (per audit collection). An hour whose count differs
   from the kept one holds new events, whatever their age in the trail: an import of last week's
   export is seen as well as an Oracle sync of the last minutes.
2. The detectors run over the span of the changed hours (padded by the longest burst window), with
   their usual baseline before it, once with the global settings and once per policy with its own
   parameters; only the findings that touch a changed hour are kept.
3. Each finding that a policy lets through (or, with no policy, any finding of ALERTS_MIN_SEVERITY or
   more) is an alert whose `_id` is its fingerprint (type, user, host, session, hour): the same
   finding found again by a later run, or by another worker, is the same alert. A new alert gets its
   evidence (the ids of the events behind it) and one delivery per notification target
   (`notify.py` sends them).

Runs are serialised across workers and replicas by a lease in MongoDB (`Lease`): an atomic
find_one_and_update on one document with an expiry, so a crashed holder frees it when it expires.
The schedule (`Scheduler`) uses another lease: one process runs it, with the jobs other areas add
to it (the scheduled reports of `report_schedules.py`).
"""

import asyncio
import contextlib
import hashlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal

from loguru import logger
from pydantic import BaseModel, Field, field_validator
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

import anomalies
from anomalies import SEVERITY_RANK, Anomaly
from anomaly_queries import WATCHED_ACTIONS
from config import settings
from database import Store
from rollups import DML_ACTIONS

ALERTS = "alerts"
POLICIES = "alert_policies"
DELIVERIES = "alert_deliveries"
HOURS = "alert_hours"
LEASES = "leases"
DETECT_LEASE = "alerts-detection"
SCHEDULE_LEASE = "alerts-schedule"
MAX_EVIDENCE_IDS = 200
HOUR = timedelta(hours=1)

Severity = Literal["low", "medium", "high"]
Status = Literal["new", "acknowledged", "closed"]
STATUS_LABELS = {"new": "nouvelle", "acknowledged": "prise en compte", "closed": "close"}
SEVERITY_LABELS = {"high": "élevée", "medium": "moyenne", "low": "faible"}
DETECTORS = tuple(anomalies.TYPE_LABELS)
# Policy parameters: the lower-case names of the tunable thresholds (failed_logon_threshold, ...).
PARAMETERS = {name.removeprefix("ANOMALY_").lower(): name for name in anomalies.TUNABLE}


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


# --------------------------------------------------------------------------- lease


class Lease:
    """A named lease in MongoDB held by one process at a time until it expires or is released.

    `acquire` is one atomic find_one_and_update: it takes the lease when it is free, expired or
    already ours (and then extends it). Two processes that find no lease document both try to
    insert it; the unique `_id` lets one win.
    """

    def __init__(self, store: Store, name: str, *, ttl_seconds: float, holder: str | None = None) -> None:
        self.store = store
        self.name = name
        self.ttl = ttl_seconds
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    @property
    def _leases(self) -> Any:
        return self.store[LEASES]

    async def acquire(self, now: datetime | None = None) -> bool:
        now = now or _now()
        try:
            doc = await self._leases.find_one_and_update(
                {"_id": self.name, "$or": [{"expires": {"$lte": now}}, {"holder": self.holder}]},
                {"$set": {"holder": self.holder, "expires": now + timedelta(seconds=self.ttl), "at": now}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return False  # held by another process
        return doc is not None and doc.get("holder") == self.holder

    async def release(self) -> None:
        await self._leases.update_one(
            {"_id": self.name, "holder": self.holder}, {"$set": {"expires": datetime.fromtimestamp(0, UTC)}}
        )

    async def wait(self, seconds: float, poll: float = 0.2) -> bool:
        """Acquire, waiting up to `seconds` for the current holder to release it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            if await self.acquire():
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(poll)


# --------------------------------------------------------------------------- policies


class QuietHours(BaseModel):
    """Local hours [start, end) during which notifications wait (the alert is still raised)."""

    start: int = Field(ge=0, le=23)
    end: int = Field(ge=0, le=23)

    def holds(self, at: datetime) -> bool:
        hour = _utc(at).astimezone(settings.tz).hour
        if self.start <= self.end:
            return self.start <= hour < self.end
        return hour >= self.start or hour < self.end

    def ends_after(self, at: datetime) -> datetime:
        """The first instant after `at` outside the quiet hours."""
        local = _utc(at).astimezone(settings.tz)
        candidate = datetime.combine(local.date(), time(self.end), tzinfo=settings.tz)
        if candidate <= local:
            candidate += timedelta(days=1)
        return candidate.astimezone(UTC)


class PolicyIn(BaseModel):
    """An alert policy as an admin writes it."""

    name: str = Field(min_length=1, max_length=100)
    enabled: bool = True
    detectors: list[str] | None = Field(default=None, description="detector types; null = all")
    min_severity: Severity = "medium"
    watch_users: list[str] = Field(default_factory=list, description="only findings about these users")
    ignore_users: list[str] = Field(default_factory=list)
    watch_objects: list[str] = Field(default_factory=list, description="SCHEMA.OBJECT or OBJECT")
    ignore_objects: list[str] = Field(default_factory=list)
    quiet_hours: QuietHours | None = None
    parameters: dict[str, float] = Field(
        default_factory=dict, description="thresholds, e.g. failed_logon_threshold"
    )
    webhooks: list[str] = Field(default_factory=list, max_length=10)
    emails: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("detectors")
    @classmethod
    def _known_detectors(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        unknown = [d for d in value if d not in DETECTORS]
        if unknown:
            raise ValueError(
                f"détecteur(s) inconnu(s) : {', '.join(unknown)} ; choix : {', '.join(DETECTORS)}"
            )
        return value

    @field_validator("parameters")
    @classmethod
    def _known_parameters(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = [k for k in value if k.lower() not in PARAMETERS]
        if unknown:
            raise ValueError(
                f"paramètre(s) inconnu(s) : {', '.join(unknown)} ; choix : {', '.join(PARAMETERS)}"
            )
        bad = [k for k, v in value.items() if v <= 0]
        if bad:
            raise ValueError(f"paramètre(s) à valeur positive attendue : {', '.join(bad)}")
        return {k.lower(): v for k, v in value.items()}

    @field_validator("webhooks")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        bad = [u for u in value if not u.startswith(("http://", "https://")) or len(u) > 2000]
        if bad:
            raise ValueError(f"adresse(s) de webhook invalide(s) : {', '.join(bad[:3])}")
        return value

    @field_validator("emails")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        bad = [e for e in value if "@" not in e or any(c.isspace() for c in e) or len(e) > 254]
        if bad:
            raise ValueError(f"adresse(s) e-mail invalide(s) : {', '.join(bad[:3])}")
        return value

    @field_validator("watch_users", "ignore_users", "watch_objects", "ignore_objects")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [v.strip().upper() for v in value if v.strip()]

    def overrides(self) -> dict[str, Any]:
        """The policy's parameters as ANOMALY_* settings (whole numbers stay integers)."""
        out: dict[str, Any] = {}
        for key, value in self.parameters.items():
            name = PARAMETERS[key]
            out[name] = int(value) if isinstance(getattr(settings, name), int) else float(value)
        return out


class Policy(PolicyIn):
    id: str
    created_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


def default_policy() -> Policy:
    """With no policy stored: every detector from ALERTS_MIN_SEVERITY, notified to the global targets."""
    return Policy(id="default", name="Par défaut", min_severity=settings.ALERTS_MIN_SEVERITY)


def objects_of(a: Anomaly) -> list[str]:
    """SCHEMA.OBJECT names a finding is about."""
    names: list[str] = []
    ev = a.evidence
    items = [
        x for key in ("by_action_and_object", "actions", "changes") if isinstance(x := ev.get(key), list)
    ]
    for item in (i for group in items for i in group):
        if not isinstance(item, dict):
            continue
        schema = item.get("object_schema") or item.get("s")
        name = item.get("object_name") or item.get("o")
        if name:
            names.append(f"{schema}.{name}" if schema else str(name))
    for sample in ev.get("samples", []):
        if isinstance(sample, dict) and sample.get("object_name"):
            schema = sample.get("object_schema")
            names.append(f"{schema}.{sample['object_name']}" if schema else str(sample["object_name"]))
    return sorted(set(names))


def users_of(a: Anomaly) -> list[str]:
    return sorted({u for u in (a.dbusername, *a.evidence.get("users", [])) if u})


def hosts_of(a: Anomaly) -> list[str]:
    return sorted({h for h in (a.userhost, *a.evidence.get("hosts", [])) if h})


def _object_matches(names: list[str], wanted: list[str]) -> bool:
    for name in names:
        upper = name.upper()
        short = upper.rsplit(".", 1)[-1]
        if upper in wanted or short in wanted:
            return True
    return False


def policy_matches(policy: PolicyIn, a: Anomaly) -> bool:
    """Whether the policy raises an alert for this finding."""
    if not policy.enabled:
        return False
    if policy.detectors is not None and a.type not in policy.detectors:
        return False
    if SEVERITY_RANK[a.severity] > SEVERITY_RANK[policy.min_severity]:
        return False
    users = [u.upper() for u in users_of(a)]
    if policy.watch_users and not set(users) & set(policy.watch_users):
        return False
    if policy.ignore_users and users and set(users) <= set(policy.ignore_users):
        return False
    objects = objects_of(a)
    if policy.watch_objects and not _object_matches(objects, policy.watch_objects):
        return False
    return not (
        policy.ignore_objects
        and objects
        and all(_object_matches([o], policy.ignore_objects) for o in objects)
    )


async def list_policies(store: Store) -> list[Policy]:
    docs = await store[POLICIES].find({}).sort("created_at", ASCENDING).to_list(None)
    return [Policy(id=str(d.pop("_id")), **d) for d in docs]


async def get_policy(store: Store, policy_id: str) -> Policy | None:
    doc = await store[POLICIES].find_one({"_id": policy_id})
    return Policy(id=str(doc.pop("_id")), **doc) if doc else None


async def save_policy(store: Store, body: PolicyIn, *, by: str, policy_id: str | None = None) -> Policy:
    now = _now()
    data = body.model_dump()
    if policy_id is None:
        policy_id = uuid.uuid4().hex[:16]
        await store[POLICIES].insert_one({"_id": policy_id, **data, "created_by": by, "created_at": now,
                                          "updated_at": now})  # fmt: skip
    else:
        result = await store[POLICIES].update_one({"_id": policy_id}, {"$set": {**data, "updated_at": now}})
        if not result.matched_count:
            raise KeyError(policy_id)
    policy = await get_policy(store, policy_id)
    assert policy is not None
    return policy


async def delete_policy(store: Store, policy_id: str) -> bool:
    return (await store[POLICIES].delete_one({"_id": policy_id})).deleted_count == 1


# --------------------------------------------------------------------------- alerts


class Comment(BaseModel):
    by: str
    at: datetime
    text: str


class StatusChange(BaseModel):
    status: Status
    by: str
    at: datetime


class Delivery(BaseModel):
    id: str
    channel: Literal["webhook", "email"]
    target: str
    status: Literal["pending", "sent", "failed"]
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    sent_at: datetime | None = None


class Alert(BaseModel):
    """One finding raised as an alert: what, how serious, who, where, when, the evidence and its life."""

    id: str
    fingerprint: str
    type: str
    type_label: str
    severity: Severity
    title: str
    explanation: str
    users: list[str]
    hosts: list[str]
    objects: list[str]
    start: datetime
    end: datetime
    count: int
    event_ids: list[str]
    event_count: int
    evidence: dict[str, Any]
    status: Status
    status_by: str | None = None
    status_at: datetime | None = None
    history: list[StatusChange] = Field(default_factory=list)
    comments: list[Comment] = Field(default_factory=list)
    policies: list[str]
    created_at: datetime
    updated_at: datetime
    deliveries: list[Delivery] = Field(default_factory=list)


def fingerprint(a: Anomaly) -> str:
    """The same finding found by two runs (windows cut differently, or two workers) has one print:
    its type, user(s), host(s), session, and the clock hour it starts in."""
    session = a.evidence.get("session_id")
    hour = _utc(a.start).replace(minute=0, second=0, microsecond=0)
    key = "|".join(
        str(x) for x in (a.type, ",".join(users_of(a)), ",".join(hosts_of(a)), session, hour.isoformat())
    )
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def _evidence_match(a: Anomaly) -> dict[str, Any]:
    """The events behind a finding, as a store query."""
    match: dict[str, Any] = {"event_timestamp": {"$gte": _utc(a.start), "$lte": _utc(a.end)}}
    users, hosts = users_of(a), hosts_of(a)
    if a.type == "failed_logon_burst":
        match.update(action_name="LOGON", return_code={"$ne": 0})
        either = []
        if users:
            either.append({"dbusername": {"$in": users}})
        if hosts:
            either.append({"userhost": {"$in": hosts}})
        if either:
            match["$or"] = either
        return match
    if users:
        match["dbusername"] = {"$in": users}
    if a.type == "mass_dml":
        match["action_name"] = {"$in": list(DML_ACTIONS)}
    elif a.type == "sensitive_action":
        match["action_name"] = {"$in": list(WATCHED_ACTIONS)}
        if a.evidence.get("session_id") is not None:
            match["session_id"] = a.evidence["session_id"]
    elif a.type in ("new_host_or_program", "privileged_account") and a.userhost:
        match["userhost"] = a.userhost
    if a.type == "volume_spike" and a.end > a.start:
        match["event_timestamp"]["$lt"] = match["event_timestamp"].pop("$lte")
    return match


async def _evidence(store: Store, a: Anomaly) -> tuple[list[str], int]:
    """Ids of the events behind a finding (the first MAX_EVIDENCE_IDS) and how many there are."""
    match = _evidence_match(a)
    docs = await store.aggregate(
        [
            {"$match": match},
            {"$sort": {"event_timestamp": 1}},
            {"$facet": {"ids": [{"$limit": MAX_EVIDENCE_IDS}, {"$project": {"_id": 1}}],
                        "n": [{"$count": "n"}]}},
        ]
    )  # fmt: skip
    doc = (docs or [{}])[0]
    ids = [str(d["_id"]) for d in doc.get("ids", [])]
    n = (doc.get("n") or [{"n": 0}])[0]["n"]
    return ids, n


def _alert(doc: dict[str, Any], deliveries: list[dict[str, Any]] | None = None) -> Alert:
    doc = dict(doc)
    doc["id"] = str(doc.pop("_id"))
    doc["deliveries"] = [
        Delivery(id=str(d["_id"]), **{k: v for k, v in d.items() if k in Delivery.model_fields and k != "id"})
        for d in deliveries or []
    ]
    for key in ("start", "end", "created_at", "updated_at", "status_at"):
        if isinstance(doc.get(key), datetime):
            doc[key] = _utc(doc[key])
    return Alert(**doc)


async def ensure_indexes(store: Store) -> None:
    await store[ALERTS].create_index([("created_at", DESCENDING)])
    await store[ALERTS].create_index([("status", ASCENDING), ("severity", ASCENDING)])
    await store[ALERTS].create_index("users")
    await store[DELIVERIES].create_index(
        [("alert_id", ASCENDING), ("channel", ASCENDING), ("target", ASCENDING)], unique=True
    )
    await store[DELIVERIES].create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
    await store[HOURS].create_index([("collection", ASCENDING), ("hour", ASCENDING)], unique=True)


class AlertQuery(BaseModel):
    status: list[Status] = Field(default_factory=list)
    min_severity: Severity | None = None
    types: list[str] = Field(default_factory=list)
    user: str | None = None
    host: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int = 50
    offset: int = 0


async def list_alerts(store: Store, q: AlertQuery) -> tuple[list[Alert], int]:
    """Alerts matching the filters, newest first, and how many match."""
    match: dict[str, Any] = {}
    if q.status:
        match["status"] = {"$in": list(q.status)}
    if q.min_severity:
        match["severity"] = {
            "$in": [s for s, r in SEVERITY_RANK.items() if r <= SEVERITY_RANK[q.min_severity]]
        }
    if q.types:
        match["type"] = {"$in": q.types}
    if q.user:
        match["users"] = q.user.upper()
    if q.host:
        match["hosts"] = q.host
    if q.start or q.end:
        match["start"] = {}
        if q.start:
            match["end"] = {"$gte": q.start}
        if q.end:
            match["start"]["$lt"] = q.end
        if not match["start"]:
            del match["start"]
    total = await store[ALERTS].count_documents(match)
    docs = (
        await store[ALERTS]
        .find(match, {"evidence": 0})
        .sort([("created_at", DESCENDING), ("start", DESCENDING)])
        .skip(q.offset)
        .limit(q.limit)
        .to_list(None)
    )
    return [_alert({**d, "evidence": {}}) for d in docs], total


async def get_alert(store: Store, alert_id: str) -> Alert | None:
    doc = await store[ALERTS].find_one({"_id": alert_id})
    if doc is None:
        return None
    deliveries = await store[DELIVERIES].find({"alert_id": alert_id}).sort("created_at", 1).to_list(None)
    return _alert(doc, deliveries)


async def set_status(
    store: Store, alert_id: str, status: Status, *, by: str, comment: str | None = None
) -> Alert | None:
    now = _now()
    update: dict[str, Any] = {
        "$set": {"status": status, "status_by": by, "status_at": now, "updated_at": now},
        "$push": {"history": {"status": status, "by": by, "at": now}},
    }
    doc = await store[ALERTS].find_one_and_update({"_id": alert_id}, update)
    if doc is None:
        return None
    if comment:
        await add_comment(store, alert_id, comment, by=by)
    return await get_alert(store, alert_id)


async def add_comment(store: Store, alert_id: str, text: str, *, by: str) -> Alert | None:
    now = _now()
    doc = await store[ALERTS].find_one_and_update(
        {"_id": alert_id},
        {"$push": {"comments": {"by": by, "at": now, "text": text}}, "$set": {"updated_at": now}},
    )
    return None if doc is None else await get_alert(store, alert_id)


# --------------------------------------------------------------------------- incremental detection


class RunSummary(BaseModel):
    """What one detection run did."""

    ran: bool = True
    changed_hours: int = 0
    start: datetime | None = None
    end: datetime | None = None
    findings: int = 0
    alerts_created: int = 0
    alerts_updated: int = 0
    deliveries: int = 0
    alert_ids: list[str] = Field(default_factory=list)
    reason: str | None = None


async def _hour_counts(store: Store, since: datetime) -> dict[datetime, int]:
    docs = await store.aggregate(
        [
            {"$match": {"event_timestamp": {"$gte": since}}},
            {
                "$group": {
                    "_id": {"$dateTrunc": {"date": "$event_timestamp", "unit": "hour"}},
                    "n": {"$sum": 1},
                }
            },
        ]
    )
    return {_utc(d["_id"]): int(d["n"]) for d in docs if d["_id"] is not None}


async def changed_hours(store: Store, now: datetime) -> tuple[list[datetime], dict[datetime, int]]:
    """Clock hours of the last ALERTS_SCAN_DAYS whose event count changed since the last run."""
    since = (now - timedelta(days=settings.ALERTS_SCAN_DAYS)).replace(minute=0, second=0, microsecond=0)
    counts = await _hour_counts(store, since)
    kept_docs = (
        await store[HOURS].find({"collection": store.audit_name, "hour": {"$gte": since}}).to_list(None)
    )
    kept = {_utc(d["hour"]): int(d["n"]) for d in kept_docs}
    changed = sorted(h for h in set(counts) | set(kept) if counts.get(h, 0) != kept.get(h, 0))
    return changed, counts


async def _remember(store: Store, hours: list[datetime], counts: dict[datetime, int]) -> None:
    for h in hours:
        await store[HOURS].update_one(
            {"collection": store.audit_name, "hour": h},
            {"$set": {"n": counts.get(h, 0), "at": _now()}},
            upsert=True,
        )


def _touches(a: Anomaly, hours: set[datetime], pad: timedelta) -> bool:
    first = (_utc(a.start) - pad).replace(minute=0, second=0, microsecond=0)
    last = _utc(a.end) + pad
    h = first
    while h <= last:
        if h in hours:
            return True
        h += HOUR
    return False


def _targets(policies: list[Policy]) -> dict[str, list[tuple[str, str, QuietHours | None]]]:
    """Per policy id: its (channel, target, quiet hours); the global targets go with every alert."""
    out: dict[str, list[tuple[str, str, QuietHours | None]]] = {}
    for p in policies:
        out[p.id] = [("webhook", u, p.quiet_hours) for u in p.webhooks] + [
            ("email", e, p.quiet_hours) for e in p.emails
        ]
    return out


def global_targets() -> list[tuple[str, str, QuietHours | None]]:
    targets: list[tuple[str, str, QuietHours | None]] = [
        ("webhook", u, None) for u in settings.ALERT_WEBHOOK_URLS
    ]
    return targets + [("email", e, None) for e in settings.ALERT_EMAIL_TO]


async def _raise(
    store: Store, a: Anomaly, policies: list[Policy], targets: dict, now: datetime
) -> tuple[str, bool, int]:
    """Insert the alert unless its fingerprint is known; (id, created, deliveries queued)."""
    fp = fingerprint(a)
    existing = await store[ALERTS].find_one({"_id": fp}, {"severity": 1, "policies": 1})
    if existing is not None:
        update: dict[str, Any] = {"$addToSet": {"policies": {"$each": [p.id for p in policies]}}}
        if SEVERITY_RANK[a.severity] < SEVERITY_RANK[existing["severity"]]:
            update["$set"] = {
                "severity": a.severity,
                "title": a.title,
                "explanation": a.explanation,
                "updated_at": now,
            }
        await store[ALERTS].update_one({"_id": fp}, update)
        return fp, False, 0
    ids, n = await _evidence(store, a)
    doc = {
        "_id": fp,
        "fingerprint": fp,
        "type": a.type,
        "type_label": anomalies.TYPE_LABELS.get(a.type, a.type),
        "severity": a.severity,
        "title": a.title,
        "explanation": a.explanation,
        "users": users_of(a),
        "hosts": hosts_of(a),
        "objects": objects_of(a),
        "start": _utc(a.start),
        "end": _utc(a.end),
        "count": a.count,
        "event_ids": ids,
        "event_count": n,
        "evidence": a.model_dump(mode="json")["evidence"],
        "status": "new",
        "status_by": None,
        "status_at": None,
        "history": [],
        "comments": [],
        "policies": [p.id for p in policies],
        "created_at": now,
        "updated_at": now,
    }
    try:
        await store[ALERTS].insert_one(doc)
    except DuplicateKeyError:
        return fp, False, 0  # raised at the same moment by another worker
    chosen: dict[tuple[str, str], QuietHours | None] = {}
    for p in policies:
        for channel, target, quiet in targets.get(p.id, []):
            chosen.setdefault((channel, target), quiet)
    for channel, target, quiet in global_targets():
        chosen.setdefault((channel, target), quiet)
    queued = 0
    for (channel, target), quiet in chosen.items():
        not_before = quiet.ends_after(now) if quiet is not None and quiet.holds(now) else now
        try:
            await store[DELIVERIES].insert_one(
                {
                    "_id": uuid.uuid4().hex,
                    "alert_id": fp,
                    "channel": channel,
                    "target": target,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": not_before,
                    "deferred": not_before > now,
                    "last_error": None,
                    "sent_at": None,
                    "created_at": now,
                }
            )
            queued += 1
        except DuplicateKeyError:
            pass
    return fp, True, queued


async def run_detection(
    store: Store, *, now: datetime | None = None, wait_seconds: float = 120
) -> RunSummary:
    """Run the detectors on the hours that changed since the last run and raise their alerts.

    Serialised across processes by a lease: a run waits (up to `wait_seconds`) for the one in
    progress, then sees what is left to do.
    """
    now = now or _now()
    lease = Lease(store, f"{DETECT_LEASE}:{store.audit_name}", ttl_seconds=600)
    if not await lease.wait(wait_seconds):
        return RunSummary(ran=False, reason="Une détection est déjà en cours dans un autre processus.")
    try:
        return await _run(store, now)
    finally:
        await lease.release()


async def _run(store: Store, now: datetime) -> RunSummary:
    changed, counts = await changed_hours(store, now)
    if not changed:
        return RunSummary(reason="Aucun événement nouveau depuis la dernière détection.")
    stored = await list_policies(store)
    policies = [p for p in stored if p.enabled] if stored else [default_policy()]
    pad = (
        timedelta(
            minutes=max(
                settings.ANOMALY_FAILED_LOGON_WINDOW_MINUTES, settings.ANOMALY_MASS_DML_WINDOW_MINUTES
            )
        )
        + HOUR
    )
    start = changed[0] - pad
    end = min(max(now, changed[-1] + HOUR), changed[-1] + HOUR + pad)
    hours = set(changed)
    # One detector run per distinct parameter set (the global settings, and each policy's own).
    groups: dict[tuple, list[Policy]] = {}
    for p in policies:
        groups.setdefault(tuple(sorted(p.overrides().items())), []).append(p)
    per_finding: dict[str, tuple[Anomaly, list[Policy]]] = {}
    total = 0
    for params, group in groups.items():
        with anomalies.parameters(dict(params)):
            found = await anomalies.detect_anomalies(store, start=start, end=end)
        found = [a for a in found if _touches(a, hours, pad - HOUR)]
        total += len(found)
        for a in found:
            matched = [p for p in group if policy_matches(p, a)]
            if matched:
                fp = fingerprint(a)
                kept = per_finding.get(fp)
                if kept is None or SEVERITY_RANK[a.severity] < SEVERITY_RANK[kept[0].severity]:
                    per_finding[fp] = (a, (kept[1] if kept else []) + matched)
                else:
                    kept[1].extend(matched)
    targets = _targets(policies)
    summary = RunSummary(changed_hours=len(changed), start=start, end=end, findings=total)
    for a, matched in per_finding.values():
        fp, created, queued = await _raise(store, a, matched, targets, now)
        if created:
            summary.alerts_created += 1
            summary.alert_ids.append(fp)
            summary.deliveries += queued
        else:
            summary.alerts_updated += 1
    await _remember(store, changed, counts)
    if summary.alerts_created:
        logger.info(
            "alerts: {} new alert(s), {} notification(s) queued", summary.alerts_created, summary.deliveries
        )
    return summary


# --------------------------------------------------------------------------- schedule


class Scheduler:
    """The periodic work, run by the one process that holds the schedule lease: deliver the due
    notifications and run the added jobs (the scheduled reports) every tick; every
    ALERTS_SCHEDULE_MINUTES, sync Oracle (when configured) and detect."""

    def __init__(
        self,
        store: Store,
        *,
        tick_seconds: float,
        every_minutes: float,
        sync: Callable[[], Awaitable[Any]] | None = None,
        deliver: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self.store = store
        self.tick = tick_seconds
        self.every = timedelta(minutes=every_minutes) if every_minutes > 0 else None
        self.sync = sync
        self.deliver = deliver
        self.lease = Lease(store, SCHEDULE_LEASE, ttl_seconds=max(3 * tick_seconds, 30))
        self.task: asyncio.Task | None = None
        self.runs = 0
        self.jobs: dict[str, Callable[[], Awaitable[Any]]] = {}

    def add_job(self, name: str, job: Callable[[], Awaitable[Any]]) -> None:
        """Run `job` every tick, under the schedule lease, after the notifications."""
        self.jobs[name] = job

    async def _due(self, now: datetime) -> bool:
        if self.every is None:
            return False
        doc = await self.store.meta.find_one({"_id": "alerts-schedule"})
        last = _utc(doc["last_run"]) if doc and doc.get("last_run") else None
        return last is None or now - last >= self.every

    async def step(self) -> bool:
        """One tick; whether this process held the schedule."""
        now = _now()
        if not await self.lease.acquire(now):
            return False
        if await self._due(now):
            await self.store.meta.update_one(
                {"_id": "alerts-schedule"}, {"$set": {"last_run": now}}, upsert=True
            )
            if self.sync is not None:
                try:
                    await self.sync()
                except Exception as exc:  # Oracle down: detect what is there, try again next time
                    logger.warning("alerts: scheduled Oracle sync failed: {}", exc)
            await run_detection(self.store)
            self.runs += 1
        if self.deliver is not None:
            await self.deliver()
        for name, job in self.jobs.items():
            try:
                await job()
            except Exception as exc:  # one failed job does not hold the others back
                logger.opt(exception=exc).warning("schedule: job {} failed", name)
        return True

    async def _loop(self) -> None:
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except PyMongoError as exc:  # the store busy or away for a while: the next tick tries again
                logger.warning("alerts: scheduled run skipped, store unavailable: {}", exc)
            except Exception as exc:  # the schedule must outlive one failed run
                logger.opt(exception=exc).warning("alerts: scheduled run failed")
            await asyncio.sleep(self.tick)

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop(), name="alerts-schedule")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        with contextlib.suppress(Exception):
            await self.lease.release()
