from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from followup.kernel.db import Base, BigId, JSONType, UTCDateTime


class CallTask(Base):
    """A follow-up's phone step: a call an agent of `queue` makes, due inside the customer's calling
    hours, claimed by one agent at a time for a lease, until an outcome ends or reschedules it."""

    __tablename__ = "call_tasks"
    __table_args__ = (
        Index("ix_call_tasks_queue_status_due", "queue", "status", "due_at"),
        Index("ix_call_tasks_followup", "followup_id"),
        Index("ix_call_tasks_agent_status", "agent_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    followup_id: Mapped[int] = mapped_column(BigId, ForeignKey("followups.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"))
    queue: Mapped[str] = mapped_column(String(32))
    # due → claimed → due again (no answer, call back) … → done, failed (given up) or cancelled.
    status: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    agent_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("staff.id", ondelete="SET NULL"))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))  # the last one
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class CallOutcome(Base):
    """Every outcome an agent recorded: the supervisor's count of the day, and the call's history."""

    __tablename__ = "call_outcomes"
    __table_args__ = (Index("ix_call_outcomes_at", "at"), Index("ix_call_outcomes_task", "task_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(BigId, ForeignKey("call_tasks.id", ondelete="CASCADE"))
    agent_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("staff.id", ondelete="SET NULL"))
    outcome: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
