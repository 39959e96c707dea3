"""ISO 8601 durations as the API speaks them (PT30M, P2D, P1W)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


def parse_duration(text: object) -> dt.timedelta:
    if isinstance(text, dt.timedelta):
        return text
    if not isinstance(text, str):
        raise ValueError("a duration is an ISO 8601 string such as PT30M or P2D")
    match = _DURATION.match(text.strip())
    if not match or text.strip() in ("P", "PT") or text.strip().endswith("T"):
        raise ValueError(
            f"'{text}' is not an ISO 8601 duration such as PT30M, PT2H or P7D "
            "(months and years are not fixed lengths and are not accepted)"
        )
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    try:
        return dt.timedelta(**parts)
    except OverflowError as exc:  # not a ValueError: pydantic would let it through as a 500
        raise ValueError(f"'{text}' is longer than any duration followup accepts") from exc


def format_duration(delta: dt.timedelta) -> str:
    total = int(delta.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "P"
    if days:
        text += f"{days}D"
    if hours or minutes or seconds or not days:
        text += "T"
        if hours:
            text += f"{hours}H"
        if minutes:
            text += f"{minutes}M"
        if seconds or not (hours or minutes):
            text += f"{seconds}S"
    return text


Duration = Annotated[
    dt.timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "format": "duration", "examples": ["PT30M", "P2D"]}),
]
