"""The query plan: what a question asks, as one typed, compositional value.

A question is read into a `Plan` (understand.py), a plan is compiled into one MongoDB pipeline
(plan_compiler.py) and a plan with its result is written in French (answers.py). Nothing else
decides what a question means. Categories ("DML", "destructive", "temporary tables"...) are data,
below, with the store condition each one stands for.

Result shapes (`QueryResult.columns` / `rows`), by measure and grouping. `g1`, `g2` stand for the
grouping fields (a column named after the field, or the time bucket: hour 0-23, weekday 1-7 =
Monday-Sunday, day "YYYY-MM-DD", week "YYYY-Www", month "YYYY-MM", all local time):

| measure   | no grouping                                | grouped by g1 [, g2]                      |
|-----------|--------------------------------------------|-------------------------------------------|
| events    | [count]                                    | [g1, (g2,) count]                         |
| distinct  | [distinct] (of `field`)                    | [g1, (g2,) distinct]                      |
| sessions  | [sessions] (distinct session_id)           | [g1, (g2,) sessions]                      |
| duration  | [sessions, avg_s, max_s, min_s]            | [g1, (g2,) sessions, avg_s, max_s, min_s] |
| first     | [first] (timestamp of the earliest event)  | [g1, (g2,) first]                         |
| last      | [last] (timestamp of the latest event)     | [g1, (g2,) last]                          |
| share     | [part, total, percent]                     | [g1, (g2,) part, total, percent]          |
| coverage  | [first, last, count]                       | (not grouped)                             |
| anomalies | ANOMALY_COLUMNS, one row per finding       | (not grouped, no filters: the detectors)  |

- `detail=True` lists the matching events instead: columns `EVENT_COLUMNS`, newest first unless
  `order` says "oldest"; with measure "sessions" or "duration" it lists sessions (`SESSION_COLUMNS`).
- `compare` set: one more leading column `period` ("p1" for `period`, "p2" for `compare`), so each
  row exists once per period; groups absent from a period count 0.
- Time-bucket groupings list every bucket of the period in time order (empty ones with 0).
  Other groupings are sorted by the measure (`order` "desc" by default, "asc" for "least"), then by
  the group values; `limit` None means every group. `total` is the number of rows before `limit`.
- A `threshold` keeps the groups whose measure passes it. With `window_minutes`, the measure is the
  largest number of events in any window of that many minutes (fixed windows aligned on the epoch),
  and the grouped row gains a column `windows` (how many windows passed).
- `having` keeps the values of `group_by[0]` that did every one of `having.values` ("both"), only
  those ("only"), or none of them ("never") within the filters; the measure is then computed for
  the kept groups.
- `sequence` keeps events of `sequence.then` that follow an event of `sequence.first` on the same
  `sequence.same` fields within `sequence.within_minutes`; the measure applies to those events.
- Durations are seconds between the first and last event of a session (session_id) in the period.
  `session_state="open"` keeps sessions with a LOGON and no LOGOFF.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models import DIMENSIONS

TIME_BUCKETS: tuple[str, ...] = ("hour", "weekday", "day", "week", "month")
# What a plan can group by, count distinct values of, or filter on.
FIELDS: tuple[str, ...] = (*DIMENSIONS, "sql_text", "instance_id")
GROUPABLE: tuple[str, ...] = (*FIELDS, *TIME_BUCKETS)
INT_FIELDS = frozenset({"return_code", "session_id", "instance_id"})

EVENT_COLUMNS: tuple[str, ...] = (
    "event_timestamp",
    "dbusername",
    "action_name",
    "object_schema",
    "object_name",
    "return_code",
    "userhost",
    "client_program_name",
    "os_username",
    "terminal",
    "session_id",
    "sql_text",
)
SESSION_COLUMNS: tuple[str, ...] = (
    "session_id",
    "dbusername",
    "userhost",
    "client_program_name",
    "start",
    "end",
    "duration_s",
    "events",
)

Measure = Literal[
    "events", "distinct", "sessions", "duration", "first", "last", "share", "coverage", "anomalies"
]  # fmt: skip
# The value columns each measure's rows end with (the table in the docstring above).
MEASURE_COLUMNS: dict[str, tuple[str, ...]] = {
    "events": ("count",),
    "distinct": ("distinct",),
    "sessions": ("sessions",),
    "duration": ("sessions", "avg_s", "max_s", "min_s"),
    "first": ("first",),
    "last": ("last",),
    "share": ("part", "total", "percent"),
    "coverage": ("first", "last", "count"),
}
# One row per finding of the anomaly detectors (anomalies.py), most severe first.
ANOMALY_COLUMNS: tuple[str, ...] = (
    "type", "severity", "title", "explanation", "dbusername", "userhost", "start", "end", "count",
)  # fmt: skip
Order = Literal["desc", "asc", "newest", "oldest"]


class Category(BaseModel):
    """A named class of events, and the store condition it stands for."""

    model_config = ConfigDict(frozen=True)

    label: str  # French, as the answer says it: "DML (INSERT, UPDATE, DELETE)"
    match: dict[str, Any]  # a MongoDB query on one event


def _actions(*names: str) -> dict[str, Any]:
    return {"action_name": {"$in": list(names)}}


def _action_rx(pattern: str) -> dict[str, Any]:
    return {"action_name": {"$regex": pattern}}


def _object_rx(pattern: str) -> dict[str, Any]:
    return {"object_name": {"$regex": pattern}}


CATEGORIES: dict[str, Category] = {
    "dml": Category(
        label="DML (INSERT, UPDATE, DELETE, MERGE)", match=_actions("INSERT", "UPDATE", "DELETE", "MERGE")
    ),
    "ddl": Category(
        label="DDL (CREATE, ALTER, DROP, TRUNCATE, RENAME)",
        match=_action_rx(r"^(CREATE|ALTER|DROP|TRUNCATE|RENAME|COMMENT|PURGE|FLASHBACK)\b"),
    ),
    "destructive": Category(
        label="opérations destructives (DROP, TRUNCATE, DELETE)",
        match=_action_rx(r"^(DROP|TRUNCATE)\b|^DELETE$"),
    ),
    "change": Category(
        label="modifications (DML et DDL)",
        match=_action_rx(r"^(INSERT|UPDATE|DELETE|MERGE|CREATE|ALTER|DROP|TRUNCATE|RENAME|COMMENT)\b"),
    ),
    "read": Category(label="lectures (SELECT)", match=_actions("SELECT")),
    "write": Category(
        label="écritures (INSERT, UPDATE, DELETE, MERGE)",
        match=_actions("INSERT", "UPDATE", "DELETE", "MERGE"),
    ),
    "logon": Category(label="connexions (LOGON)", match=_actions("LOGON")),
    "logoff": Category(label="déconnexions (LOGOFF)", match=_actions("LOGOFF")),
    "grant": Category(
        label="attributions et retraits de droits (GRANT, REVOKE)", match=_actions("GRANT", "REVOKE")
    ),
    "account": Category(
        label="changements de comptes (CREATE, ALTER, DROP USER)",
        match=_actions("CREATE USER", "ALTER USER", "DROP USER"),
    ),
    "role": Category(label="opérations sur les rôles (ROLE)", match=_action_rx(r"\bROLE$")),
    "set_role": Category(label="SET ROLE", match=_actions("SET ROLE")),
    "table": Category(label="opérations sur des tables", match=_action_rx(r"\bTABLE$")),
    "temporary": Category(
        label="tables temporaires (TMP_, TEMP)",
        match={
            "$or": [
                _object_rx(r"^(TMP|TEMP)_|_(TMP|TEMP)$|^GTT_"),
                {"sql_text": {"$regex": "GLOBAL TEMPORARY"}},
            ]
        },
    ),
    "view": Category(
        label="vues", match={"$or": [_action_rx(r"\bVIEW$"), _object_rx(r"^(G?V_?\$|V_)|_VW?$")]}
    ),
    "procedure": Category(
        label="procédures et packages (EXECUTE, PROCEDURE, PACKAGE, FUNCTION)",
        match={
            "$or": [_actions("EXECUTE"), _action_rx(r"\b(PROCEDURE|PACKAGE|PACKAGE BODY|FUNCTION|TRIGGER)$")]
        },
    ),
    "index": Category(label="index", match=_action_rx(r"\bINDEX$")),
    "dictionary": Category(
        label="objets du dictionnaire (SYS, SYSTEM, DBA_, V$)",
        match={
            "$or": [
                {"object_schema": {"$in": ["SYS", "SYSTEM"]}},
                _object_rx(r"^(DBA_|ALL_|USER_|G?V_?\$|CDB_)"),
            ]
        },
    ),
    "no_where": Category(
        label="UPDATE et DELETE sans WHERE",
        match={
            "action_name": {"$in": ["UPDATE", "DELETE"]},
            "sql_text": {"$not": {"$regex": r"\bWHERE\b", "$options": "i"}},
        },
    ),
    "system_privilege": Category(
        label="usage d'un privilège système", match={"system_privilege_used": {"$nin": [None, ""]}}
    ),
}


def _plain(name: str, values: list[Any]) -> None:
    """Values are data to compare with, never query syntax: a dict such as {"$where": ...} is refused."""
    for v in values:
        if not (v is None or isinstance(v, str | int | float | bool)):
            raise ValueError(f"values of {name!r} must be plain strings or numbers")


class Filters(BaseModel):
    """Conditions on events. Every condition holds (AND); values of one field: any of them (OR)."""

    model_config = ConfigDict(extra="forbid")

    include: dict[str, list[Any]] = Field(default_factory=dict)  # field -> exact stored values
    exclude: dict[str, list[Any]] = Field(default_factory=dict)  # field -> values left out
    categories: list[str] = Field(default_factory=list)  # each must hold
    exclude_categories: list[str] = Field(default_factory=list)  # none may hold
    failed: bool | None = None  # True: return_code != 0; False: return_code == 0
    # Case-insensitive substrings of sql_text; bounded, as each becomes a regex the store must accept.
    sql_contains: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        default_factory=list, max_length=10
    )
    hours: tuple[int, int] | None = None  # local hours [from, to), may wrap: (20, 6)
    off_hours: bool | None = None  # True: outside business hours or weekend; False: within them

    @field_validator("include", "exclude")
    @classmethod
    def _known_fields(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for name, values in value.items():
            if name not in FIELDS:
                raise ValueError(f"unknown field {name!r}")
            if not isinstance(values, list):
                raise ValueError(f"values of {name!r} must be a list")
            _plain(name, values)
        return {k: v for k, v in value.items() if v}

    @field_validator("categories", "exclude_categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in CATEGORIES:
                raise ValueError(f"unknown category {name!r}")
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not all(0 <= h <= 24 for h in value):
            raise ValueError("hours are 0-24")
        return value

    def is_empty(self) -> bool:
        return self == Filters()


class Period(BaseModel):
    """[start, end) aware datetimes; None on a side means open."""

    model_config = ConfigDict(extra="forbid")

    start: datetime | None = None
    end: datetime | None = None
    label: str = ""  # the words it was read from: "hier soir"


class Threshold(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["gt", "gte", "lt", "lte"] = "gt"
    value: float
    window_minutes: int | None = Field(default=None, ge=1, le=1440)


class Having(BaseModel):
    """Groups (values of group_by[0]) judged on the set of `field` values they show."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["both", "only", "never"]
    field: str = "action_name"
    values: list[Any] = Field(min_length=1)

    @field_validator("values")
    @classmethod
    def _plain_values(cls, value: list[Any]) -> list[Any]:
        _plain("having", value)
        return value


class Sequence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first: list[str] = Field(min_length=1)  # action names
    then: list[str] = Field(min_length=1)
    same: list[str] = Field(default_factory=lambda: ["object_schema", "object_name"])
    within_minutes: int | None = None

    @field_validator("same")
    @classmethod
    def _known_fields(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in FIELDS:
                raise ValueError(f"unknown field {name!r}")
        return value


class Plan(BaseModel):
    """One question, fully read."""

    model_config = ConfigDict(extra="forbid")

    measure: Measure = "events"
    field: str | None = None  # distinct: the field whose values are counted
    group_by: list[str] = Field(default_factory=list, max_length=2)
    filters: Filters = Field(default_factory=Filters)
    share_of: Filters | None = None  # share: the part, within `filters`
    threshold: Threshold | None = None
    having: Having | None = None
    sequence: Sequence | None = None
    session_state: Literal["open"] | None = None
    order: Order | None = None  # None: the measure's default
    limit: int | None = Field(default=None, ge=1, le=10_000)
    period: Period | None = None  # None: the whole trail
    compare: Period | None = None  # a second period, for comparisons
    detail: bool = False  # list events (or sessions) rather than a summary

    @field_validator("group_by")
    @classmethod
    def _groupable(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in GROUPABLE:
                raise ValueError(f"cannot group by {name!r}")
        if len(set(value)) != len(value):
            raise ValueError("group_by repeats a field")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Plan":
        if self.measure == "distinct" and self.field not in FIELDS:
            raise ValueError("distinct needs a field")
        if self.measure == "share" and self.share_of is None:
            raise ValueError("share needs share_of")
        if self.measure == "coverage" and self.group_by:
            raise ValueError("coverage is not grouped")
        if self.measure == "anomalies" and (self.group_by or not self.filters.is_empty() or self.compare):
            raise ValueError("anomalies are found over a whole period, without filters or grouping")
        if self.having and not self.group_by:
            raise ValueError("having needs a group_by")
        if self.having and self.having.field not in FIELDS:
            raise ValueError(f"unknown field {self.having.field!r}")
        return self
