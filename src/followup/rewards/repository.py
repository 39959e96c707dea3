from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from followup.rewards.models import RewardAccount, RewardEntry

# Built once: a statement built per call costs more than SQLite spends running it.
_BALANCE = select(RewardAccount.balance).where(RewardAccount.customer_id == bindparam("customer")).with_for_update()
_ENTRY_BY_KEY = select(
    RewardEntry.id, RewardEntry.delta, RewardEntry.balance_after, RewardEntry.reason, RewardEntry.followup_id
).where(RewardEntry.idempotency_key == bindparam("key"))
_NEW_ACCOUNT = insert(RewardAccount)
_SET_BALANCE = (
    update(RewardAccount)
    .where(RewardAccount.customer_id == bindparam("customer"))
    .values(balance=bindparam("new_balance"), updated_at=bindparam("at"))
)
_ADD_ENTRY = insert(RewardEntry).returning(RewardEntry.id)


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

    # A grant writes through the connection, past the unit of work: it runs inside an answer's
    # transaction, which holds the write lock every other answer waits for.

    def lock_balance(self, customer_id: int) -> int | None:
        """The customer's balance, locked until the transaction ends; None without an account."""
        found = self.session.connection().execute(_BALANCE, {"customer": customer_id}).scalar_one_or_none()
        return None if found is None else int(found)

    def has_entry(self, key: str) -> bool:
        return self.session.connection().execute(_ENTRY_BY_KEY, {"key": key}).first() is not None

    def set_balance(self, customer_id: int, balance: int, *, now: dt.datetime, new: bool) -> None:
        connection = self.session.connection()
        if new:
            connection.execute(_NEW_ACCOUNT, {"customer_id": customer_id, "balance": balance, "updated_at": now})
        else:
            connection.execute(_SET_BALANCE, {"customer": customer_id, "new_balance": balance, "at": now})

    def add_entry_row(self, **values: Any) -> int:
        return int(self.session.connection().execute(_ADD_ENTRY, values).scalar_one())

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
