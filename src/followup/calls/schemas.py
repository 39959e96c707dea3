from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field, field_validator

from followup.kernel.schemas import Schema, UtcDateTime
from followup.kernel.text import control_character

CallOutcomeName = Literal["answered", "no_answer", "busy", "call_back", "wrong_number", "refused", "do_not_call"]
CallStatus = Literal["due", "claimed", "done", "failed", "cancelled"]


class ScriptQuestion(Schema):
    """A survey question as the agent reads it out, in the customer's language."""

    id: str
    type: str
    prompt: str
    required: bool
    scale: tuple[int, int] | None = Field(default=None, description="ratings: the lowest and highest score")
    options: list[dict[str, str]] | None = Field(default=None, description="choices: each option's id and label")


class RecentFollowup(Schema):
    id: int
    strategy: str
    status: str
    channel: str | None
    planned_at: dt.datetime
    nps: int | None = None
    csat: int | None = None


class CallHistoryItem(Schema):
    at: dt.datetime
    outcome: str
    agent: str | None


class CallOut(Schema):
    id: int
    status: CallStatus
    queue: str
    due_at: dt.datetime
    lease_until: dt.datetime | None
    attempts: int
    max_attempts: int
    agent: str | None
    customer_id: str
    locale: str
    time_zone: str
    number: str | None = Field(description="the customer's phone number, masked; `reveal` shows it with a reason")
    greeting: str
    survey_title: str
    questions: list[ScriptQuestion]
    recent: list[RecentFollowup] = Field(description="the customer's latest follow-ups and their scores")
    history: list[CallHistoryItem]


class CallReveal(Schema):
    reason: str = Field(min_length=3, max_length=300, description="why the number is needed, for the audit log")

    @field_validator("reason")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if (found := control_character(value)) is not None:
            raise ValueError(f"must be one line without control characters; it holds {found}")
        return value


class CallRevealed(Schema):
    number: str
    call_url: str = Field(description="a tel: link, or the softphone's (FOLLOWUP_CALL_URL_TEMPLATE)")


class CallOutcomeIn(Schema):
    outcome: CallOutcomeName
    answers: dict[str, Any] | None = Field(
        default=None, description="answered: {question id: value}, the rating first, as on the survey page"
    )
    at: UtcDateTime | None = Field(default=None, description="call_back: when the customer asked to be called")
