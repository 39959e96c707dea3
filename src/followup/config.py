"""One typed settings object, read from the environment (prefix FOLLOWUP_) or a .env file.

Every field is listed in `.env.example` with the same comment. Nothing connects at import.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cached_property

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
# C0 and C1 control characters, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class InputLimits:
    """How much one request may ask the engine to store and evaluate, checked when data is written.

    Data stored before a limit was set or lowered still reads and runs; only new writes are held
    to it. Built from the FOLLOWUP_MAX_* settings (`Settings.input_limits`).
    """

    max_attributes: int = 50
    max_attribute_bytes: int = 1024
    max_rule_nodes: int = 200
    max_rule_list_items: int = 500
    max_title_chars: int = 200
    max_prompt_chars: int = 1000


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FOLLOWUP_", env_file=".env", extra="ignore")

    # Where state lives. Default: a SQLite file under ./var. PostgreSQL:
    # postgresql+psycopg://USER@HOST:5432/DB
    database_url: str = "sqlite:///./var/followup.db"
    # Base of every link put into a message (survey pages, unsubscribe); must be what customers reach.
    # When it is https://, every response tells browsers to use https only (HSTS, one year).
    public_url: str = "http://127.0.0.1:8000"
    # Outgoing mail server: smtp://[user:password@]host:port; smtps:// for implicit TLS, smtp+starttls:// for STARTTLS.
    smtp_url: str = "smtp://127.0.0.1:2525"
    # The From: address of follow-up emails.
    smtp_from: str = "followup@localhost"
    # Base64 of 32 random bytes wrapping every customer's data key. Required on PostgreSQL; on SQLite
    # a key file is created beside the database when unset. Losing it loses all personal data.
    master_key: SecretStr | None = None
    # Quiet hours in the customer's own time zone, HH:MM; sends falling inside wait for the end.
    quiet_hours_start: str = "21:00"
    quiet_hours_end: str = "08:00"
    # Fatigue budget across all strategies and channels: at most N follow-ups per customer per D days.
    fatigue_max_followups: int = Field(default=1, ge=1)
    fatigue_window_days: int = Field(default=14, ge=1)
    # The personal channel ("channels": "auto"): the share of choices made at random so every
    # channel keeps being measured, and the days of follow-ups its learning reads.
    channel_exploration: float = Field(default=0.1, ge=0.0, le=1.0)
    channel_learning_days: int = Field(default=90, ge=1, le=3650)
    # A sticky slice of all customers no strategy ever contacts: the control group for uplift.
    global_holdout_percent: float = Field(default=0.0, ge=0.0, le=100.0)
    # Seconds a worker may hold a claimed message before another worker treats it as abandoned.
    worker_lease_seconds: int = Field(default=60, ge=1)
    # Seconds an idle worker sleeps between polls.
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    # Attempts per message before a transient failure becomes permanent; a message whose worker died
    # or hung until its lease ran out on every attempt fails too.
    send_max_attempts: int = Field(default=5, ge=1)
    # First retry delay in seconds; doubles per attempt (with jitter), capped at one hour.
    retry_base_seconds: float = Field(default=30.0, gt=0)
    # Version of the privacy notice customers consented under, recorded in the consent ledger.
    privacy_notice_version: str = "2026-11-01"
    # Largest request body in bytes that any endpoint but the events batch reads; larger ones get 413.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Largest body of POST /api/v1/events in bytes (a batch holds at most 10,000 events); larger: 413.
    max_events_body_bytes: int = Field(default=33_554_432, ge=1024)
    # Logging: level name and format ("console" for people, "json" for collectors).
    log_level: str = "INFO"
    log_format: str = "console"
    # Console sign-in throttling. After N wrong passwords for one account within a day, that
    # account's sign-in locks; after M from one client address, that address's does. The first lock
    # lasts FIRST seconds and doubles with each further failure, up to LONGEST. While locked, even
    # the right password is refused; a success clears the account's count.
    console_sign_in_account_failures: int = Field(default=5, ge=1)
    console_sign_in_address_failures: int = Field(default=20, ge=1)
    console_sign_in_first_lock_seconds: float = Field(default=30.0, gt=0)
    console_sign_in_longest_lock_seconds: float = Field(default=900.0, gt=0)
    # Bearer token that GET /metrics requires (`Authorization: Bearer TOKEN`); use a long random
    # value. Unset (the default) turns metrics off: /metrics answers 404.
    metrics_token: SecretStr | None = None

    # Limits on what one request may store, each refused with 422 `limit_exceeded` naming the field.
    # They apply when data is written: data stored before a limit was lowered still reads and runs.
    # Attributes per customer and per event.
    max_attributes: int = Field(default=50, ge=1, le=1000)
    # Bytes per attribute value: UTF-8 bytes of a text, of the JSON of any other value. Rule
    # values are held to the same size, since a longer one could never equal an attribute.
    max_attribute_bytes: int = Field(default=1024, ge=16, le=65536)
    # Conditions and all/any/not groups in one audience rule tree.
    max_rule_nodes: int = Field(default=200, ge=1, le=10000)
    # Values in one `in` / `not_in` / `contains` list of a rule.
    max_rule_list_items: int = Field(default=500, ge=1, le=10000)
    # Characters of a one-line text: a survey title, a choice label, a strategy name.
    max_title_chars: int = Field(default=200, ge=1, le=2000)
    # Characters of a question prompt (it may span several lines).
    max_prompt_chars: int = Field(default=1000, ge=1, le=10000)

    @field_validator("quiet_hours_start", "quiet_hours_end")
    @classmethod
    def _check_hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError("quiet hours must be HH:MM, e.g. 21:00")
        return value

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("public_url", "smtp_from")
    @classmethod
    def _one_line(cls, value: str) -> str:
        # Both end up in email headers (List-Unsubscribe, From), where a line break would either
        # fail every email or smuggle in a header of its own.
        if _CONTROL.search(value):
            raise ValueError("must be one line without control characters")
        return value

    @cached_property
    def input_limits(self) -> InputLimits:
        return InputLimits(
            max_attributes=self.max_attributes,
            max_attribute_bytes=self.max_attribute_bytes,
            max_rule_nodes=self.max_rule_nodes,
            max_rule_list_items=self.max_rule_list_items,
            max_title_chars=self.max_title_chars,
            max_prompt_chars=self.max_prompt_chars,
        )

    @cached_property
    def quiet_hours(self) -> tuple[dt.time, dt.time]:
        return (dt.time.fromisoformat(self.quiet_hours_start), dt.time.fromisoformat(self.quiet_hours_end))

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
