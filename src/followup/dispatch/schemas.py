from __future__ import annotations

import datetime as dt

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
