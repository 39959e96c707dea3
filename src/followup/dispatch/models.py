from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, LargeBinary, SmallInteger, String, Text, UniqueConstraint, text
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
    __table_args__ = (
        Index("ix_messages_due", "status", "due_at"),
        Index("ix_messages_provider_ref", "provider_ref"),
        # Messages whose content is still held, by age, for the retention purge (a cleared one leaves it).
        Index(
            "ix_messages_content_created",
            "created_at",
            sqlite_where=text("length(content_sealed) > 0"),
            postgresql_where=text("length(content_sealed) > 0"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # None for a reply the customer asked for outside any follow-up (an opt-out's confirmation).
    followup_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("followups.id", ondelete="CASCADE"), index=True)
    # The follow-up's strategy, copied when queued, so the funnel groups messages by strategy alone.
    strategy_id: Mapped[int | None] = mapped_column(BigId)
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
    # The provider's receipt: delivered, failed (the carrier gave up) or bounced (a hard bounce).
    receipt: Mapped[str | None] = mapped_column(String(16))
    receipt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    provider: Mapped[str | None] = mapped_column(String(32))  # the provider that accepted it
    segments: Mapped[int | None] = mapped_column(SmallInteger)  # an SMS's segment count


class MessageAttempt(Base):
    """One try at sending a message: which provider, what came of it, how long it took. `number`
    is the claim that made the try (1, 2, …); a try whose worker stopped before any answer is
    recorded when the message is next claimed or settled, as `lost`. A claim that went through
    several providers (failover) has a row per provider, `seq` 0, 1, … in the order tried."""

    __tablename__ = "message_attempts"
    __table_args__ = (UniqueConstraint("message_id", "number", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id", ondelete="CASCADE"))
    number: Mapped[int]
    seq: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    provider: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    latency_ms: Mapped[int | None]
    outcome: Mapped[str] = mapped_column(String(16))
    provider_ref: Mapped[str | None] = mapped_column(String(255))
    error_code: Mapped[str | None] = mapped_column(String(64))


class InboundMessage(Base):
    """A message a customer sent us (an SMS reply), once per provider's id: a replayed webhook
    finds its row and changes nothing. What it was read as (`kind`: stop, help, start, score,
    comment, unknown_sender) and, for a comment, its text sealed under the customer's key."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("provider", "provider_ref"),
        Index(
            "ix_inbound_messages_text_received",
            "received_at",
            sqlite_where=text("text_sealed IS NOT NULL"),
            postgresql_where=text("text_sealed IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(32))
    provider_ref: Mapped[str] = mapped_column(String(255))
    customer_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    followup_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("followups.id", ondelete="SET NULL"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    score: Mapped[int | None] = mapped_column(SmallInteger)
    text_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
