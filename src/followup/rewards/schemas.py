from __future__ import annotations

import datetime as dt

from followup.kernel.schemas import Schema


class RewardEntryOut(Schema):
    id: int
    delta: int
    balance_after: int
    reason: str
    followup_id: int | None
    created_at: dt.datetime


class RewardsOut(Schema):
    customer_id: str
    balance: int
    entries: list[RewardEntryOut]
