from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, SmallInteger, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from followup.kernel.db import Base, BigId, JSONType, UTCDateTime


class Case(Base):
    """Feedback that needs a human: in a queue, worked by an assignee against two deadlines (the
    first response by `first_response_due_at`, the resolution by `due_at`), to the end."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_customer_status", "customer_id", "status"),
        Index("ix_cases_queue_status", "queue", "status"),
        Index("ix_cases_assignee", "assignee_id"),
        Index("ix_cases_resurvey_token", "resurvey_token_hash", unique=True),
        Index("ix_cases_response_kind", "response_id", "kind"),
        Index("ix_cases_followup", "followup_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"))
    followup_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("followups.id", ondelete="SET NULL"))
    response_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("responses.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))
    queue: Mapped[str] = mapped_column(String(32), server_default="detractor")
    priority: Mapped[str] = mapped_column(String(16))
    # open → assigned → waiting (on the customer) → resolved → closed; reopened after a "no".
    status: Mapped[str] = mapped_column(String(16), default="open")
    summary: Mapped[str] = mapped_column(Text)
    assignee_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("staff.id", ondelete="SET NULL"))
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    first_response_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    first_response_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # The deadline missed (`first_response` or `resolution`) and when it was escalated.
    breach: Mapped[str | None] = mapped_column(String(16))
    breached_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolution_code: Mapped[str | None] = mapped_column(String(16))
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # "Did we solve it?": the one-click link's token (its hash), the answer, and the CSAT after it.
    resurvey_token_hash: Mapped[str | None] = mapped_column(String(64))
    resurvey_solved: Mapped[bool | None] = mapped_column(Boolean)
    resurvey_csat: Mapped[int | None] = mapped_column(SmallInteger)
    reopened_count: Mapped[int] = mapped_column(Integer, server_default="0", default=0)


class CaseEvent(Base):
    """One line of a case's timeline. `detail` holds what is not personal (a status, an assignee's
    email, a resolution code); a note's or reply's text, and a resolution's root cause and action,
    are sealed under the customer's data key, so erasing the customer erases them too."""

    __tablename__ = "case_events"
    __table_args__ = (
        Index("ix_case_events_case", "case_id", "id"),
        # The texts still held, per case, for the retention purge of done cases.
        Index(
            "ix_case_events_texts",
            "case_id",
            sqlite_where=text("text_sealed IS NOT NULL"),
            postgresql_where=text("text_sealed IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(160))
    kind: Mapped[str] = mapped_column(String(24))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    text_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
