from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections.abc import Mapping
from importlib import resources
from typing import Any, Literal, NamedTuple

from pydantic import Field, field_validator

from followup.config import InputLimits
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

    @field_validator("time_zone", mode="before")
    @classmethod
    def _tz(cls, value: object) -> object:
        # Before whitespace is stripped: "UTC " is not a zone's name, and is refused, not mended.
        return check_time_zone(value) if isinstance(value, str) else value


class CustomerOut(Schema):
    customer_id: str
    email: str | None
    phone: str | None
    locale: str
    time_zone: str
    attributes: dict[str, Any]
    consents: dict[str, dict[str, bool]]
    event_count: int
    last_event_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class CustomerSnapshot(NamedTuple):
    """What the policy and the rule engine see of a customer: no contact points in clear.

    A plain tuple: planning builds one per triggered customer in every ingest batch, straight from
    our own columns, with nothing left to validate."""

    id: int
    external_id: str
    locale: str
    time_zone: str
    attributes: dict[str, Any]
    has_email: bool
    has_phone: bool
    event_count: int

    def rule_context(self) -> dict[str, Any]:
        """What a rule tree reads under `customer.` (customers.audience_repository says the same in SQL)."""
        return {
            "id": self.external_id,
            "locale": self.locale,
            "time_zone": self.time_zone,
            "attributes": self.attributes,
            "event_count": self.event_count,
            "has_email": self.has_email,
            "has_phone": self.has_phone,
        }


# The fields a rule can select an audience by in the database (customers.audience_repository).
AUDIENCE_FIELDS = (
    "customer.id",
    "customer.locale",
    "customer.time_zone",
    "customer.event_count",
    "customer.has_email",
    "customer.has_phone",
    "customer.attributes.<name>",
)


class AudienceFieldError(ValueError):
    """A rule names a field an audience cannot be found by (an event field, an unknown name)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
