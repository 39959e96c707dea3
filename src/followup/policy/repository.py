from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from followup.kernel.db import chunked
from followup.policy.models import ContactReservation


class ContactLedger:
    def __init__(self, session: Session) -> None:
        self.session = session

    def active_since(self, customer_ids: Iterable[int], since: dt.datetime) -> list[ContactReservation]:
        """Unreleased reservations of these customers, recent or still open."""
        out: list[ContactReservation] = []
        for chunk in chunked(list(customer_ids)):
            out.extend(
                self.session.scalars(
                    select(ContactReservation).where(
                        ContactReservation.customer_id.in_(chunk),
                        ContactReservation.released_at.is_(None),
                        ContactReservation.reserved_at >= since,
                    )
                )
            )
        return out

    def reserve(self, rows: list[dict[str, object]]) -> None:
        if rows:
            self.session.execute(insert(ContactReservation), rows)

    def release(self, followup_id: int, now: dt.datetime) -> None:
        self.session.execute(
            update(ContactReservation)
            .where(ContactReservation.followup_id == followup_id, ContactReservation.contacted_at.is_(None))
            .values(released_at=now)
        )

    def mark_contacted(self, followup_id: int, channel: str, now: dt.datetime) -> None:
        self.session.execute(
            update(ContactReservation)
            .where(ContactReservation.followup_id == followup_id, ContactReservation.contacted_at.is_(None))
            .values(contacted_at=now, channel=channel)
        )
