from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from followup.kernel.db import Base, BigId, UTCDateTime


class DataRequest(Base):
    """A customer's request about their data (an erasure, an export), with its deadline.

    An erasure waits until `due_at` (now plus FOLLOWUP_ERASURE_GRACE) and is carried out by the
    worker; `deadline_at` (FOLLOWUP_ERASURE_DAYS after the request) is the legal limit past which an
    unfinished one is overdue. An export is done when asked and kept here as the record of it.
    No foreign key cascades: the customer's row outlives the erasure as a pseudonym.
    """

    __tablename__ = "privacy_requests"
    __table_args__ = (
        Index("ix_privacy_requests_status_due", "status", "due_at"),
        Index("ix_privacy_requests_customer", "customer_id", "kind", "status"),
        # One open erasure per customer: a second request finds the first.
        Index(
            "uq_privacy_requests_open_erasure",
            "customer_id",
            unique=True,
            sqlite_where=text("kind = 'erasure' AND status IN ('pending', 'held')"),
            postgresql_where=text("kind = 'erasure' AND status IN ('pending', 'held')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(32), unique=True)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(16))  # erasure | export
    status: Mapped[str] = mapped_column(String(16))  # pending | held | done
    source: Mapped[str] = mapped_column(String(32))  # api | privacy_page | console
    # The requester's reason, sealed under the customer's key: it goes with their data.
    reason_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    hold_reason: Mapped[str | None] = mapped_column(String(500))  # an operator's, e.g. a legal hold
    held_by: Mapped[str | None] = mapped_column(String(160))
    actor: Mapped[str] = mapped_column(String(160))
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    deadline_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class RetentionPart(Base):
    """One part of a data class's retention (ADR 0026), e.g. free text: SMS replies; the worker's
    record of it: when it last looked, what went in all, and when it looks next.

    The worker that locks the row (FOR UPDATE SKIP LOCKED) purges that part; another skips it, so
    two workers never purge the same rows at once. Looking every few minutes rather than every round
    keeps an idle worker's round at one small read.
    """

    __tablename__ = "retention_parts"

    part: Mapped[str] = mapped_column(String(64), primary_key=True)
    data_class: Mapped[str] = mapped_column(String(16))
    purged: Mapped[int] = mapped_column(BigInteger, default=0)  # rows deleted or cleared, in all
    last_purged: Mapped[int] = mapped_column(BigInteger, default=0)  # by the last round that found any
    last_purged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_cutoff: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    next_check_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
