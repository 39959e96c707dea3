from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from followup.dispatch.schemas import MessageSummary
from followup.kernel.schemas import Schema

FollowupStatus = Literal["planned", "invited", "reminded", "responded", "expired", "suppressed", "failed"]
OPEN_STATUSES = ("planned", "invited", "reminded")


class PlanItem(NamedTuple):
    """One (strategy, event, customer) match the planner wants a follow-up for."""

    strategy_id: int
    strategy_key: str
    customer_id: int
    event_id: int | None
    event_type: str | None
    event_ref: str | None
    send_at: dt.datetime
    channels: tuple[str, ...]
    recontact_days: int
    survey_version_id: int
    reward_points: int
    remind_after: dt.timedelta | None
    expire_after: dt.timedelta
    preset_reason: str | None = None


@dataclass
class PlanStats:
    planned: int = 0
    suppressed: int = 0
    deferred: int = 0
    duplicates: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class HistoryOut(Schema):
    at: dt.datetime
    action: str
    reason: str | None
    detail: str | None


class FollowupOut(Schema):
    id: int
    strategy: str
    customer_id: str
    event_id: str | None
    event_type: str | None
    status: FollowupStatus
    reason: str | None
    channel: str | None
    next_step: str | None
    due_at: dt.datetime | None
    planned_at: dt.datetime
    invited_at: dt.datetime | None
    responded_at: dt.datetime | None
    closed_at: dt.datetime | None
    history: list[HistoryOut]
    messages: list[MessageSummary]


@dataclass(frozen=True)
class AnswerOutcome:
    response_id: int
    followup_id: int
    reward_points: int
    case_ids: tuple[int, ...]
