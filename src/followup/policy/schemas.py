from __future__ import annotations

import datetime as dt
from typing import Literal, NamedTuple

RefusalReason = Literal[
    "no_consent",
    "unreachable",
    "fatigue",
    "duplicate",
    "open_security_case",
    "holdout",
    "not_sampled",
]
DeferralReason = Literal["quiet_hours"]


class PlanningRequest(NamedTuple):
    customer_id: int
    strategy_id: int
    channels: tuple[str, ...]
    recontact_days: int
    send_at: dt.datetime


class Decision(NamedTuple):
    allowed: bool
    reason: str | None = None
    channel: str | None = None
    send_at: dt.datetime | None = None
    deferred: str | None = None
