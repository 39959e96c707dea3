from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, inspect, select, update
from sqlalchemy.orm import Session

from followup.customers.contacts import REACH_BITS, ContactStatus
from followup.customers.models import (
    ContactPoint,
    Customer,
    CustomerActivity,
    CustomerActivityDay,
    CustomerKey,
    KeyCheck,
    Tombstone,
)
from followup.kernel.db import BulkStatements, chunked, insert_ignoring_conflicts, key_store_schema

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

    def by_contact_index(self, kind: str, index: str) -> Customer | None:
        return self.session.scalars(
            select(Customer)
            .join(ContactPoint, ContactPoint.customer_id == Customer.id)
            .where(ContactPoint.kind == kind, ContactPoint.value_index == index)
            .order_by(ContactPoint.changed_at.desc())
        ).first()

    def by_ids(self, ids: Iterable[int]) -> list[Customer]:
        out: list[Customer] = []
        for chunk in chunked(list(ids)):
            out.extend(self.session.scalars(select(Customer).where(Customer.id.in_(chunk))))
        return out

    def snapshot_rows(self, ids: Iterable[int]) -> list[tuple[Any, ...]]:
        """The columns the policy and the rule engine need, without loading sealed blobs:
        (id, external_id, locale, time_zone, attributes as JSON text, reach, event_count,
        preferred_channel, value_tier)."""
        bulk = BulkStatements(self.session.connection())
        return bulk.fetch_in(
            "SELECT id, external_id, locale, time_zone, attributes, reach, event_count, preferred_channel,"
            " value_tier FROM customers WHERE id IN ({})",
            list(ids),
        )

    def locale_and_external_id(self, customer_id: int) -> tuple[str, str] | None:
        # At the driver: the answer path asks, holding the write lock.
        bulk = BulkStatements(self.session.connection())
        row = bulk.run("SELECT locale, external_id FROM customers WHERE id = ?", (customer_id,)).first()
        return None if row is None else (row[0], row[1])

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

    def keys_of(self, customer_ids: Iterable[int]) -> list[CustomerKey]:
        out: list[CustomerKey] = []
        for chunk in chunked(list(customer_ids)):
            out.extend(self.session.scalars(select(CustomerKey).where(CustomerKey.customer_id.in_(chunk))))
        return out

    def add(self, row: Customer | CustomerKey | Tombstone) -> None:
        self.session.add(row)

    def contact_points_of(self, customer_id: int) -> list[ContactPoint]:
        return list(
            self.session.scalars(
                select(ContactPoint).where(ContactPoint.customer_id == customer_id).order_by(ContactPoint.id)
            )
        )

    def activity(self, customer_id: int) -> CustomerActivity | None:
        return self.session.get(CustomerActivity, customer_id)

    def erase(self, customer_id: int, *, pseudonym: str, now: dt.datetime) -> None:
        """Leave the customer's row as a pseudonym: identity, attributes and contact points gone (their
        blind indexes with them), the data key destroyed; counts and activity stay (ADR 0024)."""
        self.session.execute(delete(ContactPoint).where(ContactPoint.customer_id == customer_id))
        self.session.execute(
            update(Customer)
            .where(Customer.id == customer_id)
            .values(
                external_id=pseudonym, attributes={}, preferred_channel=None, reach=0, erased_at=now, updated_at=now
            )
        )
        self.session.execute(delete(CustomerKey).where(CustomerKey.customer_id == customer_id))

    def tombstone(self, external_index: str) -> Tombstone | None:
        return self.session.get(Tombstone, external_index)

    def tombstones_to_reapply(self) -> list[tuple[Tombstone, str]]:
        """Tombstones whose customer still holds an identity: a database restored from a backup taken
        before the erasure. The caller compares the identity with the tombstone's before erasing."""
        rows = self.session.execute(
            select(Tombstone, Customer.external_id)
            .join(Customer, Customer.id == Tombstone.customer_id)
            .where(Customer.erased_at.is_(None))
        ).all()
        return [(tombstone, external_id) for tombstone, external_id in rows]


BUCKET_COLUMNS = ("customer_id", "day", "type", "feature", "events", "amount", "first_at", "last_at")
_BUCKETS = "customer_activity_days"


class ActivityRepository:
    """The activity tables: buckets written in bulk at ingest and read in bulk for a batch's rules."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.bulk = BulkStatements(session.connection())

    def add_buckets(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Add (customer, day, type, feature, events, amount, first, last) to the buckets, in one upsert.

        In no particular order: a batch writes only buckets of its customers, whose rows it has
        locked already (customers.record_arrivals), so two batches never wait on each other here."""
        t = _BUCKETS
        self.bulk.insert_values(
            t,
            BUCKET_COLUMNS,
            rows,
            on_conflict="(customer_id, day, type, feature) DO UPDATE SET "
            f"events = {t}.events + excluded.events, amount = {t}.amount + excluded.amount, "
            f"first_at = CASE WHEN excluded.first_at < {t}.first_at THEN excluded.first_at ELSE {t}.first_at END, "
            f"last_at = CASE WHEN excluded.last_at > {t}.last_at THEN excluded.last_at ELSE {t}.last_at END",
        )

    def bucket_sums(
        self, ids: Sequence[int], *, today: int, windows: Sequence[tuple[tuple[str, ...] | None, str, int]]
    ) -> list[tuple[Any, ...]]:
        """Per customer with buckets: (id, one figure per window, active days in the last 30, the
        first event's Unix time, the last one's). A window runs over whole days up to `today`."""
        bulk = self.bulk
        columns: list[str] = []
        params: list[Any] = []
        for types, measure, days in windows:
            kinds = f" AND type IN ({', '.join('?' * len(types))})" if types else ""
            columns.append(f"SUM(CASE WHEN day >= ? AND day <= ?{kinds} THEN {measure} ELSE 0 END)")
            params += [today - days + 1, today, *(types or ())]
        columns.append("COUNT(DISTINCT CASE WHEN day >= ? AND day <= ? THEN day END)")
        params += [today - 29, today]
        head = f"SELECT customer_id, {', '.join(columns)}, MIN(first_at), MAX(last_at) FROM {_BUCKETS} "  # noqa: S608
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(ids), 900):
            part = list(ids[start : start + 900])
            where = f"WHERE customer_id IN ({', '.join('?' * len(part))}) GROUP BY customer_id"
            rows.extend(bulk.fetch(head + where, [*params, *part]))
        return rows

    def bucket_keys(self, ids: Sequence[int]) -> list[tuple[Any, ...]]:
        """(customer, type, feature) of every bucket key the customers have, once each."""
        return self.bulk.fetch_in(
            f"SELECT DISTINCT customer_id, type, feature FROM {_BUCKETS} WHERE customer_id IN ({{}})",  # noqa: S608
            list(ids),
        )

    def activity_rows(self, ids: Sequence[int]) -> list[tuple[Any, ...]]:
        """(id, last_followup_at, last_nps, responses_by_channel)."""
        return self.bulk.fetch_in(
            "SELECT customer_id, last_followup_at, last_nps, responses_by_channel "
            "FROM customer_activity WHERE customer_id IN ({})",
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
        bulk.run_many(
            "UPDATE customer_activity SET last_followup_at = ? WHERE customer_id = ? "
            "AND (last_followup_at IS NULL OR last_followup_at < ?)",
            [(bulk.db_time(at), cid, bulk.db_time(at)) for cid, at in sorted(rows)],
        )

    def clear(self, *, from_day: int | None = None) -> None:
        """Forget the activity; with `from_day`, keep the day buckets before that day."""
        days = delete(CustomerActivityDay)
        if from_day is not None:
            days = days.where(CustomerActivityDay.day >= from_day)
        self.session.execute(days)
        self.session.execute(delete(CustomerActivity))


def address_present_sql(alias: str, address: str) -> str:
    """SQL true when the customer row says they hold a valid contact point of this kind."""
    bit = REACH_BITS.get(address)
    return f"({alias}.reach & {bit}) <> 0" if bit else "FALSE"


class ContactPointRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, point: ContactPoint) -> None:
        self.session.add(point)

    def of_customer(self, customer_id: int, kind: str | None = None) -> list[ContactPoint]:
        query = select(ContactPoint).where(ContactPoint.customer_id == customer_id)
        if kind is not None:
            query = query.where(ContactPoint.kind == kind)
        return list(self.session.scalars(query.order_by(ContactPoint.kind, ContactPoint.changed_at.desc())))

    def of_customers(self, customer_ids: Iterable[int]) -> list[ContactPoint]:
        """Every point of these customers, by customer and kind, newest first within a kind."""
        out: list[ContactPoint] = []
        for chunk in chunked(list(customer_ids)):
            query = select(ContactPoint).where(ContactPoint.customer_id.in_(chunk))
            order = (ContactPoint.customer_id, ContactPoint.kind, ContactPoint.changed_at.desc())
            out.extend(self.session.scalars(query.order_by(*order)))
        return out

    def one(self, customer_id: int, kind: str, label: str) -> ContactPoint | None:
        return self.session.scalars(
            select(ContactPoint).where(
                ContactPoint.customer_id == customer_id, ContactPoint.kind == kind, ContactPoint.label == label
            )
        ).one_or_none()

    def get(self, point_id: int) -> ContactPoint | None:
        return self.session.get(ContactPoint, point_id)

    def by_index(self, kind: str, index: str) -> list[ContactPoint]:
        return list(
            self.session.scalars(
                select(ContactPoint).where(ContactPoint.kind == kind, ContactPoint.value_index == index)
            )
        )

    def delete(self, point: ContactPoint) -> None:
        self.session.delete(point)

    def refresh_reach(self, customer_id: int) -> None:
        """Set the customer's reach bits from their valid contact points."""
        self.session.flush()
        kinds = set(
            self.session.scalars(
                select(ContactPoint.kind).where(
                    ContactPoint.customer_id == customer_id, ContactPoint.status == ContactStatus.VALID
                )
            )
        )
        reach = sum(bit for kind, bit in REACH_BITS.items() if kind in kinds)
        self.session.execute(update(Customer).where(Customer.id == customer_id).values(reach=reach))


def customer_join_sql(alias: str, customer: str) -> str:
    return f"JOIN {Customer.__tablename__} {alias} ON {alias}.id = {customer}"


def value_tier_column_sql(alias: str) -> str:
    return f"COALESCE({alias}.value_tier, '')"


class KeyStoreRepository:
    """The key store's queries about master key versions: the key checks, and the data keys by the
    version they are wrapped under (ADR 0025)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def has_key_checks(self) -> bool:
        """Whether the key store has its `key_checks` table (a database migrated to 0023 or later)."""
        connection = self.session.connection()
        return inspect(connection).has_table(KeyCheck.__tablename__, schema=key_store_schema(connection))

    def key_checks(self) -> dict[int, KeyCheck]:
        return {row.version: row for row in self.session.scalars(select(KeyCheck))}

    def add_key_check(self, *, version: int, wrapped_root: bytes, now: dt.datetime) -> None:
        """Record the check of a version unless another process recorded it first."""
        statement = insert_ignoring_conflicts(
            self.session.get_bind().dialect.name, KeyCheck.__table__, index_elements=["version"]
        )
        self.session.execute(statement.values(version=version, wrapped_root=wrapped_root, created_at=now))

    def a_key_under(self, version: int) -> CustomerKey | None:
        return self.session.scalars(
            select(CustomerKey).where(CustomerKey.key_version == version).order_by(CustomerKey.customer_id).limit(1)
        ).first()

    def versions_in_use(self) -> set[int]:
        return set(self.session.scalars(select(CustomerKey.key_version).distinct()))

    def count_by_version(self) -> dict[int, int]:
        rows = self.session.execute(
            select(CustomerKey.key_version, func.count()).group_by(CustomerKey.key_version)
        ).all()
        return {int(version): int(count) for version, count in rows}

    def keys_to_rewrap(self, *, current: int, after: int, limit: int) -> list[tuple[int, int, bytes]]:
        """(customer id, version, wrapped key) of the next data keys not under `current`, in customer
        id order from `after`. On PostgreSQL the rows stay locked until the transaction ends, and rows
        another transaction holds (an erasure under way) are left for a later pass."""
        rows = self.session.execute(
            select(CustomerKey.customer_id, CustomerKey.key_version, CustomerKey.wrapped_key)
            .where(CustomerKey.customer_id > after, CustomerKey.key_version != current)
            .order_by(CustomerKey.customer_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        return [(customer_id, version, wrapped) for customer_id, version, wrapped in rows]

    def rewrap(self, customer_id: int, *, old_version: int, version: int, wrapped_key: bytes) -> bool:
        """Replace a data key's wrapping, if it is still under `old_version` (not erased, not moved)."""
        result = self.session.execute(
            update(CustomerKey)
            .where(CustomerKey.customer_id == customer_id, CustomerKey.key_version == old_version)
            .values(key_version=version, wrapped_key=wrapped_key)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))
