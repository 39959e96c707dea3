"""Base of every request and response shape."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict

T = TypeVar("T")


class Schema(BaseModel):
    """Strict about unknown fields so a typo in a request is an error, not a silent default.

    NaN and Infinity are refused: Python's JSON parser reads them, JSON and PostgreSQL do not.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)


def _in_utc(value: dt.datetime) -> dt.datetime:
    try:
        return value.astimezone(dt.UTC)
    except OverflowError as exc:  # year 1 or 9999 with an offset; not a ValueError, so caught here
        raise ValueError("the time is outside the years 1 to 9999 in UTC") from exc


# RFC 3339 §5.6 date-time: full date, full time, offset required ("T" may be a space, §5.6 note).
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})")


def _rfc3339_text(value: Any) -> Any:
    """Only RFC 3339 text is a time here: not a number of seconds, not a date, not a time without an offset."""
    if isinstance(value, dt.datetime):
        return value  # built in code, not read from a request
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError(
            "give an RFC 3339 time with an offset, such as 2026-11-01T00:00:00Z or 2026-11-01T08:00:00+08:00"
        )
    return value


UtcDateTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_in_utc)]


def _utc_reachable(value: dt.datetime) -> dt.datetime:
    _in_utc(value)
    return value


# The same RFC 3339 time, kept with the offset it was written in: an interview slot is shown to the
# customer on the wall clock it was offered in.
OffsetDateTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_utc_reachable)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int


def _left_out_default(kind: str, loc: tuple[Any, ...], body: Any) -> bool:
    """A top-level field the client left out whose default our own validator refused (deeper
    parts of a location may be union tags, never a field of the body)."""
    return kind == "value_error" and len(loc) == 1 and isinstance(body, dict) and isinstance(loc[0], str)


def client_path(loc: tuple[Any, ...], body: Any, kind: str) -> list[str]:
    """The field as the client wrote it. Pydantic puts the tags of unions (`condition`, `str`) and
    `[key]` into its locations; a part the request does not have is dropped, unless it is the
    missing field itself or a field left out whose default was refused (a proactive strategy
    without its `cadence`)."""
    path: list[str] = []
    current = body
    for position, part in enumerate(loc):
        in_object = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_object or in_list:
            current = current[part]
        elif position != len(loc) - 1 or not (kind == "missing" or _left_out_default(kind, loc, body)):
            continue
        path.append(str(part))
    return path
