from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable
from typing import Annotated, Any, NotRequired

from pydantic import ConfigDict, Field, StrictInt, StringConstraints, TypeAdapter
from typing_extensions import TypedDict

from followup.config import InputLimits
from followup.customers.schemas import attributes_problem
from followup.kernel.inputs import json_has_control
from followup.kernel.schemas import Schema

try:
    from _json import make_encoder
except ImportError:  # an interpreter without the C accelerator
    make_encoder = None  # type: ignore[assignment,misc]

MAX_BATCH = 10_000
# The fields a rule reads of an event (`event.attributes.<name>` for any attribute), stored or arriving.
EVENT_FIELDS = ("event.type", "event.event_id", "event.amount", "event.currency", "event.attributes.*")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


def parse_occurred_at(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("occurred_at needs a UTC offset")
        return value.astimezone(dt.UTC)
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("occurred_at must be an RFC 3339 time with an offset, e.g. 2026-11-23T10:15:00+08:00")
    try:  # the common shape, which Python's parser takes as it is
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        parsed = _parse_unusual(value)
    # Far outside this range a time cannot be moved to UTC or have a delay added without overflow.
    if not 1970 <= parsed.year <= 2999:
        raise ValueError("occurred_at must be in the years 1970 to 2999")
    return parsed.astimezone(dt.UTC)


def _parse_unusual(value: str) -> dt.datetime:
    """Lower-case t/z, and fractions Python's parser refuses; raises the parser's own words."""
    text = value.replace("z", "Z").replace("Z", "+00:00")
    if "." in text:  # Python's parser takes at most six fractional digits.
        head, _, tail = text.partition(".")
        digits = re.match(r"\d+", tail)
        frac = digits.group(0) if digits else ""
        text = f"{head}.{frac[:6].ljust(6, '0')}{tail[len(frac) :]}"
    return dt.datetime.fromisoformat(text)


# No C0 or C1 control character, no DEL (a lone surrogate cannot reach the pattern: the schema
# refuses it as not valid unicode first).
_PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]*$"
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_PRINTABLE)]


class EventIn(TypedDict):
    """One event as the wallet sends it.

    A batch is validated in one call (a TypeAdapter over the list), so every check that can live in
    the schema does; the time and the size of `attributes` (which depends on the settings) are
    checked right after, per event, by `parse_occurred_at` and `encode_attributes`, which also
    produce the stored values.
    """

    __pydantic_config__ = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)  # type: ignore[misc]

    event_id: Identifier
    type: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$", max_length=64)]
    customer_id: Identifier
    occurred_at: Any
    amount: NotRequired[Annotated[StrictInt, Field(ge=-(10**15), le=10**15)] | None]
    currency: NotRequired[Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None]
    attributes: NotRequired[dict[str, Any]]


EVENTS = TypeAdapter(list[EventIn])
_VALID_UNICODE = "must be valid Unicode text (a lone surrogate such as \\ud800 is not)"
FRIENDLY = {
    # The schema's own wording for a pattern names the pattern; say what it means instead.
    ("event_id", "string_pattern_mismatch"): "event_id must not contain control characters",
    ("customer_id", "string_pattern_mismatch"): "customer_id must not contain control characters",
    ("event_id", "string_unicode"): "event_id must be valid Unicode text (a lone surrogate such as \\ud800 is not)",
    (
        "customer_id",
        "string_unicode",
    ): "customer_id must be valid Unicode text (a lone surrogate such as \\ud800 is not)",
}


def _not_json(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not a JSON value")


# The C encoder built once with the options attributes need (no NaN or Infinity, text as it is):
# json.dumps with options builds a new encoder on every call, which costs more than the encoding.
_encode: Callable[[Any, int], Iterable[str]] = (
    make_encoder({}, _not_json, json.encoder.encode_basestring, None, ":", ",", False, False, False)
    if make_encoder is not None
    else lambda value, _level: [json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))]
)


def encode_attributes(value: dict[str, Any], *, limits: InputLimits) -> str:
    """The attributes as stored: JSON text, finite numbers and valid Unicode only, under 8 kB in
    all, within the settings' count and value size.

    On the hot path: when the whole text fits the size of one value, no value can be larger, so
    values are measured one by one only for the rare event with large attributes.
    """
    if not value:
        return "{}"
    if len(value) > limits.max_attributes:
        raise ValueError(f"at most {limits.max_attributes} attributes are kept; these are {len(value)}")
    try:
        encoded = "".join(_encode(value, 0))
        size = len(encoded.encode())
    except (ValueError, UnicodeEncodeError) as exc:  # NaN, Infinity, lone surrogates ("\ud800")
        raise ValueError("attributes must hold only finite numbers and valid Unicode text") from exc
    except (TypeError, RecursionError) as exc:  # Python callers: a value JSON cannot hold
        raise ValueError(f"attributes must hold only JSON values ({exc})") from exc
    if json_has_control(encoded):
        raise ValueError("attributes must not hold control characters (tab and line breaks are allowed)")
    if size > 8000:
        raise ValueError("attributes must stay under 8 kB")
    if size > limits.max_attribute_bytes:
        problem = attributes_problem(value, limits=limits)
        if problem is not None:
            raise ValueError(problem[1])
    return encoded


class EventsBody(Schema):
    """Up to 10,000 events. Each is checked on its own, so one bad event does not fail the others; a
    larger batch is refused with 413 batch_too_large."""

    events: list[Any]


class Rejection(Schema):
    index: int
    event_id: str | None
    code: str
    message: str


class IngestResult(Schema):
    accepted: int
    duplicates: int
    rejected: list[Rejection]
