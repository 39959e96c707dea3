from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from followup.kernel.db import Base, BigId, UTCDateTime


class Message(Base):
    """One delivery of a follow-up over one channel.

    Status walks queued → sending (claimed, leased) → in_flight (handed to the provider) → sent.
    A message found in_flight after its lease ran out had an unknown fate: on a channel with an
    idempotency key it is retried with that key, otherwise it is marked `unknown`, never resent.
    The rendered content is sealed under the customer's data key. Each try is a row of
    `message_attempts`; the state the API shows is read from the status (`service.delivery_state`),
    and the times after acceptance are set as they happen.
    """

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    followup_id: Mapped[int] = mapped_column(BigId, ForeignKey("followups.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    step: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    content_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    attempts: Mapped[int] = mapped_column(default=0)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    provider_ref: Mapped[str | None] = mapped_column(String(255))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # accepted by the provider
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    opened_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    clicked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class MessageAttempt(Base):
    """One try at sending a message: which provider, what came of it, how long it took. `number`
    is the claim that made the try (1, 2, …); a try whose worker stopped before any answer is
    recorded when the message is next claimed or settled, as `lost`."""

    __tablename__ = "message_attempts"
    __table_args__ = (UniqueConstraint("message_id", "number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id", ondelete="CASCADE"))
    number: Mapped[int]
    provider: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    latency_ms: Mapped[int | None]
    outcome: Mapped[str] = mapped_column(String(16))
    provider_ref: Mapped[str | None] = mapped_column(String(255))
    error_code: Mapped[str | None] = mapped_column(String(64))
