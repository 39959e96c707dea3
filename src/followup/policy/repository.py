from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT
from sqlalchemy.orm import Session

from followup.kernel.db import BulkStatements, chunked
from followup.policy.enums import RefusalReason
from followup.policy.models import ContactReservation

# The advisory-lock namespace of a customer's contact budget (PostgreSQL's two-key form), and how
# many keys the customers share: a customer's key is their id modulo BUDGET_LOCK_KEYS.
_BUDGET_LOCKS = 0x66750001
BUDGET_LOCK_KEYS = 1024
_LOCK_BUDGETS = text(
    "SELECT pg_advisory_xact_lock(:space, k) FROM "
    "(SELECT DISTINCT CAST(id % :keys AS integer) AS k FROM unnest(:ids) AS id ORDER BY k) AS keys"
).bindparams(bindparam("ids", type_=ARRAY(BIGINT)))


class ContactLedger:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_budgets(self, customer_ids: Iterable[int]) -> None:
        """Hold these customers' contact budgets until the transaction ends, so two transactions
        planning for one customer at once cannot both spend its last follow-up.

        PostgreSQL: transaction-scoped advisory locks, taken in key order (no deadlock between two
        batches), one per key of `id % BUDGET_LOCK_KEYS`: a transaction holds at most 1,024 of
        them however many customers it plans for. One lock per customer ran a wave of 50,000
        customers out of PostgreSQL's shared lock table (max_locks_per_transaction ×
        max_connections slots, 6,400 by default). Customers sharing a key only serialise.
        SQLite: every writing transaction already holds the database's one write lock.
        """
        ids = sorted(set(customer_ids))
        if not ids or self.session.get_bind().dialect.name != "postgresql":
            return
        self.session.execute(_LOCK_BUDGETS, {"space": _BUDGET_LOCKS, "keys": BUDGET_LOCK_KEYS, "ids": ids})

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

    def reserve_from(self, select_sql: str, params: Mapping[str, Any]) -> int:
        """Reserve for the rows a query selects as (customer_id, strategy_id, followup_id,
        reserved_at); returns how many were reserved."""
        columns = "customer_id, strategy_id, followup_id, reserved_at"
        result = self.session.execute(
            text(f"INSERT INTO {ContactReservation.__tablename__} ({columns}) {select_sql}"), dict(params)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

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

    def mark_many_contacted(self, contacted: Sequence[tuple[int, str, dt.datetime]]) -> None:
        if not contacted:
            return
        table = cast(Table, ContactReservation.__table__)
        self.session.execute(
            update(table)
            .where(table.c.followup_id == bindparam("b_followup"), table.c.contacted_at.is_(None))
            .values(contacted_at=bindparam("b_at"), channel=bindparam("b_channel")),
            [{"b_followup": followup, "b_channel": channel, "b_at": at} for followup, channel, at in contacted],
        )


def ledger_join_sql(alias: str, customer: str, customers_sql: str) -> str:
    """LEFT JOIN, as `alias`, of the unreleased ledger of the customers `customers_sql` selects,
    as far back as `:policy_since`: per customer, `duplicate` (1 when `:policy_strategy` reserved
    since `:policy_recontact_since`) and `recent` (reservations since `:policy_window_since`)."""
    return (
        "LEFT JOIN (SELECT l.customer_id,"  # noqa: S608 - table names are our constants; values are bound
        " MAX(CASE WHEN l.strategy_id = :policy_strategy AND l.reserved_at >= :policy_recontact_since"
        " THEN 1 ELSE 0 END) AS duplicate,"
        " SUM(CASE WHEN l.reserved_at >= :policy_window_since THEN 1 ELSE 0 END) AS recent"
        f" FROM {ContactReservation.__tablename__} l WHERE l.released_at IS NULL AND l.reserved_at >= :policy_since"
        f" AND l.customer_id IN ({customers_sql}) GROUP BY l.customer_id) {alias}"
        f" ON {alias}.customer_id = {customer}"
    )


def refusal_case_sql(*, case: str, allowed: str, reachable: str, ledger: str) -> str:
    """The policy's refusal as a CASE, in check_planning's order, from conditions over the joins:
    an open security case, no channel allowed (no consent, or nothing reachable), a duplicate,
    the fatigue budget (`:policy_budget`) spent; NULL when none applies."""
    return (
        "CASE"
        f" WHEN {case} THEN '{RefusalReason.OPEN_SECURITY_CASE}'"
        f" WHEN NOT ({allowed}) THEN CASE WHEN ({reachable})"
        f" THEN '{RefusalReason.NO_CONSENT}' ELSE '{RefusalReason.UNREACHABLE}' END"
        f" WHEN {ledger}.duplicate = 1 THEN '{RefusalReason.DUPLICATE}'"
        f" WHEN {ledger}.recent >= :policy_budget THEN '{RefusalReason.FATIGUE}'"
        " END"
    )
