from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from followup.channels.schemas import MessageContent
from followup.kernel.schemas import Schema


class AttemptOut(Schema):
    """One try at sending a message."""

    number: int = Field(description="the claim that made the try: 1, 2, …")
    provider: str = Field(description="who was asked to deliver it (the channel's provider)")
    outcome: Literal["accepted", "transient", "permanent", "unknown", "lost", "error", "skipped"] = Field(
        description=(
            "accepted by the provider; refused for now (transient) or for good (permanent); unknown "
            "(the provider may have it); lost (the worker stopped before any answer); error (a fault "
            "of ours, the message failed for good); skipped (its circuit was open, or its rate limit "
            "full, and the next provider was tried)"
        )
    )
    seq: int = Field(default=0, description="within one claim, the providers in the order tried (failover): 0, 1, …")
    started_at: dt.datetime = Field(description="when the try began; for a lost one, when it was found lost")
    latency_ms: int | None = Field(description="how long the provider took to answer; null when it never did")
    provider_ref: str | None = Field(description="the provider's id for the message, once accepted")
    error_code: str | None = Field(description="a stable code for what went wrong, never the message's text")


class MessageSummary(Schema):
    id: int
    step: str
    channel: str
    status: str = Field(
        description="the send pipeline's own status: queued, sending, in_flight, sent, failed, suppressed, unknown"
    )
    state: Literal["queued", "sending", "accepted", "delivered", "failed", "bounced", "unknown"] = Field(
        description="queued → sending → accepted → delivered | failed | bounced | unknown"
    )
    reason: str | None
    attempt_count: int = Field(description="how many times the message was claimed for sending")
    attempts: list[AttemptOut] = Field(description="every try, oldest first")
    due_at: dt.datetime
    sent_at: dt.datetime | None = Field(description="when the provider accepted it (the same as accepted_at)")
    accepted_at: dt.datetime | None
    delivered_at: dt.datetime | None
    opened_at: dt.datetime | None
    clicked_at: dt.datetime | None
    answered_at: dt.datetime | None
    last_error: str | None


class OutboxMessage(Schema):
    """A message as its customer received it: the decrypted content, the address masked."""

    id: int
    followup_id: int | None  # null for a reply outside any follow-up (an opt-out's confirmation)
    customer_id: str
    recipient: str | None
    step: str
    channel: str
    status: str
    state: str = "queued"
    reason: str | None
    provider: str | None = None
    segments: int | None = None
    last_error: str | None = None
    attempts: list[AttemptOut] = Field(default_factory=list)
    created_at: dt.datetime
    sent_at: dt.datetime | None
    delivered_at: dt.datetime | None = None
    opened_at: dt.datetime | None = None
    clicked_at: dt.datetime | None = None
    answered_at: dt.datetime | None = None
    receipt_at: dt.datetime | None = None
    content: MessageContent | None


class MessageUndelivered(Schema):
    """The job payload when a message will not reach its customer: refused at send time
    (`suppressed`) or failed for good (`failed`). The follow-up domain cascades on it."""

    message_id: int
    followup_id: int
    step: str
    channel: str
    outcome: Literal["failed", "suppressed"]
    reason: str | None


class MessageOpened(Schema):
    id: int
    opened_at: dt.datetime = Field(description="when the customer first opened it")


class InboxItemRead(Schema):
    id: int
    read: bool
