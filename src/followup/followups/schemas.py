from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from followup.dispatch.schemas import MessageSummary
from followup.followups.enums import ChannelReason, FollowupStatus
from followup.kernel.schemas import Schema


class MessageText(BaseModel):
    """A strategy's words in one locale, as templates (kernel.templating renders them)."""

    model_config = ConfigDict(frozen=True)

    subject: str
    body: str


class FollowupPlan(BaseModel):
    """What a follow-up will do, copied from its strategy version when it is planned.

    Kept as JSON on the follow-up (`followups.plan`), so editing a strategy never changes a
    follow-up already under way; read and written only through this model, and written without
    the fields that hold their defaults (a wave writes a plan per customer: the nulls were most of
    its bytes).
    """

    model_config = ConfigDict(frozen=True)

    strategy_key: str
    channels: tuple[str, ...]
    channel_index: int = 0  # the channel being tried now; a cascade moves it on
    # A timed cascade: per channel, the condition its step waits for ("opened" | "answered",
    # seconds after the step before) or None (tried only when the one before is refused).
    waits: tuple[tuple[str, int] | None, ...] | None = None
    survey_version_id: int
    reward_points: int = 0
    remind_after_s: int | None = None
    expire_after_s: int
    # The strategy's owner, when it has one: the email's From name and Reply-To.
    sender_name: str | None = None
    reply_to: str | None = None
    # The strategy's own words per locale, and the event they may speak of (only with a message).
    message: dict[str, MessageText] | None = None
    event: dict[str, Any] | None = None
    variant: str | None = None  # the strategy's variant this customer sticks to
    strategy_version: int | None = None  # the strategy's version that planned it
    # The personal channel: why `channels[0]` was chosen for this customer (see followups.channel_choice).
    channel_reason: ChannelReason | None = None
    # The `phone` channel: the queue of agents who call, and the calls tried before giving up.
    call_queue: str = "calls"
    max_call_attempts: int = 3
    # A check on the customer's own account ("Was this you?"): a service message, at any hour,
    # outside the fatigue budget (StrategyCreate.security_check).
    security_check: bool = False

    @property
    def remaining_channels(self) -> tuple[str, ...]:
        return self.channels[self.channel_index :]

    @property
    def purpose(self) -> str:
        """What the customer hears it for: `service` for a security check, else `feedback`."""
        return "service" if self.security_check else "feedback"


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
    # What this follow-up belongs to, unique per strategy and customer; None: the event's own key.
    run_key: str | None = None
    sender_name: str | None = None
    reply_to: str | None = None
    # (locale, subject, body) templates; with them, the event as a template reads it.
    message: tuple[tuple[str, str, str], ...] | None = None
    event_context: dict[str, Any] | None = None
    variant: str | None = None
    strategy_version: int | None = None
    auto_channel: bool = False  # the personal channel: planning chooses among `channels` per customer
    waits: tuple[tuple[str, int] | None, ...] | None = None  # a timed cascade (FollowupPlan.waits)
    time_zone: str | None = None  # the customer's, when the planner read it with the audience
    call_queue: str = "calls"
    max_call_attempts: int = 3
    security_check: bool = False

    def key(self) -> str:
        if self.run_key is not None:
            return self.run_key
        if self.event_id is None:
            raise ValueError("a follow-up without an event needs a run key")
        return event_run_key(self.event_id)


def event_run_key(event_id: int) -> str:
    """The run key of an event-driven follow-up: one per strategy, customer and event."""
    return f"event:{event_id}"


@dataclass
class PlanStats:
    planned: int = 0
    suppressed: int = 0
    deferred: int = 0
    duplicates: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    # Of the planned: the channel the policy chose, the UTC day the invite is due, the customers.
    channels: dict[str, int] = field(default_factory=dict)
    days: dict[dt.date, int] = field(default_factory=dict)
    planned_customers: list[int] = field(default_factory=list)


class HistoryOut(Schema):
    at: dt.datetime
    action: str
    reason: str | None
    detail: str | None


class FollowupOut(Schema):
    id: int
    strategy: str
    strategy_version: int | None = Field(description="the version of the strategy that planned it")
    variant: str | None = Field(description="the strategy's variant this customer sticks to, if it has variants")
    customer_id: str
    event_id: str | None
    event_type: str | None
    status: FollowupStatus
    reason: str | None
    channel: str | None
    chosen_channel: str | None = Field(
        description="the personal channel (`channels: auto`): the channel chosen at planning; else null"
    )
    channel_reason: ChannelReason | None = Field(
        description="the personal channel (`channels: auto`): why its channel was chosen; else null"
    )
    next_step: str | None
    due_at: dt.datetime | None
    planned_at: dt.datetime
    invited_at: dt.datetime | None
    responded_at: dt.datetime | None
    closed_at: dt.datetime | None
    history: list[HistoryOut]
    messages: list[MessageSummary]


class AnswerRecorded(Schema):
    """The job an answer leaves behind: what the customer's next page does not need, done by the
    worker after the answer's own transaction (its history line, message and channel statistics,
    the case's timeline and assignee, and the webhooks)."""

    followup_id: int
    response_id: int
    customer_id: int
    strategy_id: int | None
    invitation_channel: str = Field(description="the channel of the invitation that was answered")
    channel: str = Field(description="the channel the answer came back through")
    source: str
    nps: int | None
    csat: int | None
    reward_points: int
    case_id: int | None
    at: dt.datetime


@dataclass(frozen=True)
class AnswerOutcome:
    response_id: int
    followup_id: int
    reward_points: int
    case_ids: tuple[int, ...]
    interview_id: int | None = None  # the interview booked with the answers
    confirmation_queued: bool = False  # its confirmation email is on its way
    said: str | None = None  # a yes_no question's answer ("yes" or "no"); None for a rating
