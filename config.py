"""Settings: one object, read from the environment and `.env`."""

import secrets
import warnings
from functools import cached_property
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDER_SECRETS = {
    "",
    "changethis",
    "change-me",
    "changeme",
    "secret",
    "your-secret-key-change-in-production",
    "your-secret-key",
}


class ConfigError(RuntimeError):
    """The configuration cannot run the service."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=True
    )

    APP_NAME: str = "SIO Audit Backend"
    APP_VERSION: str = "1.0.0"
    HOST: str = "0.0.0.0"
    PORT: int = 8000
    DEBUG: bool = False
    LOG_LEVEL: str = "INFO"
    CORS_ORIGINS: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://localhost:3000", "http://localhost:5173"]
    )
    MAX_JSON_BODY_KB: int = 64  # bodies of JSON and form routes; uploads have FILES_MAX_MB / IMPORT_MAX_MB

    # Store
    MONGODB_URI: str | None = None
    MONGODB_DB: str = "auditdb"
    MONGODB_TIMEOUT_MS: int = 3000
    EMBEDDED_CACHE_SIZE: str = "256M"  # WiredTiger cache of the embedded store ("128M", "1G"...)
    EMBEDDED_DATA_DIR: str = "./data"
    SEED_DEMO_DATA: bool = True
    DEMO_EVENTS: int = 20_000
    DEMO_DAYS: int = 30
    DEMO_SEED: int = 42
    IMPORT_MAX_MB: int = 100
    IMPORT_BATCH_SIZE: int = 2_000

    # Time
    APP_TIMEZONE: str = "Europe/Paris"
    BUSINESS_HOURS_START: int = 8
    BUSINESS_HOURS_END: int = 19

    # Auth
    SECRET_KEY: str | None = None
    ACCESS_TOKEN_EXPIRE_MINUTES: int = 8 * 60
    ALLOW_REGISTRATION: bool = True
    ADMIN_USERNAME: str | None = "admin"  # created at start-up when ADMIN_PASSWORD is set
    ADMIN_PASSWORD: str | None = None
    ADMIN_EMAIL: str | None = None
    LOGIN_MAX_ATTEMPTS: int = 5
    LOGIN_WINDOW_MINUTES: int = 15
    REGISTER_MAX_PER_HOUR: int = 10  # accounts created per client address and hour

    # Cache and conversations
    SQLITE_DB_PATH: str = "./data/cache.db"
    CACHE_TTL_SECONDS: int = 3600
    CONVERSATION_TTL_DAYS: int = 90

    # LLM (any OpenAI-compatible server)
    OPENAI_API_KEY: str | None = None
    OPENAI_BASE_URL: str | None = None
    OPENAI_MODEL: str = "gpt-4o-mini"
    OPENAI_TIMEOUT_SECONDS: float = 20.0
    OPENAI_MAX_RETRIES: int = 2
    # The LLM reads into a plan the questions the rules cannot read (llm_plan.py)
    LLM_PLAN_ENABLED: bool = True
    LLM_PLAN_TIMEOUT_SECONDS: float = 15.0  # the whole reading, retries included
    LLM_PLAN_MAX_TOKENS: int = 1000
    LLM_PLAN_RATE_LIMIT: int = 30  # model calls per user and window; 0 = no limit
    LLM_PLAN_RATE_WINDOW_MINUTES: int = 60
    LLM_PLAN_RESPONSE_FORMAT: Literal["json_schema", "json_object"] = "json_schema"

    # Oracle
    ORACLE_HOST: str | None = None
    ORACLE_PORT: int = 1521
    ORACLE_SERVICE_NAME: str | None = None
    ORACLE_USERNAME: str | None = None
    ORACLE_PASSWORD: str | None = None
    ORACLE_DRIVER_MODE: str = "thin"
    ORACLE_DSN: str | None = None
    # Hosts that POST /api/oracle/config may point at (besides those of ORACLE_HOST / ORACLE_DSN).
    ORACLE_ALLOWED_HOSTS: Annotated[list[str], NoDecode] = Field(default_factory=list)
    ORACLE_POOL_MIN: int = 1
    ORACLE_POOL_MAX: int = 4
    ORACLE_CONNECT_TIMEOUT_SECONDS: float = 5.0
    ORACLE_CONNECT_RETRIES: int = 2
    ORACLE_CALL_TIMEOUT_MS: int = 30_000
    ORACLE_MAX_ROWS: int = 1_000
    ORACLE_METRICS_INTERVAL_SECONDS: float = 2.0
    ORACLE_SYNC_BATCH_SIZE: int = 5_000

    # Files
    FILES_MAX_MB: int = 20
    FILES_TTL_DAYS: int = 90
    FILES_MAX_TEXT_CHARS: int = 1_000_000
    FILES_MAX_PAGES: int = 2_000
    FILES_MAX_UNZIPPED_MB: int = 200
    FILES_EXTRACT_TIMEOUT_SECONDS: float = 30.0
    FILES_SWEEP_INTERVAL_SECONDS: int = 3600

    # Anomaly detection thresholds
    ANOMALY_FAILED_LOGON_THRESHOLD: int = 5
    ANOMALY_FAILED_LOGON_WINDOW_MINUTES: int = 10
    ANOMALY_MAD_THRESHOLD: float = 6.0
    ANOMALY_MIN_HOURLY_VOLUME: int = 50
    ANOMALY_MASS_DML_THRESHOLD: int = 200
    ANOMALY_MASS_DML_WINDOW_MINUTES: int = 60
    ANOMALY_BASELINE_DAYS: int = 30  # history before the window used for baselines and first-seen
    ANOMALY_LEARNING_DAYS: int = 7  # less history than this: the trail's first days are the baseline
    ANOMALY_ROUTINE_NIGHTS_RATIO: float = 0.5  # off-hours on at least this share of days = routine
    ANOMALY_NIGHT_START_HOUR: int = 21  # local "night" for off-hours severity: from this hour...
    ANOMALY_NIGHT_END_HOUR: int = 6  # ...to this hour

    # Alerts (alerts.py): detection after every import and Oracle sync, and on a schedule
    ALERTS_ENABLED: bool = True
    ALERTS_SCHEDULE_MINUTES: float | None = None  # None: 5 when Oracle is configured, else off; 0: off
    ALERTS_TICK_SECONDS: float = 30.0  # how often the schedule's holder delivers due notifications
    ALERTS_SCAN_DAYS: int = 30  # new events older than this raise no alert (reports still see them)
    ALERTS_MIN_SEVERITY: Literal["low", "medium", "high"] = "medium"  # when no policy is stored
    # Notifications (notify.py)
    ALERT_WEBHOOK_URLS: Annotated[list[str], NoDecode] = Field(default_factory=list)
    ALERT_WEBHOOK_SECRET: str | None = None  # HMAC-SHA256 key of the X-Signature-256 header
    ALERT_EMAIL_TO: Annotated[list[str], NoDecode] = Field(default_factory=list)
    NOTIFY_MAX_ATTEMPTS: int = 5  # then the delivery is shown as failed
    NOTIFY_BACKOFF_SECONDS: float = 30.0  # doubled after each failed attempt
    NOTIFY_TIMEOUT_SECONDS: float = 10.0
    SMTP_HOST: str | None = None
    SMTP_PORT: int = 25
    SMTP_USERNAME: str | None = None
    SMTP_PASSWORD: str | None = None
    SMTP_STARTTLS: bool = False
    SMTP_TLS: bool = False  # implicit TLS (port 465)
    SMTP_FROM: str = "sio-audit@localhost"

    # Reports (reports.py)
    REPORT_ADMIN_USERS: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["SYS", "SYSTEM"])
    REPORT_WATCHED_OBJECTS: Annotated[list[str], NoDecode] = Field(default_factory=list)  # SCHEMA.OBJECT

    @field_validator(
        "CORS_ORIGINS",
        "ORACLE_ALLOWED_HOSTS",
        "ALERT_WEBHOOK_URLS",
        "ALERT_EMAIL_TO",
        "REPORT_ADMIN_USERS",
        "REPORT_WATCHED_OBJECTS",
        mode="before",
    )
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator(
        "MONGODB_URI",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ORACLE_DSN",
        "SMTP_HOST",
        "SMTP_USERNAME",
        "SMTP_PASSWORD",
        "ALERT_WEBHOOK_SECRET",
        "ALERTS_SCHEDULE_MINUTES",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.APP_TIMEZONE)

    @property
    def llm_enabled(self) -> bool:
        return bool(self.OPENAI_API_KEY)

    @property
    def llm_plan_enabled(self) -> bool:
        return self.llm_enabled and self.LLM_PLAN_ENABLED

    @property
    def secret_key(self) -> str:
        """The signing key; check_secrets (at start-up) makes sure there is one."""
        if not self.SECRET_KEY:
            raise ConfigError("SECRET_KEY is missing")
        return self.SECRET_KEY

    def check_secrets(self) -> None:
        """Refuse a missing or placeholder SECRET_KEY unless DEBUG, where a random one is made."""
        how = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        if self.SECRET_KEY and self.SECRET_KEY.strip().lower() not in PLACEHOLDER_SECRETS:
            if len(self.SECRET_KEY.encode()) >= 32:
                return
            if not self.DEBUG:
                raise ConfigError(f"SECRET_KEY is shorter than 32 bytes: make a random one with {how}")
            warnings.warn("DEBUG: SECRET_KEY is shorter than 32 bytes", stacklevel=2)
            return
        if not self.DEBUG:
            raise ConfigError(f"SECRET_KEY is missing or a placeholder: make a random one with {how}")
        self.SECRET_KEY = secrets.token_urlsafe(48)
        warnings.warn("DEBUG: SECRET_KEY was not set, a random one is used", stacklevel=2)


settings = Settings()
