from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any, Literal, NamedTuple

from pydantic import Field, field_validator

from followup.kernel.schemas import Schema
from followup.privacy.enums import ChannelName, Purpose

Locale = Literal["zh-CN", "en"]
AttributeValue = str | int | float | bool | None | list[str | int | float | bool]


def check_time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"'{value}' is not an IANA time zone, e.g. Asia/Shanghai or Europe/London") from exc
    return value


class CustomerUpsert(Schema):
    """Fields left out are kept as they are; `null` clears email or phone."""

    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=32)
    locale: Locale | None = None
    time_zone: str | None = Field(default=None, max_length=64)
    attributes: dict[str, AttributeValue] | None = Field(default=None, max_length=100)
    consents: dict[Purpose, dict[ChannelName, bool]] | None = None

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else check_time_zone(value)


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
