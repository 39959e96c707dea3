from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections.abc import Mapping
from importlib import resources
from typing import Any, Literal, NamedTuple

from pydantic import Field, field_validator

from followup.config import InputLimits
from followup.customers.contacts import REACH_BITS, ContactKind
from followup.kernel.schemas import Schema
from followup.privacy.enums import ChannelName, Purpose

Locale = Literal["zh-CN", "en"]
AttributeValue = str | int | float | bool | None | list[str | int | float | bool]


def _iana_zones() -> frozenset[str]:
    """The tz database's list of zone names (the `tzdata` package's own list), without `Factory`.

    Not `zoneinfo.available_timezones()`: that also walks the system's zoneinfo directory, which
    holds files that are not zones (`localtime`, `posixrules`) and differs from one host to another.
    """
    names = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()
    return frozenset(names) - {"Factory"}


IANA_ZONES = _iana_zones()


def check_time_zone(value: str) -> str:
    if value not in IANA_ZONES:
        shown = value if len(value) <= 64 else value[:64] + "…"
        raise ValueError(f"{shown!r} is not an IANA time zone, e.g. Asia/Shanghai or Europe/London")
    zoneinfo.ZoneInfo(value)  # every listed name loads; a broken tzdata install fails loudly here
    return value


def attribute_bytes(value: Any) -> int:
    """The size an attribute value is held to: UTF-8 bytes of a text, of the JSON of anything else."""
    if isinstance(value, str):
        return len(value.encode(errors="surrogatepass"))
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(errors="surrogatepass"))


def attributes_problem(attributes: Mapping[str, Any], *, limits: InputLimits) -> tuple[str, str] | None:
    """Why these attributes (of a customer or an event) may not be stored, as (field, sentence).

    Checked on write only: a customer stored under looser limits still reads, and still matches.
    """
    if len(attributes) > limits.max_attributes:
        return "attributes", f"at most {limits.max_attributes} attributes are kept; these are {len(attributes)}"
    limit = limits.max_attribute_bytes
    for name, value in attributes.items():
        if len(name.encode(errors="surrogatepass")) > limit:
            return "attributes", f"an attribute name may hold at most {limit} bytes"
        size = attribute_bytes(value)
        if size > limit:
            return f"attributes.{name}", f"the value of '{name}' may hold at most {limit} bytes; it has {size}"
    return None


class CustomerUpsert(Schema):
    """Fields left out are kept as they are; `null` clears email or phone."""

    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=32)
    locale: Locale | None = None
    time_zone: str | None = Field(default=None, max_length=64)
    # How many and how large: checked against the settings on write (attributes_problem).
    attributes: dict[str, AttributeValue] | None = None
    consents: dict[Purpose, dict[ChannelName, bool]] | None = None
    # `null` clears either; read by rules as customer.preferred_channel and customer.value_tier.
    preferred_channel: ChannelName | None = None
    value_tier: str | None = Field(default=None, min_length=1, max_length=32, pattern=r"^[^\x00-\x1f\x7f-\x9f]*$")

    @field_validator("time_zone", mode="before")
    @classmethod
    def _tz(cls, value: object) -> object:
        # Before whitespace is stripped: "UTC " is not a zone's name, and is refused, not mended.
        return check_time_zone(value) if isinstance(value, str) else value


class CustomerStats(Schema):
    """What the customer has done, as rules read it under `customer.stats.*`.

    Windows are whole UTC days: `_30d` is today (UTC) and the 29 days before it. Times are RFC 3339
    text in UTC to the second, so rules compare them as text (`"2026-11-01T00:00:00Z"`).
    """

    events_30d: int = Field(description="events of every type")
    payments_30d: int = Field(description="payment.succeeded events")
    volume_30d: int = Field(description="sum of amount (minor units) of succeeded payments, transfers and top-ups")
    volume_90d: int
    failed_payments_30d: int = Field(description="payment.failed events")
    disputes_90d: int = Field(description="dispute.opened events")
    active_days_30d: int = Field(description="UTC days with at least one event")
    first_seen_at: str | None = Field(description="the earliest occurred_at of their events")
    last_active_at: str | None = Field(description="the latest occurred_at of their events")
    tx_types: list[str] = Field(description="the event types they have, sorted")
    features_used: list[str] = Field(description="attributes.feature of their feature.* events, sorted")
    last_followup_at: str | None = Field(description="when a follow-up last invited them")
    last_nps: int | None = Field(description="the NPS score of their latest answer that had one")
    responses_by_channel: dict[str, int] = Field(description="answered follow-ups per channel")


class ContactPointOut(Schema):
    """A contact point as staff and the wallet see it: masked, with its status."""

    kind: str  # email, phone, push_device, social_id
    device_id: str | None  # a push device's id, as the wallet named it
    platform: str | None  # a push device's: android, ios
    value: str | None  # masked: z***@example.com, 138****1234, …a1b2c3; null once erased
    status: str  # valid, bounced, invalid, unregistered
    status_reason: str | None  # the provider's code that changed the status
    changed_at: dt.datetime


class DeviceIn(Schema):
    """PUT /customers/{id}/devices/{device_id}: the app installation's push token."""

    platform: Literal["android", "ios"]
    token: str = Field(min_length=1, max_length=4096)


class CustomerOut(Schema):
    customer_id: str
    email: str | None
    phone: str | None
    contact_points: list[ContactPointOut] = Field(default_factory=list)
    locale: str
    time_zone: str
    preferred_channel: str | None
    value_tier: str | None
    attributes: dict[str, Any]
    consents: dict[str, dict[str, bool]]
    event_count: int
    last_event_at: dt.datetime | None
    stats: CustomerStats
    created_at: dt.datetime
    updated_at: dt.datetime


class CustomerSample(Schema):
    """One customer of a preview's sample, as staff may see them: contact points masked."""

    customer_id: str
    locale: str
    time_zone: str
    value_tier: str | None
    email: str | None
    phone: str | None


class CustomerSnapshot(NamedTuple):
    """What the policy and the rule engine see of a customer: no contact points in clear.

    A plain tuple: planning builds one per triggered customer in every ingest batch, straight from
    our own columns, with nothing left to validate."""

    id: int
    external_id: str
    locale: str
    time_zone: str
    attributes: dict[str, Any]
    reach: int  # `customers.reach`: a bit per kind of contact point they hold a valid one of
    event_count: int
    preferred_channel: str | None = None
    value_tier: str | None = None
    stats: dict[str, Any] | None = None  # CustomerStats as a dict, when planning asked for it

    def has_contact(self, kind: str) -> bool:
        """Whether the customer holds a valid contact point of this kind (a `contacts.ContactKind`)."""
        return bool(self.reach & REACH_BITS.get(kind, 0))

    @property
    def has_email(self) -> bool:
        return self.has_contact(ContactKind.EMAIL)

    @property
    def has_phone(self) -> bool:
        return self.has_contact(ContactKind.PHONE)

    def rule_context(self) -> dict[str, Any]:
        """What a rule tree reads under `customer.` (customers.audience_repository says the same in SQL)."""
        context = {
            "id": self.external_id,
            "locale": self.locale,
            "time_zone": self.time_zone,
            "attributes": self.attributes,
            "event_count": self.event_count,
            "has_email": self.has_email,
            "has_phone": self.has_phone,
            "preferred_channel": self.preferred_channel,
            "value_tier": self.value_tier,
        }
        if self.stats is not None:
            context["stats"] = self.stats
        return context


# The fields a rule can select an audience by in the database (customers.audience_repository).
AUDIENCE_FIELDS = (
    "customer.id",
    "customer.locale",
    "customer.time_zone",
    "customer.event_count",
    "customer.has_email",
    "customer.has_phone",
    "customer.preferred_channel",
    "customer.value_tier",
    "customer.attributes.<name>",
    "customer.stats.<name>",
)

# ── activity: what each event adds to a customer's stats ──────────────────────────────────────
PAYMENT = "payment.succeeded"
FAILED_PAYMENT = "payment.failed"
DISPUTE = "dispute.opened"
VOLUME_TYPES = frozenset({"payment.succeeded", "transfer.succeeded", "topup.succeeded"})
FEATURE_PREFIX = "feature."
MAX_NAME = 128  # a feature name longer than this is not kept among features_used

# customer.stats.<name> summed from the day buckets: (the event types counted, or None for every
# type; "events" to count them or "amount" to sum their amounts; days in the window).
WINDOWED_STATS: dict[str, tuple[tuple[str, ...] | None, str, int]] = {
    "events_30d": (None, "events", 30),
    "payments_30d": ((PAYMENT,), "events", 30),
    "volume_30d": (tuple(sorted(VOLUME_TYPES)), "amount", 30),
    "volume_90d": (tuple(sorted(VOLUME_TYPES)), "amount", 90),
    "failed_payments_30d": ((FAILED_PAYMENT,), "events", 30),
    "disputes_90d": ((DISPUTE,), "events", 90),
}
ACTIVE_DAYS = ("active_days_30d", 30)
STATS_FIELDS = (
    *WINDOWED_STATS,
    ACTIVE_DAYS[0],
    "first_seen_at",
    "last_active_at",
    "tx_types",
    "features_used",
    "last_followup_at",
    "last_nps",
    "responses_by_channel",
)


# One stored event as activity reads it: (customer id, type, occurred_at, amount, attributes).
# A plain tuple: ingest hands over one per stored event, and builds nothing else for it.
ActivityEvent = tuple[int, str, dt.datetime, int | None, Mapping[str, Any]]


def feature_of(type_: str, attributes: Mapping[str, Any]) -> str:
    """The feature a feature.* event names in `attributes.feature`, or "" (none, or not a name)."""
    if not type_.startswith(FEATURE_PREFIX):
        return ""
    feature = attributes.get("feature")
    return feature if isinstance(feature, str) and 0 < len(feature) <= MAX_NAME else ""


def epoch_day(day: dt.date) -> int:
    """A UTC day as the buckets number it: days since 1970-01-01."""
    return (day - _EPOCH).days


_EPOCH = dt.date(1970, 1, 1)


def rfc3339(value: dt.datetime | int | None) -> str | None:
    """A UTC time (or Unix seconds) as stats show it: RFC 3339 to the second, `Z`."""
    if value is None:
        return None
    if isinstance(value, int):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AudienceFieldError(ValueError):
    """A rule names a field an audience cannot be found by (an event field, an unknown name)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def stats_field_problem(field: str) -> str | None:
    """Why a rule's `customer.stats.*` field names nothing, as a sentence; None when it is known."""
    parts = field.split(".")
    if parts[:2] != ["customer", "stats"]:
        return None
    name = parts[2] if len(parts) > 2 else ""
    if name not in STATS_FIELDS:
        return f"'{field}' is not a customer stat; known: {', '.join(STATS_FIELDS)}"
    if len(parts) > 3 and not (name == "responses_by_channel" and len(parts) == 4):
        return f"'{field}' goes deeper than '{name}' can; only responses_by_channel.<channel> names a part"
    return None
