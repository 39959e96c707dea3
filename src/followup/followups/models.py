from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from followup.kernel.db import Base, BigId, JSONType, UTCDateTime


class Followup(Base):
    """One strategy's attempt to hear from one customer.

    The plan (channels, survey version, timings, reward) is copied from the strategy when the
    follow-up is planned, so editing a strategy never changes a follow-up already under way.
    `due_at` + `next_step` is the timer: the worker runs the step when it falls due.
    """

    __tablename__ = "followups"
    __table_args__ = (
        # One follow-up per strategy, customer and run: the event it follows up, or (to come) the
        # periodic wave or proactive period it belongs to. Planning inserts ON CONFLICT DO NOTHING.
        UniqueConstraint("strategy_id", "customer_id", "run_key"),
        Index("ix_followups_due", "due_at"),
        Index("ix_followups_customer", "customer_id"),
        # Deleting an event past its retention sets its follow-ups' event_id to NULL: found here.
        Index("ix_followups_event", "event_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    strategy_id: Mapped[int] = mapped_column(BigId, ForeignKey("strategies.id"))
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"))
    event_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("events.id", ondelete="SET NULL"))
    event_type: Mapped[str | None] = mapped_column(String(64))
    event_ref: Mapped[str | None] = mapped_column(String(128))
    run_key: Mapped[str] = mapped_column(String(64))  # `event:<events.id>`; see followups.schemas.event_run_key
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str | None] = mapped_column(String(16))
    plan: Mapped[dict[str, Any]] = mapped_column(JSONType)
    next_step: Mapped[str | None] = mapped_column(String(16))
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    planned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    invited_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    responded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class FollowupHistory(Base):
    """Append-only: every step, deferral and refusal of a follow-up, with its reason code."""

    __tablename__ = "followup_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    followup_id: Mapped[int] = mapped_column(BigId, ForeignKey("followups.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
