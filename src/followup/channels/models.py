from __future__ import annotations

import datetime as dt

from sqlalchemy import Double, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from followup.kernel.db import Base, BigId, UTCDateTime


class InboxItem(Base):
    """An item in the wallet app's in-app inbox; unique per delivery idempotency key."""

    __tablename__ = "inbox_items"
    __table_args__ = (
        Index("ix_inbox_items_customer", "customer_id", "created_at"),
        Index("ix_inbox_items_created", "created_at"),  # the retention purge, oldest first
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    content_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ShortLink(Base):
    """A short link put into an SMS (`/r/{code}`) for the survey link it stands for.

    Only a hash of the code is stored, and the target (which holds the invitation's token) is
    sealed under the customer's key: the table alone opens no survey. The code is derived from the
    message's idempotency key with a key of our own, so a retried send uses the same link. It
    expires with its invitation; the invitation's own single use still holds behind it.
    """

    __tablename__ = "short_links"
    __table_args__ = (Index("ix_short_links_expires", "expires_at"),)  # the retention purge

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    target_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ProviderState(Base):
    """How one provider of a channel is doing, shared by every worker and read by the console:
    failures in a row, the circuit (open until a time: the provider is skipped until then), the
    last error and the last success."""

    __tablename__ = "provider_states"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    failures_in_row: Mapped[int] = mapped_column(default=0)
    open_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    skipped: Mapped[int] = mapped_column(default=0)  # sends that went past it while it was open
    last_error_code: Mapped[str | None] = mapped_column(String(64))
    last_error_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class RateLimit(Base):
    """A provider's shared rate limit (when no Redis is configured): the earliest time, in Unix
    seconds, of the next free slot. Each send takes the slot and moves it on by 1 / rate."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_slot: Mapped[float] = mapped_column(Double, default=0.0)
