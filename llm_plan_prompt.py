"""The words given to the model by llm_plan.py: the plan's guide, the audit columns, worked examples.

Data, like understand_lexicon.py for the rules. The examples are valid plans (tests/test_llm_plan.py);
change PROMPT_VERSION in llm_plan.py with this text, since cached replies are keyed on it.
"""

import json
from typing import Any

COLUMNS: dict[str, str] = {
    "dbusername": "database user (account) who acted",
    "os_username": "operating-system user of the client",
    "userhost": "client machine (host)",
    "terminal": "client terminal",
    "client_program_name": "client program (sqlplus, SQL Developer, JDBC Thin Client, Toad...)",
    "action_name": "audited operation: SELECT, INSERT, UPDATE, DELETE, LOGON, LOGOFF, CREATE TABLE, "
    "DROP TABLE, GRANT, REVOKE, ALTER USER...",
    "object_schema": "schema (owner) of the object acted on",
    "object_name": "object acted on (table, view, procedure...)",
    "authentication_type": "how the session authenticated",
    "unified_audit_policies": "audit policies that recorded the event",
    "system_privilege_used": "system privilege used (CREATE ANY TABLE, DBA...)",
    "return_code": "Oracle error number, 0 = success (1017 wrong password, 1031 insufficient "
    "privileges, 942 table or view does not exist)",
    "session_id": "audit session id (one login session)",
    "sql_text": "the SQL statement (prefer filters.sql_contains for words in it)",
    "instance_id": "database instance number",
}

GUIDE = """\
You translate a French question about an Oracle unified audit trail into a query plan (JSON). You never
answer the question and never compute a figure: a compiler runs the plan on the store.

Reply with one JSON object {"plan": <plan>} following the schema below, or {"plan": null} when the
question is not about the audit trail, or cannot be expressed with this plan exactly (null is better
than a plan for another question).

Plan fields:
- measure: events (count), distinct (distinct values of `field`), sessions (distinct session_id),
  duration (session durations in seconds), first / last (time of the earliest / latest event),
  share (part of the events matching `share_of` within `filters`, in percent), coverage (first, last,
  count), anomalies (the anomaly detectors over the period; no filters, no grouping).
- group_by: 0 to 2 of the columns, or time buckets: hour, weekday, day, week, month (local time).
- filters (every condition holds): include {column: [values]} (any of the values), exclude {column:
  [values]}, categories (each must hold), exclude_categories, failed (true: return_code != 0; false:
  succeeded), sql_contains (words of the SQL text), hours [from, to) local hours (may wrap: [20, 6]),
  off_hours (true: outside business hours or on weekends).
- threshold {op: gt|gte|lt|lte, value, window_minutes?}: keeps the groups whose measure passes; with
  window_minutes, the measure is the largest number of events within any window of that many minutes.
- having {kind: both|only|never, field, values}: keeps the values of group_by[0] that did all of
  `values` (both), only those (only), or none of them (never).
- sequence {first: [actions], then: [actions], same: [columns], within_minutes}: keeps the `then`
  events that follow a `first` event on the same `same` columns.
- session_state "open": sessions with a LOGON and no LOGOFF.
- order: desc (most, the default), asc (least), newest, oldest; limit: how many groups or events
  (null = all).
- period {start, end, label}: [start, end) as ISO 8601 with the UTC offset, null on a side = open;
  label = the words of the question that name the period. null period = the whole trail.
  compare: a second period to compare with.
- detail: true lists the events themselves (or the sessions, with measure sessions or duration).

Periods, in the time zone given: a day runs from 00:00 to 00:00; "ce matin" 06-12, "cet après-midi"
12-18, "ce soir" / "hier soir" 18-24, "cette nuit" 00-06; "cette semaine" Monday 00:00 to next Monday
00:00; "ce mois" the 1st to the 1st of the next month; "les N derniers jours / dernières heures" and
"depuis N jours" end now and start N days or hours before; "depuis lundi", "depuis le 3" end now;
"avant X" has no start. Business hours: {business}, Monday to Friday.

Values: use the stored spelling from "Known values" when a word of the question names one; otherwise
copy the name as the question writes it (it will be reported as absent). Never invent a value the
question does not name. Values are plain strings.
"""


def _period(start: str, end: str | None, label: str) -> dict[str, Any]:
    return {
        "start": f"2026-03-{start}:00+01:00",
        "end": f"2026-03-{end}:00+01:00" if end else None,
        "label": label,
    }


def example(question: str, plan: dict[str, Any] | None) -> str:
    reply = json.dumps({"plan": plan}, ensure_ascii=False)
    return f"Question: {question}\nReply: {reply}"


# Worked examples, with "now" = Tuesday 2026-03-10 15:00 Europe/Paris (+01:00). Each one is a valid Plan
# (tests/test_llm_plan.py checks it).
EXAMPLES: list[tuple[str, dict[str, Any] | None]] = [
    (
        "Qui a supprimé le plus de lignes dans SALES.ORDERS hier ?",
        {
            "measure": "events",
            "group_by": ["dbusername"],
            "filters": {
                "include": {"action_name": ["DELETE"], "object_schema": ["SALES"], "object_name": ["ORDERS"]}
            },
            "order": "desc",
            "limit": 1,
            "period": _period("09T00:00", "10T00:00", "hier"),
        },
    ),
    (
        "Quelle proportion des connexions a échoué, machine par machine, cette semaine ?",
        {
            "measure": "share",
            "group_by": ["userhost"],
            "filters": {"categories": ["logon"]},
            "share_of": {"failed": True},
            "period": _period("09T00:00", "16T00:00", "cette semaine"),
        },
    ),
    (
        "Quels comptes n'ont fait que des lectures ce mois-ci ?",
        {
            "measure": "events",
            "group_by": ["dbusername"],
            "having": {"kind": "only", "field": "action_name", "values": ["SELECT"]},
            "period": {
                "start": "2026-03-01T00:00:00+01:00",
                "end": "2026-04-01T00:00:00+01:00",
                "label": "ce mois-ci",
            },
        },
    ),
    (
        "Un même compte a-t-il raté plus de 5 connexions en 10 minutes depuis lundi ?",
        {
            "measure": "events",
            "group_by": ["dbusername"],
            "filters": {"categories": ["logon"], "failed": True},
            "threshold": {"op": "gt", "value": 5, "window_minutes": 10},
            "period": _period("09T00:00", "10T15:00", "depuis lundi"),
        },
    ),
    (
        "Activité heure par heure aujourd'hui par rapport à hier, sans le compte MONITOR",
        {
            "measure": "events",
            "group_by": ["hour"],
            "filters": {"exclude": {"dbusername": ["MONITOR"]}},
            "period": _period("10T00:00", "11T00:00", "aujourd'hui"),
            "compare": _period("09T00:00", "10T00:00", "hier"),
        },
    ),
    (
        "les 10 dernières requêtes qui mentionnent IBAN, hors heures ouvrées",
        {
            "measure": "events",
            "filters": {"sql_contains": ["IBAN"], "off_hours": True},
            "order": "newest",
            "limit": 10,
            "detail": True,
        },
    ),
    (
        "Combien de programmes différents HR_APP a-t-il utilisés ?",
        {
            "measure": "distinct",
            "field": "client_program_name",
            "filters": {"include": {"dbusername": ["HR_APP"]}},
        },
    ),
    ("Quelle est la taille du tablespace USERS ?", None),
]

WEEKDAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
