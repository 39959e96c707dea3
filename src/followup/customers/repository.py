from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, or_, select, update
from sqlalchemy.orm import Session

from followup.customers.models import Customer, CustomerKey
from followup.kernel.db import UTCDateTime, chunked, insert_ignoring_conflicts


class CustomerRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def by_external_id(self, external_id: str) -> Customer | None:
        return self.session.scalars(select(Customer).where(Customer.external_id == external_id)).one_or_none()

    def by_email_index(self, index: str) -> Customer | None:
        return self.session.scalars(select(Customer).where(Customer.email_index == index)).first()

    def by_ids(self, ids: Iterable[int]) -> list[Customer]:
        out: list[Customer] = []
        for chunk in chunked(list(ids)):
            out.extend(self.session.scalars(select(Customer).where(Customer.id.in_(chunk))))
        return out

    def snapshot_rows(self, ids: Iterable[int]) -> list[Any]:
        """The columns the policy and the rule engine need, without loading sealed blobs."""
        rows: list[Any] = []
        for chunk in chunked(list(ids)):
            rows.extend(
                self.session.execute(
                    select(
                        Customer.id,
                        Customer.external_id,
                        Customer.locale,
                        Customer.time_zone,
                        Customer.attributes,
                        Customer.email_sealed.is_not(None),
                        Customer.phone_sealed.is_not(None),
                        Customer.event_count,
                    ).where(Customer.id.in_(chunk))
                ).all()
            )
        return rows

    def external_ids(self, ids: Iterable[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for chunk in chunked(list(ids)):
            out.update(
                self.session.execute(select(Customer.id, Customer.external_id).where(Customer.id.in_(chunk))).all()
            )
        return out

    def ids_for(self, external_ids: Iterable[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for chunk in chunked(list(external_ids)):
            out.update(
                self.session.execute(
                    select(Customer.external_id, Customer.id).where(Customer.external_id.in_(chunk))
                ).all()
            )
        return out

    def insert_bare(self, external_ids: Iterable[str], *, locale: str, time_zone: str, now: dt.datetime) -> None:
        rows = [
            {
                "external_id": eid,
                "locale": locale,
                "time_zone": time_zone,
                "attributes": {},
                "event_count": 0,
                "created_at": now,
                "updated_at": now,
            }
            for eid in external_ids
        ]
        if rows:
            statement = insert_ignoring_conflicts(self._dialect, Customer.__table__, index_elements=["external_id"])
            self.session.execute(statement, rows)

    def add_activity(self, activity: Mapping[int, tuple[int, dt.datetime]]) -> None:
        """Bump event counts and last-event times in one executemany.

        last_event_at only moves forward (events may arrive out of order), decided in the statement
        itself so that no read can go stale between a select and the update.
        """
        if not activity:
            return
        table = cast(Table, Customer.__table__)
        last_at = bindparam("last_at", type_=UTCDateTime())
        statement = (
            update(table)
            .where(table.c.id == bindparam("cid"))
            .values(
                event_count=table.c.event_count + bindparam("n"),
                last_event_at=case(
                    (or_(table.c.last_event_at.is_(None), table.c.last_event_at < last_at), last_at),
                    else_=table.c.last_event_at,
                ),
            )
        )
        # Customer rows are locked in primary-key order so concurrent batches cannot deadlock. The lock
        # also serialises planning per customer: a second batch waits here until the first commits,
        # then sees its contact reservations when the policy counts the fatigue budget.
        params = [{"cid": cid, "n": count, "last_at": latest} for cid, (count, latest) in sorted(activity.items())]
        self.session.connection().execute(statement, params)

    def get_key(self, customer_id: int) -> CustomerKey | None:
        return self.session.get(CustomerKey, customer_id)

    def add(self, row: Customer | CustomerKey) -> None:
        self.session.add(row)
