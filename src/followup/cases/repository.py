from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from followup.cases.models import Case
from followup.kernel.db import chunked


class CaseRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, case: Case) -> None:
        self.session.add(case)

    def get(self, case_id: int, *, lock: bool = False) -> Case | None:
        query = select(Case).where(Case.id == case_id)
        if lock:
            query = query.with_for_update()
        return self.session.scalars(query).one_or_none()

    def exists_for_response(self, response_id: int, kind: str) -> bool:
        return (
            self.session.scalar(
                select(func.count()).select_from(Case).where(Case.response_id == response_id, Case.kind == kind)
            )
            != 0
        )

    def customers_with_open_security_case(self, customer_ids: Iterable[int]) -> set[int]:
        found: set[int] = set()
        for chunk in chunked(list(customer_ids)):
            found.update(
                self.session.scalars(
                    select(Case.customer_id).where(
                        Case.customer_id.in_(chunk), Case.kind == "security", Case.status == "open"
                    )
                )
            )
        return found

    def list_cases(
        self, *, status: str | None, priority: str | None, customer_id: int | None, limit: int, offset: int
    ) -> tuple[list[Case], int]:
        query = select(Case)
        if status:
            query = query.where(Case.status == status)
        if priority:
            query = query.where(Case.priority == priority)
        if customer_id is not None:
            query = query.where(Case.customer_id == customer_id)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.session.scalars(query.order_by(Case.id.desc()).limit(limit).offset(offset))
        return list(rows), total


def open_security_case_join_sql(alias: str, customer: str) -> str:
    """LEFT JOIN of the customers with an open security case, as `alias`, on a customer id column."""
    return (
        f"LEFT JOIN (SELECT DISTINCT customer_id FROM {Case.__tablename__} "  # noqa: S608 - constants
        f"WHERE kind = 'security' AND status = 'open') {alias} ON {alias}.customer_id = {customer}"
    )
