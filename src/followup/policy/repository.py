from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT
from sqlalchemy.orm import Session

from followup.kernel.db import BulkStatements, chunked
from followup.policy.models import ContactReservation

# The advisory-lock namespace of a customer's contact budget (PostgreSQL's two-key form).
_BUDGET_LOCKS = 0x66750001
_LOCK_BUDGETS = text(
    "SELECT pg_advisory_xact_lock(:space, k) FROM "
    "(SELECT DISTINCT CAST(id % 2147483647 AS integer) AS k FROM unnest(:ids) AS id ORDER BY k) AS keys"
).bindparams(bindparam("ids", type_=ARRAY(BIGINT)))


class ContactLedger:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_budgets(self, customer_ids: Iterable[int]) -> None:
        """Hold these customers' contact budgets until the transaction ends, so two transactions
        planning for one customer at once cannot both spend its last follow-up.

        PostgreSQL: a transaction-scoped advisory lock per customer, taken in key order (no
        deadlock between two batches). Two customers may share a key; that only serialises them.
        SQLite: every writing transaction already holds the database's one write lock.
        """
        ids = sorted(set(customer_ids))
        if not ids or self.session.get_bind().dialect.name != "postgresql":
            return
        self.session.execute(_LOCK_BUDGETS, {"space": _BUDGET_LOCKS, "ids": ids})

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

    def reserve(self, rows: Sequence[tuple[int, int, int, dt.datetime]]) -> None:
        """(customer_id, strategy_id, followup_id, reserved_at) rows, in as few statements as the
        driver allows: planning writes one per planned follow-up, inside ingest and waves."""
        bulk = BulkStatements(self.session.connection())
        bulk.insert_values(
            ContactReservation.__tablename__,
            ("customer_id", "strategy_id", "followup_id", "reserved_at"),
            [(cid, sid, fid, bulk.db_time(at)) for cid, sid, fid, at in rows],
        )

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
