from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from followup.kernel.db import Base, BigId, UTCDateTime


class ContactReservation(Base):
    """The contact ledger: one row per follow-up that spends the customer's fatigue budget.

    Reserved when a follow-up is planned (so two strategies firing at once cannot both pass),
    released if it is then refused before anything reached the customer.
    """

    __tablename__ = "contact_ledger"
    __table_args__ = (Index("ix_contact_ledger_customer", "customer_id", "reserved_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"))
    strategy_id: Mapped[int] = mapped_column(BigId, ForeignKey("strategies.id"))
    followup_id: Mapped[int] = mapped_column(BigId, ForeignKey("followups.id", ondelete="CASCADE"), unique=True)
    reserved_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    contacted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    channel: Mapped[str | None] = mapped_column(String(16))
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
