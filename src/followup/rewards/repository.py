from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from followup.kernel.db import BulkStatements
from followup.rewards.models import RewardAccount, RewardEntry

# Built once: a statement built per call costs more than SQLite spends running it.
_ENTRY_BY_KEY = select(
    RewardEntry.id, RewardEntry.delta, RewardEntry.balance_after, RewardEntry.reason, RewardEntry.followup_id
).where(RewardEntry.idempotency_key == bindparam("key"))
_TAKE_BACK = (
    update(RewardAccount)
    .where(RewardAccount.customer_id == bindparam("customer"))
    .values(balance=RewardAccount.balance - bindparam("points"))
)


class NewEntry(NamedTuple):
    """A ledger entry as a grant writes it."""

    customer_id: int
    delta: int
    balance_after: int
    reason: str
    idempotency_key: str
    followup_id: int | None
    actor: str
    created_at: dt.datetime


class RewardRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def entry_by_key(self, key: str) -> RewardEntry | None:
        return self.session.scalars(select(RewardEntry).where(RewardEntry.idempotency_key == key)).one_or_none()

    def lock_account(self, customer_id: int) -> RewardAccount | None:
        return self.session.scalars(
            select(RewardAccount).where(RewardAccount.customer_id == customer_id).with_for_update()
        ).one_or_none()

    def entries(self, customer_id: int, *, limit: int) -> list[RewardEntry]:
        return list(
            self.session.scalars(
                select(RewardEntry)
                .where(RewardEntry.customer_id == customer_id)
                .order_by(RewardEntry.id.desc())
                .limit(limit)
            )
        )

    # A grant writes at the driver, past the unit of work and SQLAlchemy's binding
    # (kernel.db.BulkStatements): it runs inside an answer's transaction, which holds the write lock
    # every other answer waits for.

    def credit(self, customer_id: int, points: int, *, now: dt.datetime) -> int:
        """Add points to the customer's balance (opening the account on the first grant), holding
        the account's row until the transaction ends; the new balance."""
        bulk = BulkStatements(self.session.connection())
        found = bulk.run(
            "INSERT INTO reward_accounts (customer_id, balance, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (customer_id) DO UPDATE SET balance = reward_accounts.balance + excluded.balance,"
            " updated_at = excluded.updated_at RETURNING balance",
            (customer_id, points, bulk.db_time(now)),
        )
        return int(found.scalar_one())

    def take_back(self, customer_id: int, points: int) -> None:
        """Undo `credit` in the same transaction (the grant turned out to be made before)."""
        self.session.connection().execute(_TAKE_BACK, {"customer": customer_id, "points": points})

    def add_entry_unless_keyed(self, entry: NewEntry) -> int | None:
        """A ledger entry, unless one with its idempotency key exists; the new entry's id, or None."""
        bulk = BulkStatements(self.session.connection())
        found = bulk.run(
            "INSERT INTO reward_ledger (customer_id, delta, balance_after, reason, idempotency_key, followup_id,"
            " actor, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING"
            " RETURNING id",
            (*entry[:-1], bulk.db_time(entry.created_at)),
        ).scalar_one_or_none()
        return None if found is None else int(found)

    def entry_row(self, key: str) -> Row[int, int, int, str, int | None] | None:
        return self.session.connection().execute(_ENTRY_BY_KEY, {"key": key}).first()

    def add(self, row: RewardAccount | RewardEntry) -> None:
        self.session.add(row)

    def granted_totals(self) -> tuple[int, int]:
        """(grants, points) over every credit in the ledger."""
        row = self.session.execute(
            select(func.count(), func.coalesce(func.sum(RewardEntry.delta), 0)).where(RewardEntry.delta > 0)
        ).one()
        return int(row[0]), int(row[1])


class SubjectRepository:
    """What this domain holds about one customer, for their data rights (ADR 0024)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def account(self, customer_id: int) -> RewardAccount | None:
        return self.session.get(RewardAccount, customer_id)

    def entries(self, customer_id: int) -> list[RewardEntry]:
        return list(
            self.session.scalars(
                select(RewardEntry).where(RewardEntry.customer_id == customer_id).order_by(RewardEntry.id)
            )
        )
