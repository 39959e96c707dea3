from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from followup.kernel.schemas import Schema

RequestKind = Literal["erasure", "export"]
RequestStatus = Literal["pending", "held", "done"]


class ErasureIn(Schema):
    reason: str | None = Field(
        default=None, max_length=500, description="why the customer asks, as they or the wallet put it (optional)"
    )


class HoldIn(Schema):
    reason: str = Field(min_length=1, max_length=500, description="why the request waits, e.g. a legal hold")


class ErasureAccepted(Schema):
    request_id: str
    due_at: dt.datetime


class DataRequestOut(Schema):
    request_id: str
    customer_id: str = Field(description="the wallet's id; `erased-…` once the customer is erased")
    kind: RequestKind
    status: RequestStatus
    source: str = Field(description="who asked: api (the wallet's app), privacy_page (the customer), console")
    requested_at: dt.datetime
    due_at: dt.datetime = Field(description="when the worker carries it out (now plus FOLLOWUP_ERASURE_GRACE)")
    deadline_at: dt.datetime = Field(description="the legal deadline (FOLLOWUP_ERASURE_DAYS after the request)")
    done_at: dt.datetime | None
    overdue: bool = Field(description="not done and past its deadline")
    hold_reason: str | None
    held_by: str | None


class RetentionPartOut(Schema):
    part: str = Field(description="one table or column of the class, e.g. replies.texts")
    what: str = Field(description="what goes, and whether it is deleted or cleared")
    due: int = Field(description="rows older than the cutoff now: what the worker would purge")
    purged: int = Field(description="rows the worker purged, in all")
    last_purged: int = Field(description="rows purged by the last round that found any")
    last_purged_at: dt.datetime | None
    checked_at: dt.datetime | None = Field(description="when the worker last looked")


class RetentionClassOut(Schema):
    data_class: str = Field(description="events, messages, free_text, responses or inbox")
    period_days: int | None = Field(description="FOLLOWUP_RETENTION_<CLASS> in days; null: kept for ever")
    cutoff: dt.datetime | None = Field(description="what is older than this goes")
    due: int
    purged: int
    last_purged_at: dt.datetime | None
    checked_at: dt.datetime | None
    parts: list[RetentionPartOut]


class RetentionReport(Schema):
    at: dt.datetime = Field(description="when the report was made; cutoffs and due counts are as of then")
    classes: list[RetentionClassOut]
