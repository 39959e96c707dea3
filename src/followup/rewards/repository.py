from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from followup.rewards.models import RewardAccount, RewardEntry


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

    def add(self, row: RewardAccount | RewardEntry) -> None:
        self.session.add(row)

    def granted_totals(self) -> tuple[int, int]:
        """(grants, points) over every credit in the ledger."""
        row = self.session.execute(
            select(func.count(), func.coalesce(func.sum(RewardEntry.delta), 0)).where(RewardEntry.delta > 0)
        ).one()
        return int(row[0]), int(row[1])
