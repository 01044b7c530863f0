"""Scheduled reports: a report sent by e-mail every week or every month. Free of FastAPI.

A schedule (`report_schedules`) names a report of `reports.py` (kind, filters), a format, when
(weekly on a weekday, or monthly on a day, at a local hour of APP_TIMEZONE) and its recipients.
Each scheduled instant T opens a **period** (the ISO week or the month of T) and the report covers
the period that just ended: [T - 7 days, T) or [T - 1 month, T).

`run_due` is run by the alerts' schedule (`alerts.Scheduler`, under its MongoDB lease) every tick:

1. **Claim.** For each enabled schedule whose latest instant T has passed (and came after the
   schedule was made or its timing last changed), one insert of the run document whose `_id` is
   `<schedule id>:<period key>` in `report_runs`. The `_id` is unique: among all workers and ticks,
   exactly one insert succeeds (the others get a DuplicateKeyError), so a period is claimed once.
   The run document is the claim and the queue entry at once: a crash after the claim leaves a
   pending run that any worker sends later.
2. **Send.** Pending runs whose next attempt is due are taken one at a time with an atomic
   find_one_and_update that pushes their next attempt past a claim timeout (two workers never send
   the same one). The report is built by `reports.build` (the chat's compiler), rendered, and sent
   as an attachment through `notify.send_message` (aiosmtplib). A failed attempt is retried after
   `notify.backoff`, and after NOTIFY_MAX_ATTEMPTS the run is `failed` with its last error, shown on
   the schedule (`last_status`, `last_error`) and in its runs: never dropped silently.

An SMTP server that accepted the message just before the process died, with the `sent` status not
yet written, gets it again after the claim timeout: a report is never lost, at worst sent twice.
"""

import re
import uuid
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from typing import Any, Literal

from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

import notify
import reports
from config import settings
from database import Store

SCHEDULES = "report_schedules"
RUNS = "report_runs"
CLAIM_SECONDS = 600  # a run being sent is not taken by another worker before this
RUNS_SHOWN = 20

Frequency = Literal["weekly", "monthly"]
Format = Literal["pdf", "xlsx", "csv", "json"]
RunStatus = Literal["pending", "sent", "failed"]
WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
FREQUENCY_LABELS = {"weekly": "hebdomadaire", "monthly": "mensuel"}
MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
EMAIL = re.compile(r"^[^@\s<>,;\"']+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")
TIMING = ("frequency", "weekday", "day", "hour", "enabled")


class ScheduleError(ValueError):
    """The schedule cannot be saved or run as asked (French message)."""


class ScheduleNotFound(LookupError):
    """No schedule (or run) with that id (French message)."""


class RunNotRetryable(ValueError):
    """Only a run that failed for good can be retried (French message)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


# --------------------------------------------------------------------------- models


class _ScheduleFields(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    kind: str = Field(description="a report of GET /api/reports: activity, admin, failed_logins...")
    format: Format = "pdf"
    frequency: Frequency
    weekday: int | None = Field(default=None, ge=0, le=6, description="weekly: 0 = Monday … 6 = Sunday")
    day: int | None = Field(
        default=None, ge=1, le=31, description="monthly: day of the month (past its end: the last day)"
    )
    hour: int = Field(default=6, ge=0, le=23, description="local hour (APP_TIMEZONE)")
    recipients: list[str] = Field(min_length=1, max_length=50)
    dbusername: list[str] = Field(default_factory=list, max_length=100, description="report filter")
    object_schema: list[str] = Field(default_factory=list, max_length=100, description="report filter")
    objects: list[str] = Field(
        default_factory=list, max_length=50, description="watched_objects: SCHEMA.OBJECT"
    )
    enabled: bool = True


class ScheduleCreate(_ScheduleFields):
    """A report schedule as an admin writes it."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in reports.REPORTS:
            raise ValueError(f"rapport inconnu : « {value[:40]} » ; choix : {', '.join(reports.REPORTS)}")
        return value

    @field_validator("recipients")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        cleaned = [e.strip() for e in value]
        bad = [e for e in cleaned if len(e) > 254 or not EMAIL.match(e)]
        if bad:
            raise ValueError(f"adresse(s) e-mail invalide(s) : {', '.join(b[:60] for b in bad[:3])}")
        return list(dict.fromkeys(cleaned))

    @field_validator("dbusername", "object_schema", "objects")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        cleaned = [v.strip().upper() for v in value if v.strip()]
        if any(len(v) > 128 for v in cleaned):
            raise ValueError("au plus 128 caractères par nom")
        return list(dict.fromkeys(cleaned))

    @model_validator(mode="after")
    def _when(self) -> "ScheduleCreate":
        if self.frequency == "weekly":
            if self.weekday is None:
                raise ValueError("« weekday » (0 = lundi … 6 = dimanche) est obligatoire pour un envoi "
                                 "hebdomadaire")  # fmt: skip
            self.day = None
        else:
            if self.day is None:
                raise ValueError("« day » (1 à 31) est obligatoire pour un envoi mensuel")
            self.weekday = None
        return self


class ScheduleRun(BaseModel):
    """One sending of a scheduled report: its period, its window and what became of it."""

    id: str
    schedule_id: str
    period: str = Field(description="2025-W10, 2025-03, or manual-... for « send now »")
    start: datetime
    end: datetime
    status: RunStatus
    attempts: int
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    retried_by: str | None = Field(default=None, description="the admin who last retried it after it failed")
    retried_at: datetime | None = None
    recipients: list[str] = Field(default_factory=list, description="those the message went to")
    filename: str | None = None
    size: int | None = None
    created_at: datetime


class SchedulePublic(_ScheduleFields):
    """A report schedule with when it runs next and how its last run went."""

    id: str
    description: str
    next_run_at: datetime | None = None
    last_period: str | None = None
    last_run_at: datetime | None = None
    last_status: RunStatus | None = None
    last_error: str | None = None
    created_by: str | None = None
    created_at: datetime
    updated_at: datetime


class ScheduleDetail(SchedulePublic):
    runs: list[ScheduleRun] = Field(default_factory=list, description=f"the {RUNS_SHOWN} latest runs")


class RunSummary(BaseModel):
    """What one pass of the runner did."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0


# --------------------------------------------------------------------------- periods


def _local_at(d: date, hour: int) -> datetime:
    return datetime.combine(d, time(hour), tzinfo=settings.tz)


def _month_day(year: int, month: int, day: int) -> date:
    """`day` of the month, or its last day when the month is shorter."""
    following = date(year + month // 12, month % 12 + 1, 1)
    return date(year, month, min(day, (following - timedelta(days=1)).day))


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + n
    return index // 12, index % 12 + 1


def _instant(s: _ScheduleFields, year: int, month: int) -> datetime:
    assert s.day is not None
    return _local_at(_month_day(year, month, s.day), s.hour)


def latest_instant(s: _ScheduleFields, now: datetime) -> datetime:
    """The latest scheduled instant at or before `now` (aware, in APP_TIMEZONE)."""
    local = _utc(now).astimezone(settings.tz)
    if s.frequency == "weekly":
        assert s.weekday is not None
        d = local.date() - timedelta(days=(local.weekday() - s.weekday) % 7)
        at = _local_at(d, s.hour)
        return at if at <= local else _local_at(d - timedelta(days=7), s.hour)
    at = _instant(s, local.year, local.month)
    return at if at <= local else _instant(s, *_add_months(local.year, local.month, -1))


def next_instant(s: _ScheduleFields, now: datetime) -> datetime:
    """The first scheduled instant after `now`."""
    last = latest_instant(s, now)
    if s.frequency == "weekly":
        return _local_at(last.date() + timedelta(days=7), s.hour)
    return _instant(s, *_add_months(last.year, last.month, 1))


def period_key(s: _ScheduleFields, at: datetime) -> str:
    """The period an instant opens: its ISO week (2025-W10) or its month (2025-03)."""
    local = at.astimezone(settings.tz)
    if s.frequency == "weekly":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{local.year}-{local.month:02d}"


def _month_before(local: datetime, day: int) -> datetime:
    """The same clock time, a month before, on `day` (or the month's last day)."""
    year, month = _add_months(local.year, local.month, -1)
    return datetime.combine(
        _month_day(year, month, day), local.time().replace(tzinfo=None), tzinfo=settings.tz
    )


def window(s: _ScheduleFields, at: datetime) -> tuple[datetime, datetime]:
    """The report's window for the instant `at`: the week or the month that ends then."""
    local = at.astimezone(settings.tz)
    if s.frequency == "weekly":
        start = datetime.combine(local.date() - timedelta(days=7), local.time().replace(tzinfo=None),
                                 tzinfo=settings.tz)  # fmt: skip
    else:
        start = _month_before(local, s.day or local.day)
    return _utc(start), _utc(local)


def describe(s: _ScheduleFields) -> str:
    """« Chaque lundi à 6 h » / « Le 1er de chaque mois à 6 h »."""
    if s.frequency == "weekly":
        return f"Chaque {WEEKDAYS[s.weekday or 0]} à {s.hour} h"
    day = "1er" if s.day == 1 else str(s.day)
    last = " (ou le dernier jour)" if (s.day or 0) > 28 else ""
    return f"Le {day}{last} de chaque mois à {s.hour} h"


# --------------------------------------------------------------------------- storage


async def ensure_indexes(store: Store) -> None:
    await store[RUNS].create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
    await store[RUNS].create_index([("schedule_id", ASCENDING), ("created_at", DESCENDING)])
    await store[SCHEDULES].create_index("enabled")


def _fields(doc: dict[str, Any]) -> _ScheduleFields:
    """A stored schedule's own fields."""
    return _ScheduleFields.model_validate({k: v for k, v in doc.items() if k in _ScheduleFields.model_fields})


def _public(doc: dict[str, Any], now: datetime) -> SchedulePublic:
    fields = {k: v for k, v in doc.items() if k in SchedulePublic.model_fields}
    fields["id"] = str(doc["_id"])
    s = _fields(doc)
    fields["description"] = describe(s)
    fields["next_run_at"] = next_instant(s, now) if s.enabled else None
    return SchedulePublic.model_validate(fields)


def _run(doc: dict[str, Any]) -> ScheduleRun:
    fields = {k: v for k, v in doc.items() if k in ScheduleRun.model_fields}
    return ScheduleRun.model_validate({**fields, "id": str(doc["_id"])})


async def list_schedules(store: Store) -> list[SchedulePublic]:
    now = _now()
    docs = await store[SCHEDULES].find({}).sort("created_at", ASCENDING).to_list(None)
    return [_public(d, now) for d in docs]


async def _doc(store: Store, schedule_id: str) -> dict[str, Any]:
    doc = await store[SCHEDULES].find_one({"_id": schedule_id})
    if doc is None:
        raise ScheduleNotFound(f"Programmation de rapport introuvable : {schedule_id[:64]}.")
    return doc


async def get_schedule(store: Store, schedule_id: str) -> ScheduleDetail:
    doc = await _doc(store, schedule_id)
    runs = (
        await store[RUNS]
        .find({"schedule_id": schedule_id})
        .sort("created_at", DESCENDING)
        .limit(RUNS_SHOWN)
        .to_list(None)
    )
    public = _public(doc, _now())
    return ScheduleDetail(**public.model_dump(), runs=[_run(r) for r in runs])


def _check(body: ScheduleCreate) -> None:
    if body.kind == "watched_objects" and not body.objects and not settings.REPORT_WATCHED_OBJECTS:
        raise ScheduleError(
            "Aucun objet surveillé : indiquez « objects » (SCHEMA.OBJET) ou REPORT_WATCHED_OBJECTS."
        )


async def save_schedule(
    store: Store, body: ScheduleCreate, *, by: str, schedule_id: str | None = None
) -> SchedulePublic:
    """Create a schedule, or replace one. Its periods count from now: a new schedule, or one whose
    timing changed, sends nothing for an instant that passed before."""
    _check(body)
    now = _now()
    data = body.model_dump()
    if schedule_id is None:
        schedule_id = uuid.uuid4().hex[:16]
        await store[SCHEDULES].insert_one(
            {"_id": schedule_id, **data, "since": now, "created_by": by, "created_at": now, "updated_at": now}
        )
    else:
        old = await _doc(store, schedule_id)
        update = {**data, "updated_at": now}
        if any(old.get(k) != data[k] for k in TIMING):
            update["since"] = now
        await store[SCHEDULES].update_one({"_id": schedule_id}, {"$set": update})
    return _public(await _doc(store, schedule_id), now)


async def delete_schedule(store: Store, schedule_id: str) -> None:
    """Delete a schedule and its runs (a run being sent finishes, then finds no schedule)."""
    if (await store[SCHEDULES].delete_one({"_id": schedule_id})).deleted_count != 1:
        raise ScheduleNotFound(f"Programmation de rapport introuvable : {schedule_id[:64]}.")
    await store[RUNS].delete_many({"schedule_id": schedule_id})


# --------------------------------------------------------------------------- claiming and sending


def _new_run(run_id: str, schedule_id: str, period: str, start: datetime, end: datetime,
             now: datetime) -> dict[str, Any]:  # fmt: skip
    return {
        "_id": run_id, "schedule_id": schedule_id, "period": period, "start": start, "end": end,
        "status": "pending", "attempts": 0, "next_attempt_at": now, "last_error": None, "sent_at": None,
        "recipients": [], "filename": None, "size": None, "created_at": now,
    }  # fmt: skip


async def claim(store: Store, doc: dict[str, Any], now: datetime) -> str | None:
    """Claim the schedule's current period if it is due and unclaimed; the new run's id, or None.

    One insert of the run whose `_id` is `<schedule id>:<period key>`: exactly one caller, in any
    worker, inserts it; the others get a duplicate key."""
    s = _fields(doc)
    at = latest_instant(s, now)
    since = doc.get("since") or doc.get("created_at")
    if since is not None and at < _utc(since):
        return None  # the instant passed before the schedule existed (or its timing changed)
    period = period_key(s, at)
    if doc.get("last_period") == period:
        return None  # already claimed (cheap check; the upsert below is the one that counts)
    run_id = f"{doc['_id']}:{period}"
    start, end = window(s, at)
    try:
        # an insert on the unique `_id`: exactly one succeeds, in any engine (two concurrent upserts
        # of the same new document both reported an insert on the embedded store under load)
        await store[RUNS].insert_one(_new_run(run_id, str(doc["_id"]), period, start, end, now))
    except DuplicateKeyError:
        return None  # claimed already, or by another worker at the same moment
    await store[SCHEDULES].update_one({"_id": doc["_id"]}, {"$set": {"last_period": period}})
    return run_id


def _filename(kind: str, start: datetime, end: datetime, ext: str) -> str:
    tz = settings.tz
    return f"rapport-{kind}-{start.astimezone(tz):%Y%m%d}-{end.astimezone(tz):%Y%m%d}.{ext}"


async def render(store: Store, s: _ScheduleFields, start: datetime, end: datetime) -> tuple[bytes, str]:
    """The report over the window in the schedule's format: (content, file name)."""
    report = await reports.build(
        store, s.kind, start=start, end=end,
        filters={"dbusername": s.dbusername, "object_schema": s.object_schema}, objects=s.objects,
    )  # fmt: skip
    if s.format == "json":
        content = report.model_dump_json(indent=2).encode()
    else:
        content, _, _ = await reports.render(report, s.format)
    return content, _filename(s.kind, start, end, s.format)


def _local(dt: datetime) -> str:
    return dt.astimezone(settings.tz).strftime("%d/%m/%Y %H:%M")


def _message(
    s: _ScheduleFields, start: datetime, end: datetime, content: bytes, filename: str
) -> EmailMessage:
    title = reports.REPORTS[s.kind][0]
    message = EmailMessage()
    message["From"] = settings.SMTP_FROM
    message["To"] = ", ".join(s.recipients)
    frequency = FREQUENCY_LABELS[s.frequency]
    message["Subject"] = (
        f"[Audit Oracle] Rapport {frequency} : {title} ({_local(start)[:10]} – {_local(end)[:10]})"
    )
    filters = " ; ".join(
        f"{label} : {', '.join(values)}"
        for label, values in (("Comptes", s.dbusername), ("Schémas", s.object_schema), ("Objets", s.objects))
        if values
    )
    message.set_content(
        "\n".join(
            [
                f"Rapport « {title} » ({s.format.upper()} en pièce jointe).",
                f"Période : du {_local(start)} au {_local(end)} ({settings.APP_TIMEZONE}).",
                f"Filtres : {filters or 'aucun'}.",
                f"Programmation « {s.name} » : {describe(s).lower()}.",
            ]
        )
    )
    maintype, subtype = MEDIA_TYPES[s.format].split("/")
    message.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return message


async def _attempt(store: Store, run: dict[str, Any], now: datetime) -> RunStatus:
    """One attempt at sending a claimed run; its new status (pending: retried later)."""
    schedule = await store[SCHEDULES].find_one({"_id": run["schedule_id"]})
    attempts = run.get("attempts", 0) + 1
    retry = True
    try:
        if schedule is None:
            retry = False
            raise ScheduleNotFound("programmation supprimée")
        s = _fields(schedule)
        start, end = _utc(run["start"]), _utc(run["end"])
        try:
            content, filename = await render(store, s, start, end)
        except reports.ReportError:
            retry = False  # the same report fails the same way next time
            raise
        refused = await notify.send_message(_message(s, start, end, content, filename))
    except (notify.DeliveryError, reports.ReportError, ScheduleNotFound) as exc:
        error = str(exc)
    except Exception as exc:  # the store or a renderer: retried, and the runner carries on
        logger.opt(exception=exc).warning("report schedules: run {} failed", run["_id"])
        error = f"{type(exc).__name__}: {exc}"
    else:
        sent_to = [r for r in s.recipients if r not in refused]
        note = f"refusé par le serveur pour : {', '.join(sorted(refused))}" if refused else None
        await _finish(store, run, {"status": "sent", "attempts": attempts, "sent_at": now,
                                   "next_attempt_at": None, "last_error": note, "recipients": sent_to,
                                   "filename": filename, "size": len(content)}, now)  # fmt: skip
        return "sent"
    failed = not retry or attempts >= settings.NOTIFY_MAX_ATTEMPTS
    status: RunStatus = "failed" if failed else "pending"
    await _finish(store, run, {"status": status, "attempts": attempts, "last_error": error[:500],
                               "next_attempt_at": None if failed else now + notify.backoff(attempts)},
                  now)  # fmt: skip
    if failed:
        logger.warning("report schedules: run {} failed after {} attempt(s): {}", run["_id"], attempts, error)
    return status


async def _finish(store: Store, run: dict[str, Any], fields: dict[str, Any], now: datetime) -> None:
    await store[RUNS].update_one({"_id": run["_id"]}, {"$set": {**fields, "updated_at": now}})
    await store[SCHEDULES].update_one(
        {"_id": run["schedule_id"]},
        {"$set": {"last_run_at": now, "last_status": fields["status"], "last_error": fields["last_error"]}},
    )


async def run_due(store: Store, *, now: datetime | None = None, limit: int = 20) -> RunSummary:
    """Claim the periods that are due, then send the runs whose attempt is due (each claimed)."""
    now = now or _now()
    summary = RunSummary()
    for doc in await store[SCHEDULES].find({"enabled": True}).to_list(None):
        if await claim(store, doc, now):
            summary.claimed += 1
    for _ in range(limit):
        run = await store[RUNS].find_one_and_update(
            {"status": "pending", "next_attempt_at": {"$lte": now}},
            {"$set": {"next_attempt_at": now + timedelta(seconds=CLAIM_SECONDS)}},
            sort=[("next_attempt_at", ASCENDING)],
        )
        if run is None:
            break
        status = await _attempt(store, run, now)
        if status == "sent":
            summary.sent += 1
        elif status == "failed":
            summary.failed += 1
        else:
            summary.retried += 1
    return summary


async def send_now(store: Store, schedule_id: str, *, now: datetime | None = None) -> ScheduleRun:
    """Send the report of the period that ends now, at once (an admin tries a schedule). A failed
    attempt stays queued and is retried like a scheduled run."""
    now = now or _now()
    doc = await _doc(store, schedule_id)
    s = _fields(doc)
    local = _utc(now).astimezone(settings.tz)
    start = _utc(local - timedelta(days=7) if s.frequency == "weekly" else _month_before(local, local.day))
    run_id = f"{schedule_id}:manual-{uuid.uuid4().hex[:12]}"
    run = _new_run(run_id, schedule_id, run_id.split(":", 1)[1], start, _utc(now), now)
    run["next_attempt_at"] = now + timedelta(seconds=CLAIM_SECONDS)  # ours: the runner leaves it
    await store[RUNS].insert_one(run)
    await _attempt(store, run, now)
    stored = await store[RUNS].find_one({"_id": run_id})
    if stored is None:  # the schedule was deleted meanwhile
        raise ScheduleNotFound(f"Programmation de rapport introuvable : {schedule_id[:64]}.")
    return _run(stored)


async def retry_run(
    store: Store, schedule_id: str, run_id: str, *, by: str, now: datetime | None = None
) -> ScheduleRun:
    """Put a run that failed for good back in the queue and make one attempt at once (an admin
    retries it): it gets NOTIFY_MAX_ATTEMPTS attempts again, and a failure is retried like any run.
    The change from `failed` is atomic: two clicks at once send it once, the second one is refused."""
    now = now or _now()
    await _doc(store, schedule_id)
    run = await store[RUNS].find_one_and_update(
        {"_id": run_id, "schedule_id": schedule_id, "status": "failed"},
        {"$set": {"status": "pending", "attempts": 0, "retried_by": by, "retried_at": now,
                  "next_attempt_at": now + timedelta(seconds=CLAIM_SECONDS)}},  # ours: the runner leaves it
        return_document=ReturnDocument.AFTER,
    )  # fmt: skip
    if run is None:
        found = await store[RUNS].find_one({"_id": run_id, "schedule_id": schedule_id}, {"status": 1})
        if found is None:
            raise ScheduleNotFound(f"Envoi introuvable pour cette programmation : {run_id[:100]}.")
        state = {"sent": "a déjà été envoyé", "pending": "est déjà en attente d'un nouvel essai"}
        why = state.get(found["status"], "n'a pas échoué")
        raise RunNotRetryable(f"Seul un envoi en échec peut être relancé : celui-ci {why}.")
    await _attempt(store, run, now)
    stored = await store[RUNS].find_one({"_id": run_id})
    if stored is None:  # the schedule was deleted meanwhile
        raise ScheduleNotFound(f"Programmation de rapport introuvable : {schedule_id[:64]}.")
    return _run(stored)
