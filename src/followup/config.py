"""One typed settings object, read from the environment (prefix FOLLOWUP_) or a .env file.

Every field is listed in `.env.example` with the same comment. Nothing connects at import.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
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


MAX_FREEZE_INSTRUCTIONS = 500
_PROVIDER_NAME = r"^[a-z][a-z0-9_-]{0,31}$"


def check_webhook_secret(value: SecretStr | None) -> SecretStr | None:
    """A Standard Webhooks secret: whsec_ and at least 16 bytes in base64."""
    if value is None:
        return value
    text = value.get_secret_value()
    try:
        key = base64.b64decode(text.removeprefix("whsec_"), validate=True)
    except ValueError:
        key = b""
    if not text.startswith("whsec_") or len(key) < 16:
        raise ValueError("must be a Standard Webhooks secret: whsec_ and at least 16 bytes in base64")
    return value


class _ProviderSettings(BaseModel):
    """What every SMS provider has: its name (in webhooks' paths and in each attempt), the base URL
    of its API (overridable, so tests and bridges point elsewhere), and at most how many messages a
    second every worker together sends through it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_PROVIDER_NAME)
    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=500)
    rate_per_second: float | None = Field(default=None, gt=0, le=10_000)
    # At most how many sends one worker keeps in flight to it at once (one keep-alive client).
    concurrency: int = Field(default=4, ge=1, le=64)
    # The secret we share with the provider to sign its webhooks (Standard Webhooks, whsec_…).
    webhook_secret: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _strip_url_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("webhook_secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        return check_webhook_secret(value)


class GenericSmsSettings(_ProviderSettings):
    """Our own gateway protocol (docs/channels/sms-gateway.md)."""

    kind: Literal["generic"]
    token: SecretStr
    sender: str = Field(default="", max_length=32)


class TwilioSmsSettings(_ProviderSettings):
    """Twilio's Messages API; its webhooks are signed with the auth token (X-Twilio-Signature)."""

    kind: Literal["twilio"]
    url: str = Field(default="https://api.twilio.com", pattern=r"^https?://[^\s]+$", max_length=500)
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr
    from_: str = Field(alias="from", min_length=1, max_length=64)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AliyunSmsSettings(_ProviderSettings):
    """Alibaba Cloud SMS (SendSms): a pre-approved sign name and template, as carriers in mainland
    China require."""

    kind: Literal["aliyun"]
    url: str = Field(default="https://dysmsapi.aliyuncs.com", pattern=r"^https?://[^\s]+$", max_length=500)
    access_key_id: str = Field(min_length=1, max_length=128)
    access_key_secret: SecretStr
    sign_name: str = Field(min_length=1, max_length=32)
    template_code: str = Field(min_length=1, max_length=64)


SmsProviderSettings = Annotated[GenericSmsSettings | TwilioSmsSettings | AliyunSmsSettings, Field(discriminator="kind")]


class FcmSettings(BaseModel):
    """Firebase Cloud Messaging, HTTP v1: a service account's JSON key signs the OAuth2 grant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    credentials_file: str = Field(min_length=1, max_length=1000)
    project_id: str = Field(pattern=r"^[a-z][a-z0-9-]{3,61}[a-z0-9]$")
    send_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$", max_length=500)
    token_url: str = Field(default="https://oauth2.googleapis.com/token", pattern=r"^https?://[^\s]+$")
    rate_per_second: float | None = Field(default=None, gt=0, le=10_000)
    concurrency: int = Field(default=4, ge=1, le=64)

    @property
    def messages_url(self) -> str:
        return self.send_url or f"https://fcm.googleapis.com/v1/projects/{self.project_id}/messages:send"


class ApnsSettings(BaseModel):
    """Apple Push Notification service over HTTP/2 with a token-based (.p8, ES256) provider key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_file: str = Field(min_length=1, max_length=1000)
    key_id: str = Field(pattern=r"^[A-Z0-9]{10}$")
    team_id: str = Field(pattern=r"^[A-Z0-9]{10}$")
    topic: str = Field(min_length=1, max_length=255)  # the app's bundle id
    url: str = Field(default="https://api.push.apple.com", pattern=r"^https?://[^\s]+$", max_length=500)
    rate_per_second: float | None = Field(default=None, gt=0, le=10_000)
    concurrency: int = Field(default=4, ge=1, le=64)

    @field_validator("url")
    @classmethod
    def _strip_url_slash(cls, value: str) -> str:
        return value.rstrip("/")


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
    # The key store: customers' data keys and erased customers' tombstones, kept apart from the
    # database so its backups never hold them (docs/privacy.md). SQLite: a file path, by default
    # beside the database (followup.db → followup.keys.db). PostgreSQL: a schema name, by default the
    # URL's search_path schema + "_keys", else followup_keys.
    key_store: str | None = None
    # Erasure requests wait this long (ISO 8601, e.g. PT0S, P1D) before the worker carries them out,
    # and must be done within FOLLOWUP_ERASURE_DAYS of the request; later ones show as overdue.
    erasure_grace: dt.timedelta = dt.timedelta(0)
    erasure_days: int = Field(default=15, ge=1, le=90)
    # How long each kind of data is kept, as ISO 8601 durations in whole days (P1D to P36500D; a year
    # counts 365 days, so P3Y is P1095D); P0D keeps it for ever. The worker purges what is older, in batches, and
    # `followup privacy retention-report` shows what would go and what went (docs/privacy.md).
    # Raw events, by when they happened: older ones go, their day buckets of activity stay.
    retention_events: dt.timedelta = dt.timedelta(days=400)
    # The content of messages sent (subject, text, links) and providers' error texts; states stay.
    retention_messages: dt.timedelta = dt.timedelta(days=180)
    # What people typed: comments and text answers, SMS replies, the notes and replies of closed cases.
    retention_free_text: dt.timedelta = dt.timedelta(days=365)
    # Responses themselves, scores included: NPS, CSAT and CES of the periods older than this go.
    retention_responses: dt.timedelta = dt.timedelta(days=1095)
    # In-app inbox items.
    retention_inbox: dt.timedelta = dt.timedelta(days=90)
    # Base64 of 32 random bytes wrapping every customer's data key: master key version 1. Required on
    # PostgreSQL (or FOLLOWUP_MASTER_KEYS); on SQLite a key file is created beside the database when
    # neither is set. Losing it loses all personal data.
    master_key: SecretStr | None = None
    # Several master key versions, for a rotation: VERSION:BASE64 entries separated by commas, the
    # current one first (new data keys are wrapped under it; the others still unwrap), e.g.
    # 2:KEY2,1:KEY1. FOLLOWUP_MASTER_KEY, if also set, is version 1. See docs/privacy.md (Keys).
    master_keys: SecretStr | None = None
    # Where master keys come from: "local" (FOLLOWUP_MASTER_KEY(S) or the key file) or "env"
    # (FOLLOWUP_MASTER_KEY_V1, _V2, … in the process environment; the current one is
    # FOLLOWUP_MASTER_KEY_CURRENT, else the highest).
    key_provider: Literal["local", "env"] = "local"
    # Quiet hours in the customer's own time zone, HH:MM; sends falling inside wait for the end.
    quiet_hours_start: str = "21:00"
    quiet_hours_end: str = "08:00"
    # When agents may call a customer, in the customer's own time zone: hours HH:MM-HH:MM, and days
    # as a range or list of Mon Tue Wed Thu Fri Sat Sun (e.g. Mon-Fri, or Mon,Wed,Fri).
    call_hours: str = "09:00-20:00"
    call_days: str = "Mon-Sat"
    # A softphone's link for a number, with {number} where the number goes (e.g. sip:{number}@pbx.example);
    # unset: the console offers a tel: link.
    call_url_template: str | None = None
    # Case deadlines per priority, first response / resolution: <priority>=<first>/<resolution>,
    # durations in m, h or d. A case past either is escalated to its queue's supervisors.
    case_slas: str = "security=1h/4h,high=4h/24h,normal=24h/72h"
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
    # Version of followup's built-in privacy notice, shown at FOLLOWUP_PUBLIC_URL/privacy and recorded
    # with each consent until a notice is published through PUT /api/v1/privacy/notices/{version}
    # (letters, digits, ".", "_", "-"; at most 32 characters). Publish your own: it can name you.
    privacy_notice_version: str = Field(default="2026-11-01", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
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
    # Admins must set up two-factor sign-in (a TOTP app) before the console shows them anything
    # else. Turn off only where something in front of the console already asks for a second factor.
    console_admin_two_factor: bool = True
    # Bearer token that GET /metrics requires (`Authorization: Bearer TOKEN`); use a long random
    # value. Unset (the default) turns metrics off: /metrics answers 404.
    metrics_token: SecretStr | None = None

    # SMS providers, in the order they are tried: a JSON list of objects, each with `name`, `kind`
    # (generic, twilio or aliyun), `url`, `rate_per_second`, `webhook_secret` and the kind's own
    # credentials (docs/channels/). Empty (the default): SMS is not sent from this process.
    sms_providers: list[SmsProviderSettings] = Field(default_factory=list, max_length=8)
    # Push through Firebase Cloud Messaging (Android): a JSON object with `credentials_file`,
    # `project_id`, and optionally `send_url` and `token_url` (Google's by default).
    fcm: FcmSettings | None = None
    # Push through APNs (iOS): a JSON object with `key_file`, `key_id`, `team_id`, `topic`, `url`.
    apns: ApnsSettings | None = None
    # Redis for the providers' shared rate limits (redis://host:6379/0). Unset: the database keeps them.
    redis_url: str | None = Field(default=None, pattern=r"^rediss?://[^\s]+$")
    # A provider that fails this many sends in a row (timeouts, 5xx, 429) is skipped for the
    # cool-down (its circuit opens); the next provider of the channel takes its messages.
    provider_failure_threshold: int = Field(default=5, ge=1, le=1000)
    provider_cooldown_seconds: float = Field(default=60.0, gt=0, le=86_400)
    # The name in the 【sign】 that opens every SMS to a mainland China number (carriers require one).
    sms_sign: str | None = Field(default=None, min_length=1, max_length=16)
    # The secret (whsec_…) that signs email bounce reports posted to /hooks/email/bounces in the
    # Standard Webhooks form. Unset: that endpoint refuses every report.
    email_webhook_secret: SecretStr | None = None
    # What a customer who answers "no" to "Was this you?" (a yes_no question) reads at once, on the
    # page after the answer and in the SMS reply: how to freeze their account. One paragraph per
    # locale (zh-CN, en), at most 500 characters, without control characters; the same for everyone,
    # so no personal data.
    freeze_instructions_zh_cn: str = "请立即在 App 中「我的 → 安全中心 → 冻结账户」冻结账户，或拨打客服热线。"
    freeze_instructions_en: str = (
        "Freeze your account now in the app under Me → Security Center → Freeze account, "
        "or call our customer service hotline."
    )
    # Outbound webhooks may post to private, loopback and link-local addresses (a test, a
    # deployment whose receivers live inside). Off: such URLs are refused, at creation and at send.
    webhooks_allow_private: bool = False

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

    @field_validator("call_hours")
    @classmethod
    def _check_call_hours(cls, value: str) -> str:
        parse_call_hours(value)
        return value

    @field_validator("call_days")
    @classmethod
    def _check_call_days(cls, value: str) -> str:
        parse_call_days(value)
        return value

    @field_validator("call_url_template")
    @classmethod
    def _check_call_url(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None  # set but empty: the tel: link, as when unset
        if value is not None and ("{number}" not in value or _CONTROL.search(value) or len(value) > 500):
            raise ValueError(
                "a call URL template is one line with {number} where the number goes, e.g. sip:{number}@pbx"
            )
        return value

    @field_validator("case_slas")
    @classmethod
    def _check_case_slas(cls, value: str) -> str:
        parse_case_slas(value)
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

    @field_validator("freeze_instructions_zh_cn", "freeze_instructions_en")
    @classmethod
    def _check_freeze_instructions(cls, value: str) -> str:
        text = value.strip()
        if not text or len(text) > MAX_FREEZE_INSTRUCTIONS or _CONTROL.search(text):
            raise ValueError(
                f"freeze instructions are one paragraph of 1 to {MAX_FREEZE_INSTRUCTIONS} characters "
                "without control characters (line breaks included)"
            )
        return text

    @field_validator("erasure_grace")
    @classmethod
    def _check_erasure_grace(cls, value: dt.timedelta) -> dt.timedelta:
        if value < dt.timedelta(0) or value > dt.timedelta(days=90):
            raise ValueError("the erasure grace is an ISO 8601 duration from PT0S to P90D")
        return value

    @field_validator(
        "retention_events", "retention_messages", "retention_free_text", "retention_responses", "retention_inbox"
    )
    @classmethod
    def _check_retention(cls, value: dt.timedelta) -> dt.timedelta:
        whole_days = value % dt.timedelta(days=1) == dt.timedelta(0)
        if value != dt.timedelta(0) and not (whole_days and dt.timedelta(days=1) <= value <= dt.timedelta(days=36_500)):
            raise ValueError(
                "a retention period is an ISO 8601 duration in whole days from P1D to P36500D, or P0D to keep for ever"
            )
        return value

    @field_validator("email_webhook_secret")
    @classmethod
    def _email_whsec(cls, value: SecretStr | None) -> SecretStr | None:
        return check_webhook_secret(value)

    @model_validator(mode="after")
    def _unique_provider_names(self) -> Settings:
        names = [provider.name for provider in self.sms_providers]
        if len(names) != len(set(names)):
            raise ValueError("sms_providers: each provider needs a name of its own")
        return self

    @model_validator(mode="after")
    def _grace_within_deadline(self) -> Settings:
        if self.erasure_grace >= dt.timedelta(days=self.erasure_days):
            raise ValueError("FOLLOWUP_ERASURE_GRACE must end before FOLLOWUP_ERASURE_DAYS, the legal deadline")
        return self

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
    def call_window(self) -> tuple[dt.time, dt.time, frozenset[int]]:
        """When agents may call: (first minute, end, weekdays as 0 = Monday), the customer's local time."""
        start, end = parse_call_hours(self.call_hours)
        return start, end, parse_call_days(self.call_days)

    @cached_property
    def case_sla(self) -> dict[str, tuple[dt.timedelta, dt.timedelta]]:
        """Priority → (first response, resolution) deadlines after a case opens."""
        return parse_case_slas(self.case_slas)

    def freeze_instructions(self, locale: str) -> str:
        """How to freeze the account, in the customer's locale (English for any but zh-CN)."""
        return self.freeze_instructions_zh_cn if locale == "zh-CN" else self.freeze_instructions_en

    @cached_property
    def quiet_hours(self) -> tuple[dt.time, dt.time]:
        return (dt.time.fromisoformat(self.quiet_hours_start), dt.time.fromisoformat(self.quiet_hours_end))

    @cached_property
    def retention(self) -> dict[str, dt.timedelta | None]:
        """Data class → how long it is kept (None: for ever), from the FOLLOWUP_RETENTION_* settings."""
        periods = {
            "events": self.retention_events,
            "messages": self.retention_messages,
            "free_text": self.retention_free_text,
            "responses": self.retention_responses,
            "inbox": self.retention_inbox,
        }
        return {name: period or None for name, period in periods.items()}

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


CASE_PRIORITIES = ("security", "high", "normal")
_DURATION = re.compile(r"^([1-9][0-9]{0,4})([mhd])$")
_UNITS = {"m": dt.timedelta(minutes=1), "h": dt.timedelta(hours=1), "d": dt.timedelta(days=1)}


def parse_case_slas(text: str) -> dict[str, tuple[dt.timedelta, dt.timedelta]]:
    """`security=1h/4h,high=4h/24h,normal=24h/72h` → priority → (first response, resolution);
    ValueError saying what is wrong. Every priority needs both, and the first response comes first."""
    slas: dict[str, tuple[dt.timedelta, dt.timedelta]] = {}
    for part in text.split(","):
        priority, _, spans = part.strip().partition("=")
        first, _, resolution = spans.partition("/")
        matched = [_DURATION.match(span.strip()) for span in (first, resolution)]
        if priority not in CASE_PRIORITIES or not all(matched):
            raise ValueError(
                f"case SLAs look like security=1h/4h,high=4h/24h,normal=24h/72h (priorities: "
                f"{', '.join(CASE_PRIORITIES)}; durations in m, h or d); '{part.strip()[:40]}' is not one"
            )
        first_span, resolution_span = (int(m.group(1)) * _UNITS[m.group(2)] for m in matched if m)
        if first_span > resolution_span:
            raise ValueError(f"case SLAs: the first response of '{priority}' cannot be due after its resolution")
        slas[priority] = (first_span, resolution_span)
    missing = [p for p in CASE_PRIORITIES if p not in slas]
    if missing:
        raise ValueError(f"case SLAs: give deadlines for {', '.join(missing)} too")
    return slas


DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def parse_call_hours(text: str) -> tuple[dt.time, dt.time]:
    """`09:00-20:00` → (09:00, 20:00); ValueError unless the first comes before the second."""
    first, _, last = text.strip().partition("-")
    if not (_HHMM.match(first.strip()) and _HHMM.match(last.strip())):
        raise ValueError("call hours look like 09:00-20:00 (the customer's local time)")
    start, end = dt.time.fromisoformat(first.strip()), dt.time.fromisoformat(last.strip())
    if start >= end:
        raise ValueError("call hours must start before they end, within one day, e.g. 09:00-20:00")
    return start, end


def parse_call_days(text: str) -> frozenset[int]:
    """`Mon-Sat` or `Mon,Wed,Fri` → weekday numbers (Monday is 0)."""
    days: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        names = [first.strip().title(), last.strip().title()] if dash else [first.strip().title()]
        if not all(name in DAYS for name in names):
            raise ValueError(f"call days look like Mon-Sat or Mon,Wed,Fri; '{part.strip()[:20]}' is not one")
        low, high = DAYS.index(names[0]), DAYS.index(names[-1])
        if high < low:
            raise ValueError("a range of call days runs forward within the week, e.g. Mon-Fri")
        days.update(range(low, high + 1))
    return frozenset(days)
