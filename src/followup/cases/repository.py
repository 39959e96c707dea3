from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from followup.cases.models import Case, CaseEvent
from followup.kernel import expiry
from followup.kernel.db import BulkStatements, chunked

# A case still being worked: not resolved, not closed.
_ACTIVE = Case.status.not_in(("resolved", "closed"))


# The columns of a new case, in the order `add_row` writes them.
_NEW_CASE_COLUMNS = (
    "customer_id",
    "followup_id",
    "response_id",
    "kind",
    "queue",
    "priority",
    "status",
    "summary",
    "opened_at",
    "first_response_due_at",
    "due_at",
    "reopened_count",
)
_TIMES = frozenset({"opened_at", "first_response_due_at", "due_at"})


class CaseRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: Case) -> None:
        self.session.add(row)

    def add_row(self, **values: Any) -> int:
        """A case written at once at the driver, past the unit of work and SQLAlchemy's binding (an
        answer opens one, holding the write lock); its id."""
        bulk = BulkStatements(self.session.connection())
        params = [bulk.db_time(values[name]) if name in _TIMES else values[name] for name in _NEW_CASE_COLUMNS]
        found = bulk.run(
            f"INSERT INTO cases ({', '.join(_NEW_CASE_COLUMNS)})"  # noqa: S608 - our own column names
            f" VALUES ({', '.join('?' * len(_NEW_CASE_COLUMNS))}) RETURNING id",
            params,
        )
        return int(found.scalar_one())

    def add_event(self, row: CaseEvent) -> None:
        self.session.add(row)

    def has_events(self, case_id: int) -> bool:
        return self.session.scalar(select(CaseEvent.id).where(CaseEvent.case_id == case_id).limit(1)) is not None

    def get(self, case_id: int, *, lock: bool = False) -> Case | None:
        query = select(Case).where(Case.id == case_id)
        if lock:
            query = query.with_for_update()
        return self.session.scalars(query).one_or_none()

    def by_resurvey_token(self, token_hash: str) -> Case | None:
        return self.session.scalars(
            select(Case).where(Case.resurvey_token_hash == token_hash).with_for_update()
        ).one_or_none()

    def reopenings_unsealed(self) -> list[tuple[CaseEvent, int]]:
        """Reopenings with no sealed text, and their case's customer: those written before reasons
        were sealed (their reason is in `detail`)."""
        rows = self.session.execute(
            select(CaseEvent, Case.customer_id)
            .join(Case, Case.id == CaseEvent.case_id)
            .where(CaseEvent.kind == "reopened", CaseEvent.text_sealed.is_(None))
            .order_by(CaseEvent.id)
        )
        return [(event, customer_id) for event, customer_id in rows]

    def events(self, case_id: int) -> list[CaseEvent]:
        return list(self.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)))

    def exists_for_response(self, response_id: int, kind: str) -> bool:
        return (
            self.session.scalar(
                select(func.count()).select_from(Case).where(Case.response_id == response_id, Case.kind == kind)
            )
            != 0
        )

    def customer_in_queues(self, customer_id: int, queues: list[str]) -> bool:
        query = select(Case.id).where(Case.customer_id == customer_id, Case.queue.in_(queues)).limit(1)
        return self.session.scalar(query) is not None

    def last_assignee(self, queue: str, *, before: int) -> int | None:
        """Who was given the queue's latest case before this one (the round robin's place)."""
        return self.session.scalar(
            select(Case.assignee_id)
            .where(Case.queue == queue, Case.id < before, Case.assignee_id.is_not(None))
            .order_by(Case.id.desc())
            .limit(1)
        )

    def customers_with_open_security_case(self, customer_ids: Iterable[int]) -> set[int]:
        found: set[int] = set()
        for chunk in chunked(list(customer_ids)):
            found.update(
                self.session.scalars(
                    select(Case.customer_id).where(
                        Case.customer_id.in_(chunk), Case.kind == "security", Case.status != "closed"
                    )
                )
            )
        return found

    def breaching(self, *, now: dt.datetime, limit: int) -> list[Case]:
        """Active cases past a deadline not escalated yet: the first response (none given, no
        breach marked) or the resolution (any breach but a resolution one)."""
        first = and_(Case.first_response_at.is_(None), Case.first_response_due_at <= now, Case.breach.is_(None))
        resolution = and_(Case.due_at <= now, or_(Case.breach.is_(None), Case.breach != "resolution"))
        query = select(Case).where(_ACTIVE, or_(first, resolution)).order_by(Case.id).limit(limit)
        return list(self.session.scalars(query.with_for_update(skip_locked=True)))

    def list_cases(
        self,
        *,
        status: str | None,
        priority: str | None,
        customer_id: int | None,
        queue: str | None = None,
        queues: list[str] | None = None,
        assignee_id: int | None = None,
        unassigned: bool = False,
        overdue_at: dt.datetime | None = None,
        limit: int,
        offset: int,
    ) -> tuple[list[Case], int]:
        query = select(Case)
        if status == "active":
            query = query.where(_ACTIVE)
        elif status:
            query = query.where(Case.status == status)
        if priority:
            query = query.where(Case.priority == priority)
        if customer_id is not None:
            query = query.where(Case.customer_id == customer_id)
        if queue:
            query = query.where(Case.queue == queue)
        if queues is not None:
            query = query.where(Case.queue.in_(queues))
        if assignee_id is not None:
            query = query.where(Case.assignee_id == assignee_id)
        if unassigned:
            query = query.where(Case.assignee_id.is_(None))
        if overdue_at is not None:
            late_first = and_(Case.first_response_at.is_(None), Case.first_response_due_at <= overdue_at)
            query = query.where(_ACTIVE, or_(Case.due_at <= overdue_at, late_first))
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.session.scalars(query.order_by(Case.id.desc()).limit(limit).offset(offset))
        return list(rows), total

    def queue_board(self, *, now: dt.datetime) -> dict[str, dict[str, int]]:
        late_first = and_(Case.first_response_at.is_(None), Case.first_response_due_at <= now)
        overdue = or_(Case.due_at <= now, late_first)
        rows = self.session.execute(
            select(
                Case.queue,
                func.count(),
                func.sum(case((Case.assignee_id.is_(None), 1), else_=0)),
                func.sum(case((overdue, 1), else_=0)),
                func.sum(case((Case.breach.is_not(None), 1), else_=0)),
            )
            .where(_ACTIVE)
            .group_by(Case.queue)
            .order_by(Case.queue)
        )
        return {
            queue: {"active": total, "unassigned": int(free or 0), "overdue": int(late or 0), "breached": int(b or 0)}
            for queue, total, free, late, b in rows
        }


def open_security_case_join_sql(alias: str, customer: str) -> str:
    """LEFT JOIN of the customers with a security case not closed yet, as `alias`, on a customer id column."""
    return (
        f"LEFT JOIN (SELECT DISTINCT customer_id FROM {Case.__tablename__} "  # noqa: S608 - constants
        f"WHERE kind = 'security' AND status <> 'closed') {alias} ON {alias}.customer_id = {customer}"
    )


class SubjectRepository:
    """What this domain holds about one customer, for their data rights (ADR 0024)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def cases(self, customer_id: int) -> list[Case]:
        return list(self.session.scalars(select(Case).where(Case.customer_id == customer_id).order_by(Case.id)))

    def events_of(self, case_ids: Collection[int]) -> list[CaseEvent]:
        if not case_ids:
            return []
        return list(
            self.session.scalars(select(CaseEvent).where(CaseEvent.case_id.in_(list(case_ids))).order_by(CaseEvent.id))
        )

    def erase(self, customer_id: int) -> None:
        """Notes, replies and resolutions go (sealed, so unreadable already); the cases stay, with
        their kinds, times and outcomes, for the SLA and quality figures."""
        ids = select(Case.id).where(Case.customer_id == customer_id).scalar_subquery()
        self.session.execute(
            update(CaseEvent).where(CaseEvent.case_id.in_(ids)).values(text_sealed=None),
            execution_options={"synchronize_session": False},
        )
        self.session.execute(
            update(Case).where(Case.customer_id == customer_id).values(resurvey_token_hash=None),
            execution_options={"synchronize_session": False},
        )


class RetentionRepository:
    """The texts of cases done (resolved or closed) before the cutoff: notes, replies and
    resolutions. A case still being worked keeps its texts however old they are: the agents still
    need them. Cases are few; their texts are found through `ix_case_events_texts`."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @staticmethod
    def _texts_of_done(cutoff: dt.datetime) -> list[ColumnElement[bool]]:
        done_at = func.coalesce(Case.closed_at, Case.resolved_at)
        closed = select(Case.id).where(Case.status.in_(("resolved", "closed")), done_at < cutoff)
        return [CaseEvent.text_sealed.is_not(None), CaseEvent.case_id.in_(closed)]

    def count_texts_of_done(self, cutoff: dt.datetime) -> int:
        return expiry.count(self.session, CaseEvent.id, self._texts_of_done(cutoff))

    def clear_texts_of_done(self, cutoff: dt.datetime, *, limit: int) -> int:
        return expiry.clear_batch(
            self.session,
            CaseEvent,
            CaseEvent.id,
            self._texts_of_done(cutoff),
            values={"text_sealed": None},
            order_by=CaseEvent.case_id,
            limit=limit,
        )
