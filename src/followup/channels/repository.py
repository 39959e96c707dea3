from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from followup.channels.models import InboxItem
from followup.kernel.db import insert_ignoring_conflicts


class InboxRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def insert_once(self, row: dict[str, Any]) -> int:
        """Insert unless an item with the same idempotency key exists; the item's id either way."""
        dialect = self.session.get_bind().dialect.name
        statement = insert_ignoring_conflicts(dialect, InboxItem.__table__, index_elements=["idempotency_key"])
        self.session.execute(statement, [row])
        found = self.session.scalars(
            select(InboxItem.id).where(InboxItem.idempotency_key == row["idempotency_key"])
        ).one()
        return int(found)

    def get_for_customer(self, customer_id: int, item_id: int) -> InboxItem | None:
        return self.session.scalars(
            select(InboxItem).where(InboxItem.id == item_id, InboxItem.customer_id == customer_id)
        ).one_or_none()

    def for_customer(self, customer_id: int, *, limit: int) -> list[InboxItem]:
        return list(
            self.session.scalars(
                select(InboxItem).where(InboxItem.customer_id == customer_id).order_by(InboxItem.id.desc()).limit(limit)
            )
        )
