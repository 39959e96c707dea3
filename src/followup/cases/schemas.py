from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field, field_validator

from followup.kernel.schemas import Schema
from followup.kernel.text import control_character

CaseKind = Literal["detractor", "security", "complaint"]
CasePriority = Literal["security", "high", "normal"]
CaseStatus = Literal["open", "assigned", "waiting", "resolved", "closed", "reopened"]
# A list filter: one status, or `active` for every case still being worked.
CaseStatusFilter = Literal["open", "assigned", "waiting", "resolved", "closed", "reopened", "active"]
ResolutionCode = Literal["fixed", "explained", "refunded", "duplicate", "no_action"]
CaseQueue = str


def _one_line(value: str | None) -> str | None:
    if value is not None and (found := control_character(value)) is not None:
        raise ValueError(f"must be one line without control characters; it holds {found}")
    return value


def _lines(value: str) -> str:
    if (found := control_character(value, multiline=True)) is not None:
        raise ValueError(f"may hold line breaks but no other control character; it holds {found}")
    return value


class CaseClose(Schema):
    resolution: str = Field(min_length=1, max_length=2000, description="what was done, for the record")

    _checked = field_validator("resolution")(_lines)


class CaseAssign(Schema):
    assignee: str | None = Field(
        max_length=254, description="the email of an agent of the case's queue (or an admin); null unassigns"
    )

    _checked = field_validator("assignee")(_one_line)


class CaseNote(Schema):
    text: str = Field(min_length=1, max_length=4000, description="an internal note: staff alone read it")

    _checked = field_validator("text")(_lines)


class CaseReply(Schema):
    text: str = Field(
        min_length=1, max_length=2000, description="what the customer is sent, on their channel, as a service message"
    )

    _checked = field_validator("text")(_lines)


class CaseResolve(Schema):
    code: ResolutionCode = Field(description="what resolved it")
    root_cause: str = Field(min_length=1, max_length=2000)
    action: str = Field(min_length=1, max_length=2000, description="what was done")

    _checked = field_validator("root_cause", "action")(_lines)


class CaseReopen(Schema):
    reason: str = Field(default="by hand", min_length=1, max_length=500)

    _checked = field_validator("reason")(_one_line)


class CaseOut(Schema):
    id: int
    customer_id: str
    followup_id: int | None
    response_id: int | None
    kind: CaseKind
    queue: str
    priority: CasePriority
    status: CaseStatus
    summary: str
    assignee: str | None
    opened_at: dt.datetime
    first_response_due_at: dt.datetime | None
    first_response_at: dt.datetime | None
    due_at: dt.datetime
    overdue: bool
    breach: str | None = Field(description="the deadline it missed and was escalated for: first_response or resolution")
    resolved_at: dt.datetime | None
    resolution_code: ResolutionCode | None
    resurvey_solved: bool | None = Field(description="the customer's answer to 'did we solve it?'")
    resurvey_csat: int | None
    closed_at: dt.datetime | None


class CaseEventOut(Schema):
    at: dt.datetime
    actor: str
    kind: str
    detail: dict[str, Any]
    text: str | None = Field(default=None, description="a note's or reply's words, or a resolution's cause and action")


class CaseDetail(CaseOut):
    timeline: list[CaseEventOut]
