from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from followup.data_rights.models import DataRequest, RetentionPart
from followup.kernel.db import insert_ignoring_conflicts

OPEN = ("pending", "held")


class DataRequestRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: DataRequest) -> None:
        self.session.add(row)

    def by_request_id(self, request_id: str, *, lock: bool = False) -> DataRequest | None:
        query = select(DataRequest).where(DataRequest.request_id == request_id)
        if lock:
            query = query.with_for_update()
        return self.session.scalars(query).one_or_none()

    def open_erasure(self, customer_id: int) -> DataRequest | None:
        return self.session.scalars(
            select(DataRequest).where(
                DataRequest.customer_id == customer_id, DataRequest.kind == "erasure", DataRequest.status.in_(OPEN)
            )
        ).first()

    def of_customer(self, customer_id: int) -> list[DataRequest]:
        return list(
            self.session.scalars(
                select(DataRequest).where(DataRequest.customer_id == customer_id).order_by(DataRequest.id)
            )
        )

    def claim_due_erasures(self, *, now: dt.datetime, limit: int) -> list[DataRequest]:
        """Due erasures, locked; another worker skips the ones this one holds."""
        return list(
            self.session.scalars(
                select(DataRequest)
                .where(DataRequest.kind == "erasure", DataRequest.status == "pending", DataRequest.due_at <= now)
                .order_by(DataRequest.due_at, DataRequest.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )

    def page(
        self, *, kind: str | None, status: str | None, overdue_at: dt.datetime | None, limit: int, offset: int
    ) -> tuple[list[DataRequest], int]:
        """Newest first; `overdue_at`: only open requests whose deadline passed before that time."""
        query = select(DataRequest)
        if kind:
            query = query.where(DataRequest.kind == kind)
        if status:
            query = query.where(DataRequest.status == status)
        if overdue_at is not None:
            query = query.where(DataRequest.status.in_(OPEN), DataRequest.deadline_at < overdue_at)
        total = int(self.session.scalar(select(func.count()).select_from(query.subquery())) or 0)
        rows = self.session.scalars(query.order_by(DataRequest.id.desc()).limit(limit).offset(offset))
        return list(rows), total

    def counts(self, *, now: dt.datetime) -> dict[str, int]:
        """Open requests, and of those the overdue ones, for the console and the demo's summary."""
        open_count = self.session.scalar(select(func.count()).where(DataRequest.status.in_(OPEN))) or 0
        overdue = (
            self.session.scalar(select(func.count()).where(DataRequest.status.in_(OPEN), DataRequest.deadline_at < now))
            or 0
        )
        done = self.session.scalar(select(func.count()).where(DataRequest.status == "done")) or 0
        return {"open": int(open_count), "overdue": int(overdue), "done": int(done)}

    def forget_reasons(self, customer_id: int) -> None:
        self.session.execute(
            update(DataRequest).where(DataRequest.customer_id == customer_id).values(reason_sealed=None),
            execution_options={"synchronize_session": False},
        )


class RetentionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def parts(self) -> list[RetentionPart]:
        return list(self.session.scalars(select(RetentionPart).order_by(RetentionPart.part)))

    def add_missing(self, parts: dict[str, str], *, now: dt.datetime) -> None:
        """A row for every part (name → data class) that has none yet; two workers adding the same
        part at once add it once."""
        known = set(self.session.scalars(select(RetentionPart.part)))
        rows = [
            {"part": name, "data_class": data_class, "purged": 0, "last_purged": 0, "next_check_at": now}
            for name, data_class in parts.items()
            if name not in known
        ]
        if rows:
            dialect = self.session.get_bind().dialect.name
            self.session.execute(
                insert_ignoring_conflicts(dialect, RetentionPart.__table__, index_elements=["part"]), rows
            )

    def claim_due(self, *, now: dt.datetime) -> list[RetentionPart]:
        """The parts due a look, locked; another worker skips the ones this one holds."""
        return list(
            self.session.scalars(
                select(RetentionPart)
                .where(RetentionPart.next_check_at <= now)
                .order_by(RetentionPart.part)
                .with_for_update(skip_locked=True)
            )
        )
