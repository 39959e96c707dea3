from __future__ import annotations

import datetime as dt
import json
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StrictInt, ValidationInfo, field_validator

from followup.kernel.schemas import Schema

MAX_BATCH = 10_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("occurred_at needs a UTC offset")
        return value.astimezone(dt.UTC)
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("occurred_at must be an RFC 3339 time with an offset, e.g. 2026-11-23T10:15:00+08:00")
    text = value.replace("z", "Z").replace("Z", "+00:00")
    if "." in text:  # Python's parser takes at most six fractional digits.
        head, _, tail = text.partition(".")
        digits = re.match(r"\d+", tail)
        frac = digits.group(0) if digits else ""
        text = f"{head}.{frac[:6].ljust(6, '0')}{tail[len(frac) :]}"
    parsed = dt.datetime.fromisoformat(text)
    # Far outside this range a time cannot be moved to UTC or have a delay added without overflow.
    if not 1970 <= parsed.year <= 2999:
        raise ValueError("occurred_at must be in the years 1970 to 2999")
    return parsed.astimezone(dt.UTC)


RFC3339 = Annotated[dt.datetime, BeforeValidator(_rfc3339)]


class EventIn(Schema):
    event_id: str = Field(min_length=1, max_length=128)
    type: str = Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$", max_length=64)
    customer_id: str = Field(min_length=1, max_length=128)
    occurred_at: RFC3339
    amount: StrictInt | None = Field(default=None, ge=-(10**15), le=10**15)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    attributes: dict[str, Any] = Field(default_factory=dict, max_length=50)

    @field_validator("event_id", "customer_id")
    @classmethod
    def _printable(cls, value: str, info: ValidationInfo) -> str:
        # PostgreSQL text cannot hold NUL; no other control character belongs in an id either.
        if _CONTROL.search(value):
            raise ValueError(f"{info.field_name} must not contain control characters")
        return value

    @field_validator("attributes")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            return value
        try:
            encoded = json.dumps(value, allow_nan=False, ensure_ascii=False).encode()
        except ValueError as exc:  # Python's parser accepts NaN, Infinity and lone surrogates ("\ud800")
            raise ValueError("attributes must hold only finite numbers and valid Unicode text") from exc
        if len(encoded) > 8000:
            raise ValueError("attributes must stay under 8 kB")
        return value


class EventBatch(Schema):
    events: list[Any] = Field(max_length=MAX_BATCH)


class Rejection(Schema):
    index: int
    event_id: str | None
    code: str
    message: str


class IngestResult(Schema):
    accepted: int
    duplicates: int
    rejected: list[Rejection]
