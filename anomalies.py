"""Anomaly detection on the audit trail, computed in the store.

`detect_anomalies(store, start=, end=)` runs a few aggregations concurrently (anomaly_queries.py:
the pipelines, the hourly history summary and their cache) and turns their (small, already
aggregated) results into findings with a type, a severity, a French title and explanation, the
user and host concerned, the time window and the evidence:

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
import hashlib
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from anomaly_queries import (
    _OVERRIDES,
    AUDIT_POLICY_ACTIONS,
    CACHE,
    DESTRUCTIVE_ACTIONS,
    _failed_logons_pipeline,
    _local,
    _local_midnight,
    _mass_dml_pipeline,
    _mass_dml_spans,
    _off_hours_days,
    _off_hours_match,
    _privileged_pipeline,
    _Queries,
    _refine,
    _sample,
    _summary,
    _utc,
    _volume_rows,
    _watched_pipeline,
    settings,
)
from database import Store
from french import plural

TUNABLE = (
    "ANOMALY_FAILED_LOGON_THRESHOLD", "ANOMALY_FAILED_LOGON_WINDOW_MINUTES", "ANOMALY_MAD_THRESHOLD",
    "ANOMALY_MIN_HOURLY_VOLUME", "ANOMALY_MASS_DML_THRESHOLD", "ANOMALY_MASS_DML_WINDOW_MINUTES",
    "ANOMALY_BASELINE_DAYS", "ANOMALY_LEARNING_DAYS", "ANOMALY_ROUTINE_NIGHTS_RATIO",
    "ANOMALY_NIGHT_START_HOUR", "ANOMALY_NIGHT_END_HOUR",
)  # fmt: skip


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

POWERFUL_GRANT = re.compile(
    r"\b(DBA|SYSDBA|SYSOPER|SYSBACKUP|SYSDG|SYSKM|AUDIT_ADMIN|AUDIT_VIEWER|IMP_FULL_DATABASE|"
    r"EXP_FULL_DATABASE|DATAPUMP_\w+|ALL\s+PRIVILEGES|BECOME\s+USER|ANY\s+\w+)\b",
    re.IGNORECASE,
)
POWERFUL_SYSTEM_PRIVILEGES = {"GRANT ANY ROLE", "GRANT ANY PRIVILEGE"}
TEMPORARY_NAME = re.compile(r"^(TMP|TEMP|BKP|BAK)_|_(TMP|TEMP)$", re.IGNORECASE)

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


def clear_cache() -> None:
    """Forget every cached result (the bench measures cold calls with it)."""
    CACHE.clear()


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
