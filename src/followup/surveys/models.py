from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, SmallInteger, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from followup.kernel.db import Base, BigId, JSONType, UTCDateTime


class Survey(Base):
    __tablename__ = "surveys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[dict[str, str]] = mapped_column(JSONType)
    current_version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class SurveyVersion(Base):
    """Questions are versioned: a response always points at the questions it answered."""

    __tablename__ = "survey_versions"
    __table_args__ = (UniqueConstraint("survey_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    survey_id: Mapped[int] = mapped_column(BigId, ForeignKey("surveys.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column()
    title: Mapped[dict[str, str]] = mapped_column(JSONType)
    questions: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Invitation(Base):
    """A link to answer one follow-up. The token is stored only as its SHA-256 hash.

    `used_at` is set by the one-click rating; `completed_at` once the optional questions are in
    (or skipped). After that, or after `expires_at`, the link shows the same 404 as an unknown one.
    """

    __tablename__ = "invitations"
    __table_args__ = (Index("ix_invitations_customer_channel", "customer_id", "channel"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    followup_id: Mapped[int] = mapped_column(BigId, ForeignKey("followups.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"))
    survey_version_id: Mapped[int] = mapped_column(BigId, ForeignKey("survey_versions.id"))
    channel: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Response(Base):
    """One customer's answers to one follow-up. Ratings are kept in clear for metrics; free text
    is sealed under the customer's data key."""

    __tablename__ = "responses"
    __table_args__ = (
        Index("ix_responses_created", "created_at"),
        # Responses whose texts are still held, by age, for the retention purge.
        Index(
            "ix_responses_texts_created",
            "created_at",
            sqlite_where=text("texts_sealed IS NOT NULL"),
            postgresql_where=text("texts_sealed IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    followup_id: Mapped[int] = mapped_column(BigId, ForeignKey("followups.id", ondelete="CASCADE"), unique=True)
    invitation_id: Mapped[int] = mapped_column(BigId, ForeignKey("invitations.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    survey_version_id: Mapped[int] = mapped_column(BigId, ForeignKey("survey_versions.id"))
    channel: Mapped[str] = mapped_column(String(16))
    # Who answered, and how: the customer on the survey page, the customer by SMS reply, an agent.
    source: Mapped[str] = mapped_column(String(16), default="page", server_default="page")
    ratings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    texts_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    nps: Mapped[int | None] = mapped_column(SmallInteger)
    csat: Mapped[int | None] = mapped_column(SmallInteger)
    ces: Mapped[int | None] = mapped_column(SmallInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class InterviewBooking(Base):
    """One customer's booking of one interview slot.

    The database itself keeps a slot to one booking: unique (survey, question, start), across every
    version of the survey, since a new version that keeps a slot offers the same hour of the same
    interviewer. A follow-up books a question once. The location and end are copied from the
    version booked, so a later version cannot move an interview already agreed.
    """

    __tablename__ = "interview_bookings"
    __table_args__ = (
        UniqueConstraint("survey_id", "question_id", "starts_at"),
        UniqueConstraint("followup_id", "question_id"),
        Index("ix_interview_bookings_starts_at", "starts_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    survey_id: Mapped[int] = mapped_column(BigId, ForeignKey("surveys.id", ondelete="CASCADE"))
    survey_version_id: Mapped[int] = mapped_column(BigId, ForeignKey("survey_versions.id"))
    question_id: Mapped[str] = mapped_column(String(64))
    followup_id: Mapped[int] = mapped_column(BigId, ForeignKey("followups.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # The slot's offset from UTC as offered: the customer and staff see it on that wall clock.
    utc_offset_minutes: Mapped[int] = mapped_column(SmallInteger)
    location: Mapped[dict[str, Any]] = mapped_column(JSONType)
    booked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
