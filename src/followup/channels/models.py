from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from followup.kernel.db import Base, BigId, UTCDateTime


class InboxItem(Base):
    """An item in the wallet app's in-app inbox; unique per delivery idempotency key."""

    __tablename__ = "inbox_items"
    __table_args__ = (Index("ix_inbox_items_customer", "customer_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    content_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
