from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from followup.customers.models import Customer, CustomerActivity, CustomerActivityDay, CustomerActivityName, CustomerKey
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
        (id, external_id, locale, time_zone, attributes as JSON text, has_email, has_phone,
        event_count, preferred_channel, value_tier)."""
        bulk = BulkStatements(self.session.connection())
        return bulk.fetch_in(
            "SELECT id, external_id, locale, time_zone, attributes, email_sealed IS NOT NULL, "
            "phone_sealed IS NOT NULL, event_count, preferred_channel, value_tier FROM customers WHERE id IN ({})",
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


DAY_COLUMNS = ("customer_id", "day", "events", "payments", "volume", "failed_payments", "disputes")


class ActivityRepository:
    """The activity tables: written in bulk at ingest, read in bulk for a batch's rule context."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.bulk = BulkStatements(session.connection())

    def add_days(self, rows: Sequence[tuple[int, dt.date, int, int, int, int, int]]) -> None:
        """Add (customer, day, events, payments, volume, failed payments, disputes) to the buckets."""
        bulk = self.bulk
        table = CustomerActivityDay.__tablename__
        bulk.insert_values(
            table,
            DAY_COLUMNS,
            [(cid, bulk.db_date(day), *counts) for cid, day, *counts in sorted(rows)],
            on_conflict="(customer_id, day) DO UPDATE SET "
            + ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in DAY_COLUMNS[2:]),
        )

    def widen_spans(self, rows: Sequence[tuple[int, dt.datetime, dt.datetime]]) -> None:
        """Move each customer's first and last event time out to (earliest, latest) where wider."""
        bulk = self.bulk
        table = CustomerActivity.__tablename__
        bulk.insert_values(
            table,
            ("customer_id", "first_seen_at", "last_active_at", "responses_by_channel"),
            [(cid, bulk.db_time(first), bulk.db_time(last), "{}") for cid, first, last in sorted(rows)],
            slots=["?", "?", "?", bulk.json_slot()],
            on_conflict="(customer_id) DO UPDATE SET "
            f"first_seen_at = CASE WHEN {table}.first_seen_at IS NULL "
            f"OR excluded.first_seen_at < {table}.first_seen_at "
            f"THEN excluded.first_seen_at ELSE {table}.first_seen_at END, "
            f"last_active_at = CASE WHEN {table}.last_active_at IS NULL "
            f"OR excluded.last_active_at > {table}.last_active_at "
            f"THEN excluded.last_active_at ELSE {table}.last_active_at END",
        )

    def add_names(self, rows: Sequence[tuple[int, str, str]]) -> None:
        self.bulk.insert_values(
            CustomerActivityName.__tablename__,
            ("customer_id", "kind", "name"),
            sorted(rows),
            on_conflict="(customer_id, kind, name) DO NOTHING",
        )

    def window_rows(
        self, ids: Sequence[int], *, today: dt.date, windows: Sequence[tuple[str, int]]
    ) -> list[tuple[Any, ...]]:
        """Per customer: (id, one sum per (bucket column, days) window, active days in 30)."""
        bulk = self.bulk
        longest = max(days for _, days in windows)
        sums = ", ".join(f"SUM(CASE WHEN day >= ? THEN {column} ELSE 0 END)" for column, _ in windows)
        params: list[Any] = [bulk.db_date(today - dt.timedelta(days=days - 1)) for _, days in windows]
        params.append(bulk.db_date(today - dt.timedelta(days=29)))
        params += [bulk.db_date(today - dt.timedelta(days=longest - 1)), bulk.db_date(today)]
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(ids), 900):
            part = list(ids[start : start + 900])
            rows.extend(
                bulk.fetch(
                    f"SELECT customer_id, {sums}, SUM(CASE WHEN day >= ? AND events > 0 THEN 1 ELSE 0 END) "  # noqa: S608
                    f"FROM {CustomerActivityDay.__tablename__} WHERE day >= ? AND day <= ? "
                    f"AND customer_id IN ({', '.join('?' * len(part))}) GROUP BY customer_id",
                    [*params, *part],
                )
            )
        return rows

    def activity_rows(self, ids: Sequence[int]) -> list[tuple[Any, ...]]:
        """(id, first_seen_at, last_active_at, last_followup_at, last_nps, responses_by_channel)."""
        return self.bulk.fetch_in(
            "SELECT customer_id, first_seen_at, last_active_at, last_followup_at, last_nps, responses_by_channel "
            "FROM customer_activity WHERE customer_id IN ({})",
            list(ids),
        )

    def name_rows(self, ids: Sequence[int]) -> list[tuple[Any, ...]]:
        return self.bulk.fetch_in(
            f"SELECT customer_id, kind, name FROM {CustomerActivityName.__tablename__} "  # noqa: S608
            "WHERE customer_id IN ({}) ORDER BY customer_id, kind, name",
            list(ids),
        )

    def activity(self, customer_id: int, *, lock: bool = False) -> CustomerActivity | None:
        return self.session.get(CustomerActivity, customer_id, with_for_update=lock)

    def activities(self, customer_ids: Iterable[int]) -> list[CustomerActivity]:
        out: list[CustomerActivity] = []
        for chunk in chunked(sorted(customer_ids)):
            out.extend(self.session.scalars(select(CustomerActivity).where(CustomerActivity.customer_id.in_(chunk))))
        return out

    def ensure_activity(self, customer_ids: Sequence[int]) -> None:
        """A row for each customer, so the follow-up and answer paths can update it."""
        self.bulk.insert_values(
            CustomerActivity.__tablename__,
            ("customer_id", "responses_by_channel"),
            [(cid, "{}") for cid in sorted(set(customer_ids))],
            slots=["?", self.bulk.json_slot()],
            on_conflict="(customer_id) DO NOTHING",
        )

    def note_followups(self, rows: Sequence[tuple[int, dt.datetime]]) -> None:
        """Move last_followup_at forward to each given time."""
        self.ensure_activity([cid for cid, _ in rows])
        bulk = self.bulk
        table = CustomerActivity.__tablename__
        bulk.run_many(
            f"UPDATE {table} SET last_followup_at = ? WHERE customer_id = ? "  # noqa: S608
            "AND (last_followup_at IS NULL OR last_followup_at < ?)",
            [(bulk.db_time(at), cid, bulk.db_time(at)) for cid, at in sorted(rows)],
        )

    def clear(self) -> None:
        for model in (CustomerActivityName, CustomerActivityDay, CustomerActivity):
            self.session.execute(delete(model))
