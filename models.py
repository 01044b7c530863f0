"""Pydantic models shared across the service: audit events, filters, users, chat, system."""

import re
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# --------------------------------------------------------------------------- audit events

AUDIT_FIELDS: tuple[str, ...] = (
    "event_timestamp",
    "os_username",
    "userhost",
    "terminal",
    "dbusername",
    "client_program_name",
    "action_name",
    "return_code",
    "object_schema",
    "object_name",
    "sql_text",
    "sql_binds",
    "session_id",
    "authentication_type",
    "unified_audit_policies",
    "system_privilege_used",
    "instance_id",
)

# Fields that hold a name one can filter, group or count by.
DIMENSIONS: tuple[str, ...] = (
    "dbusername",
    "os_username",
    "userhost",
    "terminal",
    "client_program_name",
    "action_name",
    "object_schema",
    "object_name",
    "authentication_type",
    "unified_audit_policies",
    "system_privilege_used",
    "return_code",
    "session_id",
)


class AuditEvent(BaseModel):
    """One row of Oracle's UNIFIED_AUDIT_TRAIL; unknown columns are kept."""

    model_config = ConfigDict(extra="allow")

    event_timestamp: datetime
    os_username: str | None = None
    userhost: str | None = None
    terminal: str | None = None
    dbusername: str | None = None
    client_program_name: str | None = None
    action_name: str | None = None
    return_code: int = 0
    object_schema: str | None = None
    object_name: str | None = None
    sql_text: str | None = None
    sql_binds: str | None = None
    session_id: int | None = None
    authentication_type: str | None = None
    unified_audit_policies: str | None = None
    system_privilege_used: str | None = None
    instance_id: int | None = None


class ImportRowError(BaseModel):
    line: int
    message: str


class ImportResult(BaseModel):
    inserted: int = 0
    duplicates: int = 0
    errors: list[ImportRowError] = Field(default_factory=list)  # the first 1,000
    error_count: int = 0  # every row in error, reported or not
    errors_truncated: bool = False


# --------------------------------------------------------------------------- query vocabulary


class AuditFilters(BaseModel):
    """Filters on audit events, shared by search, statistics, NLP and chat.

    Lists hold exact stored values (any of them matches); `exclude` maps a DIMENSIONS field to
    values that must not match ("sauf SCOTT"); start/end are aware datetimes, end excluded.
    """

    dbusername: list[str] = Field(default_factory=list)
    os_username: list[str] = Field(default_factory=list)
    userhost: list[str] = Field(default_factory=list)
    terminal: list[str] = Field(default_factory=list)
    client_program_name: list[str] = Field(default_factory=list)
    action_name: list[str] = Field(default_factory=list)
    object_schema: list[str] = Field(default_factory=list)
    object_name: list[str] = Field(default_factory=list)
    authentication_type: list[str] = Field(default_factory=list)
    unified_audit_policies: list[str] = Field(default_factory=list)
    system_privilege_used: list[str] = Field(default_factory=list)
    session_id: list[int] = Field(default_factory=list)
    return_code: list[int] = Field(default_factory=list)
    failed: bool | None = None  # True: return_code != 0; False: return_code == 0
    sql_text_contains: list[str] = Field(default_factory=list)
    exclude: dict[str, list[Any]] = Field(default_factory=dict)
    start: datetime | None = None
    end: datetime | None = None

    @field_validator("exclude")
    @classmethod
    def _known_exclusions(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for name, values in value.items():
            if name not in DIMENSIONS:
                raise ValueError(f"champ inconnu dans exclude : {name[:50]!r}")
            if any(not isinstance(v, str | int) or isinstance(v, bool) for v in values):
                raise ValueError(f"exclude.{name} : des textes ou des nombres sont attendus")
        return value

    def to_match(self) -> dict[str, Any]:
        """The MongoDB filter for these conditions (time first, so the index leads)."""
        match: dict[str, Any] = {}
        if self.start or self.end:
            rng: dict[str, Any] = {}
            if self.start:
                rng["$gte"] = self.start
            if self.end:
                rng["$lt"] = self.end
            match["event_timestamp"] = rng
        for name in DIMENSIONS:
            values = getattr(self, name)
            if values:
                match[name] = values[0] if len(values) == 1 else {"$in": list(values)}
        if self.failed is not None and not self.return_code:
            match["return_code"] = {"$ne": 0} if self.failed else 0
        for name in DIMENSIONS:
            excluded = self.exclude.get(name)
            if not excluded:
                continue
            cond = match.get(name)
            if cond is None:
                match[name] = {"$nin": list(excluded)}
            elif isinstance(cond, dict):  # {"$in": ...} or {"$ne": 0}: one dict holds both
                match[name] = {**cond, "$nin": list(excluded)}
            else:
                match[name] = {"$eq": cond, "$nin": list(excluded)}
        if self.sql_text_contains:
            words = [{"sql_text": {"$regex": re.escape(w), "$options": "i"}} for w in self.sql_text_contains]
            if len(words) == 1:
                match.update(words[0])
            else:
                match["$and"] = words
        return match

    def is_empty(self) -> bool:
        return not self.to_match()


class Intent(StrEnum):
    """The `intent` of an answer without a plan; a plan's intent is its shape (chat_service.plan_intent)."""

    HELP = "help"
    SMALL_TALK = "small_talk"
    UNKNOWN = "unknown"


# group_by values besides the DIMENSIONS fields
TIME_BUCKETS: tuple[str, ...] = ("hour", "day", "weekday", "week")


class Analysis(BaseModel):
    """What the question reader understood of a question: the same reading as the chat's."""

    question: str
    kind: Literal["plan", "not_understood", "out_of_scope", "help", "small_talk"]
    understood: bool  # the whole question was read into a plan (the chat would answer it with figures)
    intent: str
    confidence: float
    entities: dict[str, list[Any]] = Field(default_factory=dict)
    # The plan (for not_understood, the partial reading, never answered), as chat answers show it;
    # `plan.spec` can be sent back as `previous` to read a follow-up.
    plan: dict[str, Any] | None = None
    unknown: list[str] = Field(default_factory=list)  # words not understood, as typed
    absent: dict[str, list[Any]] = Field(default_factory=dict)  # named values absent from the trail
    closest: dict[str, list[Any]] = Field(default_factory=dict)  # existing values close to them
    notes: list[str] = Field(default_factory=list)  # interpretations said out loud
    topic: str | None = None  # out_of_scope: what the question is about
    follow_up: bool = False


class QueryResult(BaseModel):
    """A table computed by the store, with the query that produced it (shown to the user)."""

    columns: list[str]
    rows: list[list[Any]]
    total: int  # e.g. the number of matching events, or of groups before the limit
    query: dict[str, Any] = Field(default_factory=dict)  # {"collection": ..., "pipeline": [...]}


class AnalyzeRequest(BaseModel):
    query: str = Field(min_length=1, max_length=2000)
    previous: dict[str, Any] | None = None  # the `plan.spec` of the previous question, for a follow-up


# --------------------------------------------------------------------------- users

Role = Literal["admin", "auditor"]
USERNAME_PATTERN = r"^[A-Za-z0-9_.\-]{3,50}$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class UserCreate(BaseModel):
    username: str = Field(pattern=USERNAME_PATTERN)
    email: str = Field(max_length=254, pattern=EMAIL_PATTERN)
    password: str = Field(min_length=8, max_length=128, repr=False)


class UserPublic(BaseModel):
    username: str
    email: str
    role: Role
    is_active: bool = True
    created_at: datetime | None = None


class UserUpdate(BaseModel):
    role: Role | None = None
    is_active: bool | None = None


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=128, repr=False)


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=128, repr=False)
    new_password: str = Field(min_length=8, max_length=128, repr=False)


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


# --------------------------------------------------------------------------- chat


class ChatRequest(BaseModel):
    message: str = Field(min_length=1, max_length=2000)
    conversation_id: str | None = Field(default=None, max_length=64)
    file_ids: list[str] = Field(default_factory=list, max_length=10)
    # Ask this plan instead of reading `message`: an earlier answer's `plan.spec`, edited (a chip of the
    # web page changed or removed). It is validated like any plan; values must be plain scalars.
    plan: dict[str, Any] | None = None

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("le message est vide")
        return value.strip()


class ChatData(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    total: int


class ChatResponse(BaseModel):
    conversation_id: str
    answer: str
    intent: str
    confidence: float
    entities: dict[str, list[Any]] = Field(default_factory=dict)
    data: ChatData | None = None
    suggestions: list[str] = Field(default_factory=list)
    cached: bool = False
    source: Literal["template", "llm", "llm_plan"] = "template"
    plan: dict[str, Any] | None = None  # what was understood: measure, grouping, filters, period (chips)
    query: dict[str, Any] | None = None  # the store query that produced `data`


class ChatbotRequest(BaseModel):
    question: str = Field(min_length=1, max_length=2000)


class ChatbotResponse(BaseModel):
    type: str
    data: list[dict[str, Any]]
    summary: str
    explanation: str
    columns: list[str]


# --------------------------------------------------------------------------- system


class ErrorResponse(BaseModel):
    detail: str
    code: str
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = None


class DependencyHealth(BaseModel):
    status: Literal["up", "down", "not_configured", "degraded"]
    latency_ms: float | None = None
    detail: str | None = None
    kind: str | None = None


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    version: str
    time: datetime
    dependencies: dict[str, DependencyHealth]


class InfoResponse(BaseModel):
    name: str
    version: str
    store: str
    timezone: str
    llm_enabled: bool
    counts: dict[str, int]
