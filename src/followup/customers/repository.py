from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from followup.customers.models import Customer, CustomerKey
from followup.kernel.db import BulkStatements, chunked

ARRIVAL_COLUMNS = (
    "external_id",
    "locale",
    "time_zone",
    "attributes",
    "event_count",
    "last_event_at",
    "created_at",
    "updated_at",
)


class CustomerRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def by_external_id(self, external_id: str) -> Customer | None:
        return self.session.scalars(select(Customer).where(Customer.external_id == external_id)).one_or_none()

    def by_email_index(self, index: str) -> Customer | None:
        return self.session.scalars(select(Customer).where(Customer.email_index == index)).first()

    def by_ids(self, ids: Iterable[int]) -> list[Customer]:
        out: list[Customer] = []
        for chunk in chunked(list(ids)):
            out.extend(self.session.scalars(select(Customer).where(Customer.id.in_(chunk))))
        return out

    def snapshot_rows(self, ids: Iterable[int]) -> list[tuple[Any, ...]]:
        """The columns the policy and the rule engine need, without loading sealed blobs:
        (id, external_id, locale, time_zone, attributes as JSON text, has_email, has_phone, event_count)."""
        bulk = BulkStatements(self.session.connection())
        return bulk.fetch_in(
            "SELECT id, external_id, locale, time_zone, attributes, email_sealed IS NOT NULL, "
            "phone_sealed IS NOT NULL, event_count FROM customers WHERE id IN ({})",
            list(ids),
        )

    def external_ids(self, ids: Iterable[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for chunk in chunked(list(ids)):
            out.update(
                self.session.execute(select(Customer.id, Customer.external_id).where(Customer.id.in_(chunk))).all()
            )
        return out

    def record_arrivals(
        self, arrivals: Sequence[tuple[str, int, dt.datetime]], *, locale: str, time_zone: str, now: dt.datetime
    ) -> dict[str, int]:
        """(external_id, events, latest occurred_at) per customer: create the unknown ones bare, bump
        the known ones' event count and last-event time, and return every one's id, in one upsert.

        last_event_at only moves forward (events may arrive out of order), decided in the statement
        itself so that no read can go stale between a select and the update. Rows are locked in
        external-id order so concurrent batches cannot deadlock; the lock also serialises planning
        per customer: a second batch waits here until the first commits, then sees its contact
        reservations when the policy counts the fatigue budget.
        """
        bulk = BulkStatements(self.session.connection())
        at = bulk.db_time(now)
        rows = [
            (eid, locale, time_zone, "{}", count, bulk.db_time(latest), at, at)
            for eid, count, latest in sorted(arrivals)
        ]
        returned = bulk.insert_values(
            "customers",
            ARRIVAL_COLUMNS,
            rows,
            slots=["?", "?", "?", bulk.json_slot(), "?", "?", "?", "?"],
            on_conflict="(external_id) DO UPDATE SET event_count = customers.event_count + excluded.event_count, "
            "last_event_at = CASE WHEN customers.last_event_at IS NULL "
            "OR customers.last_event_at < excluded.last_event_at "
            "THEN excluded.last_event_at ELSE customers.last_event_at END",
            returning="external_id, id",
        )
        return dict(returned)

    def uncount_events(self, counts: Mapping[int, int]) -> None:
        """Take back events counted on arrival that turned out to be stored already."""
        bulk = BulkStatements(self.session.connection())
        bulk.run_many(
            "UPDATE customers SET event_count = event_count - ? WHERE id = ?",
            [(count, cid) for cid, count in sorted(counts.items())],
        )

    def get_key(self, customer_id: int) -> CustomerKey | None:
        return self.session.get(CustomerKey, customer_id)

    def add(self, row: Customer | CustomerKey) -> None:
        self.session.add(row)
