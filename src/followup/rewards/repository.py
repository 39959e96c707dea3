from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from followup.kernel.db import insert_ignoring_conflicts
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
# By dialect: the conflict clauses are written in each one's words.
_CREDIT: dict[str, Any] = {}
_ADD_ENTRY: dict[str, Any] = {}


def _credit_statement(dialect: str) -> Any:
    statement: Any = (postgresql if dialect == "postgresql" else sqlite).insert(RewardAccount)
    added = {"balance": RewardAccount.balance + statement.excluded.balance, "updated_at": statement.excluded.updated_at}
    return statement.on_conflict_do_update(index_elements=[RewardAccount.customer_id], set_=added).returning(
        RewardAccount.balance
    )


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

    def credit(self, customer_id: int, points: int, *, now: dt.datetime) -> int:
        """Add points to the customer's balance (opening the account on the first grant), holding
        the account's row until the transaction ends; the new balance."""
        connection = self.session.connection()
        statement = _CREDIT.get(connection.dialect.name)
        if statement is None:
            statement = _CREDIT[connection.dialect.name] = _credit_statement(connection.dialect.name)
        values = {"customer_id": customer_id, "balance": points, "updated_at": now}
        return int(connection.execute(statement, values).scalar_one())

    def take_back(self, customer_id: int, points: int) -> None:
        """Undo `credit` in the same transaction (the grant turned out to be made before)."""
        self.session.connection().execute(_TAKE_BACK, {"customer": customer_id, "points": points})

    def add_entry_unless_keyed(self, **values: Any) -> int | None:
        """A ledger entry, unless one with its idempotency key exists; the new entry's id, or None."""
        connection = self.session.connection()
        statement = _ADD_ENTRY.get(connection.dialect.name)
        if statement is None:
            statement = _ADD_ENTRY[connection.dialect.name] = insert_ignoring_conflicts(
                connection.dialect.name, RewardEntry, index_elements=["idempotency_key"]
            ).returning(RewardEntry.id)
        found = connection.execute(statement, values).scalar_one_or_none()
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
