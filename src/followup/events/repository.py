from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator, Sequence
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from followup.events.models import Event
from followup.events.schemas import EVENT_FIELDS
from followup.kernel import expiry
from followup.kernel.db import BulkStatements, chunked
from followup.rules.tree import Node
from followup.rules_sql import TypedField, Where, column_field, json_field, rule_where

COLUMNS = ("event_id", "type", "customer_id", "occurred_at", "received_at", "amount", "currency", "attributes")


class NewEvent(NamedTuple):
    event_id: str
    type: str
    customer_id: int
    occurred_at: dt.datetime
    amount: int | None
    currency: str | None
    attributes: str  # JSON text


def _event_field(field: str, dialect: str) -> TypedField | None:
    parts = field.split(".")
    if parts[0] != "event" or len(parts) < 2:
        return None
    if parts[1] == "attributes" and len(parts) > 2:
        return json_field(dialect, Event.attributes.expression, parts[2:])
    if len(parts) != 2:
        return None
    columns: dict[str, tuple[ColumnElement[Any], str, bool]] = {
        "type": (Event.type.expression, "text", False),
        "event_id": (Event.event_id.expression, "text", False),
        "amount": (Event.amount.expression, "number", True),
        "currency": (Event.currency.expression, "text", True),
    }
    if parts[1] not in columns:
        return None
    column, kind, optional = columns[parts[1]]
    return column_field(dialect, column, kind, optional=optional)


def event_where(node: Node | None, *, dialect: str) -> Where:
    """The WHERE clause over `events` that holds exactly for the events the tree (over event.*) accepts."""
    return rule_where(
        node, lambda field: _event_field(field, dialect), fields=EVENT_FIELDS, purpose="be read from a stored event"
    )


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

    def customers_with_match(
        self, customer_ids: Collection[int], types: Collection[str], match: Node | None, *, excluding: Collection[int]
    ) -> set[int]:
        """Of these customers, those with a stored event of one of `types` that `match` accepts,
        outside the ids from the least to the greatest of `excluding` (the batch being planned,
        inserted by one statement: two bounds, however large the batch)."""
        dialect = self.session.get_bind().dialect.name
        where = event_where(match, dialect=dialect)
        found: set[int] = set()
        for chunk in chunked(sorted(customer_ids)):
            query = select(Event.customer_id).where(Event.customer_id.in_(chunk), Event.type.in_(sorted(types)), where)
            if excluding:
                query = query.where(~Event.id.between(min(excluding), max(excluding)))
            found.update(self.session.scalars(query.distinct()))
        return found

    def recent(self, types: Collection[str], *, since: dt.datetime, until: dt.datetime) -> list[tuple[Any, ...]]:
        """Stored events of these types that happened in [since, until), oldest first, as
        (id, event_id, type, customer_id, occurred_at, amount, currency, attributes)."""
        query = (
            select(
                Event.id,
                Event.event_id,
                Event.type,
                Event.customer_id,
                Event.occurred_at,
                Event.amount,
                Event.currency,
                Event.attributes,
            )
            .where(Event.type.in_(sorted(types)), Event.occurred_at >= since, Event.occurred_at < until)
            .order_by(Event.occurred_at, Event.id)
        )
        return [tuple(row) for row in self.session.execute(query)]

    def occurred_at(self, ids: Collection[int]) -> dict[int, dt.datetime]:
        out: dict[int, dt.datetime] = {}
        for chunk in chunked(sorted(ids)):
            query = select(Event.id, Event.occurred_at).where(Event.id.in_(chunk))
            out.update((row[0], row[1]) for row in self.session.execute(query))
        return out

    def count(self) -> int:
        return self.session.scalar(select(func.count()).select_from(Event)) or 0

    def activity_facts(
        self, *, since: dt.datetime | None = None, chunk: int = 5000
    ) -> Iterator[list[tuple[int, str, dt.datetime, int | None, Any]]]:
        """Every stored event (that happened at or after `since`) as (customer, type, occurred_at,
        amount, attributes), in id order and in chunks, keyset-paged so a large log is never held whole."""
        after = 0
        while True:
            query = select(
                Event.id, Event.customer_id, Event.type, Event.occurred_at, Event.amount, Event.attributes
            ).where(Event.id > after)
            if since is not None:
                query = query.where(Event.occurred_at >= since)
            rows = self.session.execute(query.order_by(Event.id).limit(chunk)).all()
            if not rows:
                return
            after = rows[-1][0]
            yield [(row[1], row[2], row[3], row[4], row[5]) for row in rows]

    def of_customer(self, customer_id: int) -> list[Event]:
        return list(
            self.session.scalars(select(Event).where(Event.customer_id == customer_id).order_by(Event.occurred_at))
        )

    def erase_attributes(self, customer_id: int) -> None:
        """Empty the attributes the wallet sent with the customer's events; type, time and amount stay
        for the activity and uplift figures."""
        self.session.execute(
            update(Event).where(Event.customer_id == customer_id).values(attributes={}),
            execution_options={"synchronize_session": False},
        )


class RetentionRepository:
    """Events past their retention period, by when they happened (`ix_events_occurred`).

    On SQLite the newest event by id stays until a newer one comes: SQLite gives a new row the
    greatest id plus one, so deleting the newest would hand its id out again, and a follow-up's
    run key (`event:<id>`) would then name another event and keep its follow-up from being planned.
    PostgreSQL's sequences never go back."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _older(self, cutoff: dt.datetime) -> list[ColumnElement[bool]]:
        older = [Event.occurred_at < cutoff]
        if self.session.get_bind().dialect.name == "sqlite":
            older.append(expiry.below_newest(Event.id))
        return older

    def count_older(self, cutoff: dt.datetime) -> int:
        return expiry.count(self.session, Event.id, self._older(cutoff))

    def delete_older(self, cutoff: dt.datetime, *, limit: int) -> int:
        return expiry.delete_batch(
            self.session, Event, Event.id, self._older(cutoff), order_by=Event.occurred_at, limit=limit
        )
