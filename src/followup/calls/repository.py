from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from followup.calls.models import CallOutcome, CallTask

# Statuses of a call still to be made.
OPEN = ("due", "claimed")


class CallRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: CallTask | CallOutcome) -> None:
        self.session.add(row)

    def get(self, task_id: int, *, lock: bool = False) -> CallTask | None:
        query = select(CallTask).where(CallTask.id == task_id)
        if lock:
            query = query.with_for_update()
        return self.session.scalars(query).one_or_none()

    def claimable(self, queues: Sequence[str], *, now: dt.datetime, limit: int) -> list[CallTask]:
        """Due calls of these queues, and claimed ones whose lease ran out, oldest due first, each
        locked for this transaction; a call another agent is claiming right now is skipped
        (PostgreSQL), so two agents never take the same call."""
        due = and_(CallTask.status == "due", CallTask.due_at <= now)
        lapsed = and_(CallTask.status == "claimed", CallTask.lease_until <= now)
        query = (
            select(CallTask)
            .where(CallTask.queue.in_(list(queues)), or_(due, lapsed))
            .order_by(CallTask.due_at, CallTask.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(self.session.scalars(query))

    def customer_in_queues(self, customer_id: int, queues: Sequence[str]) -> bool:
        query = select(CallTask.id).where(CallTask.customer_id == customer_id, CallTask.queue.in_(list(queues)))
        return self.session.scalar(query.limit(1)) is not None

    def open_for_followup(self, followup_id: int) -> list[CallTask]:
        return list(
            self.session.scalars(select(CallTask).where(CallTask.followup_id == followup_id, CallTask.status.in_(OPEN)))
        )

    def cancel_for_followup(self, followup_id: int, *, now: dt.datetime) -> int:
        result = self.session.execute(
            update(CallTask)
            .where(CallTask.followup_id == followup_id, CallTask.status.in_(OPEN))
            .values(status="cancelled", closed_at=now, lease_until=None)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def outcomes(self, task_id: int) -> list[CallOutcome]:
        return list(
            self.session.scalars(select(CallOutcome).where(CallOutcome.task_id == task_id).order_by(CallOutcome.id))
        )

    def list_tasks(
        self, *, queues: Sequence[str] | None, status: str | None, limit: int, offset: int
    ) -> tuple[list[CallTask], int]:
        query = select(CallTask)
        if queues is not None:
            query = query.where(CallTask.queue.in_(list(queues)))
        if status:
            query = query.where(CallTask.status == status)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.session.scalars(query.order_by(CallTask.due_at, CallTask.id).limit(limit).offset(offset))
        return list(rows), total

    def queue_counts(self, *, now: dt.datetime, overdue_before: dt.datetime) -> dict[str, dict[str, int]]:
        """Per queue: calls due now, overdue (due before `overdue_before`), claimed, waiting for later."""

        def count(condition: ColumnElement[bool]) -> ColumnElement[int]:
            return func.sum(case((condition, 1), else_=0))

        waiting = CallTask.status == "due"
        rows = self.session.execute(
            select(
                CallTask.queue,
                count(and_(waiting, CallTask.due_at <= now)),
                count(and_(waiting, CallTask.due_at <= overdue_before)),
                count(CallTask.status == "claimed"),
                count(and_(waiting, CallTask.due_at > now)),
            )
            .where(CallTask.status.in_(OPEN))
            .group_by(CallTask.queue)
            .order_by(CallTask.queue)
        )
        return {
            queue: {
                "due": int(due or 0),
                "overdue": int(late or 0),
                "claimed": int(held or 0),
                "later": int(later or 0),
            }
            for queue, due, late, held, later in rows
        }

    def outcomes_since(self, since: dt.datetime) -> list[tuple[int | None, str, int]]:
        """(agent, outcome, count) of the outcomes recorded since `since`."""
        rows = self.session.execute(
            select(CallOutcome.agent_id, CallOutcome.outcome, func.count())
            .where(CallOutcome.at >= since)
            .group_by(CallOutcome.agent_id, CallOutcome.outcome)
        )
        return [(agent, outcome, int(count)) for agent, outcome, count in rows]

    def claimed_by(self) -> dict[int, int]:
        rows = self.session.execute(
            select(CallTask.agent_id, func.count())
            .where(CallTask.status == "claimed", CallTask.agent_id.is_not(None))
            .group_by(CallTask.agent_id)
        )
        return {int(agent): int(count) for agent, count in rows if agent is not None}


class SubjectRepository:
    """What this domain holds about one customer, for their data rights (ADR 0024)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def tasks(self, customer_id: int) -> list[CallTask]:
        return list(
            self.session.scalars(select(CallTask).where(CallTask.customer_id == customer_id).order_by(CallTask.id))
        )

    def erase(self, customer_id: int, *, now: dt.datetime) -> None:
        """Calls not made yet are cancelled; what agents wrote about the calls goes."""
        self.session.execute(
            update(CallTask)
            .where(CallTask.customer_id == customer_id, CallTask.status.in_(OPEN))
            .values(status="cancelled", outcome="erased", agent_id=None, lease_until=None, closed_at=now),
            execution_options={"synchronize_session": False},
        )
        ids = select(CallTask.id).where(CallTask.customer_id == customer_id).scalar_subquery()
        self.session.execute(
            update(CallOutcome).where(CallOutcome.task_id.in_(ids)).values(detail=None),
            execution_options={"synchronize_session": False},
        )
