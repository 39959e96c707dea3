"""Base of every request and response shape."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict

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


UtcDateTime = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
