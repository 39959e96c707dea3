from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from followup.events.models import Event
from followup.kernel.db import BulkStatements

COLUMNS = ("event_id", "type", "customer_id", "occurred_at", "received_at", "amount", "currency", "attributes")


class NewEvent(NamedTuple):
    event_id: str
    type: str
    customer_id: int
    occurred_at: dt.datetime
    amount: int | None
    currency: str | None
    attributes: str  # JSON text


class EventRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def insert_new(self, events: Sequence[NewEvent], *, received_at: dt.datetime) -> dict[str, int]:
        """Insert events whose event_id is new; returns event_id → id for those inserted only."""
        if not events:
            return {}
        bulk = BulkStatements(self.session.connection())
        received = bulk.db_time(received_at)
        rows = [(e.event_id, e.type, e.customer_id, bulk.db_time(e.occurred_at), received, *e[4:]) for e in events]
        inserted = bulk.insert_values(
            Event.__tablename__,
            COLUMNS,
            rows,
            slots=["?"] * 7 + [bulk.json_slot()],
            on_conflict="(event_id) DO NOTHING",
            returning="event_id, id",
        )
        return dict(inserted)

    def count(self) -> int:
        return self.session.scalar(select(func.count()).select_from(Event)) or 0

    def activity_facts(self, *, chunk: int = 5000) -> Iterator[list[tuple[int, str, dt.datetime, int | None, Any]]]:
        """Every stored event as (customer, type, occurred_at, amount, attributes), in id order and
        in chunks, keyset-paged so a large log is never held whole."""
        after = 0
        while True:
            rows = self.session.execute(
                select(Event.id, Event.customer_id, Event.type, Event.occurred_at, Event.amount, Event.attributes)
                .where(Event.id > after)
                .order_by(Event.id)
                .limit(chunk)
            ).all()
            if not rows:
                return
            after = rows[-1][0]
            yield [(row[1], row[2], row[3], row[4], row[5]) for row in rows]
