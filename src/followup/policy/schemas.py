from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from followup.policy.enums import DeferralReason, RefusalReason


class PlanningRequest(NamedTuple):
    customer_id: int
    strategy_id: int
    channels: tuple[str, ...]
    recontact_days: int
    send_at: dt.datetime
    auto_channel: bool = False  # the personal channel: the decision lists every channel allowed
    security_check: bool = False  # a check on the customer's own account (policy.check_planning)


class Decision(NamedTuple):
    allowed: bool
    reason: RefusalReason | None = None
    channel: str | None = None
    send_at: dt.datetime | None = None
    deferred: DeferralReason | None = None
    # For the personal channel: every channel reachable and consented, in the strategy's order.
    options: tuple[str, ...] = ()
