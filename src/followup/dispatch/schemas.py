from __future__ import annotations

import datetime as dt
from typing import Literal

from followup.channels.schemas import MessageContent
from followup.kernel.schemas import Schema


class MessageSummary(Schema):
    id: int
    step: str
    channel: str
    status: str
    reason: str | None
    attempts: int
    due_at: dt.datetime
    sent_at: dt.datetime | None
    last_error: str | None


class OutboxMessage(Schema):
    """A message as its customer received it: the decrypted content, the address masked."""

    id: int
    followup_id: int
    customer_id: str
    recipient: str | None
    step: str
    channel: str
    status: str
    reason: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
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
