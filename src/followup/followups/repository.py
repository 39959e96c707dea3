from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from followup.customers.models import Customer
from followup.followups.enums import FollowupStatus, Step
from followup.followups.models import Followup, FollowupHistory
from followup.kernel.db import BulkStatements, chunked

NEW_FOLLOWUP_COLUMNS = (
    "strategy_id",
    "customer_id",
    "event_id",
    "event_type",
    "event_ref",
    "run_key",
    "status",
    "reason",
    "plan",
    "next_step",
    "due_at",
    "planned_at",
    "closed_at",
)


class NewFollowup(NamedTuple):
    strategy_id: int
    customer_id: int
    event_id: int | None
    event_type: str | None
    event_ref: str | None
    run_key: str
    status: str
    reason: str | None
    plan: str  # JSON text
    next_step: str | None
    due_at: dt.datetime | None
    planned_at: dt.datetime
    closed_at: dt.datetime | None


class FollowupRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def insert_many(self, rows: Sequence[NewFollowup]) -> dict[tuple[int, int, str], int]:
        """Insert follow-ups, skipping any whose (strategy, customer, run key) already has one.

        Returns (strategy_id, customer_id, run_key) → new follow-up id for the rows actually inserted.
        """
        if not rows:
            return {}
        bulk = BulkStatements(self.session.connection())
        values = [
            (
                r.strategy_id,
                r.customer_id,
                r.event_id,
                r.event_type,
                r.event_ref,
                r.run_key,
                r.status,
                r.reason,
                r.plan,
                r.next_step,
                None if r.due_at is None else bulk.db_time(r.due_at),
                bulk.db_time(r.planned_at),
                None if r.closed_at is None else bulk.db_time(r.closed_at),
            )
            for r in rows
        ]
        slots = ["?"] * len(NEW_FOLLOWUP_COLUMNS)
        slots[NEW_FOLLOWUP_COLUMNS.index("plan")] = bulk.json_slot()
        inserted = bulk.insert_values(
            Followup.__tablename__,
            NEW_FOLLOWUP_COLUMNS,
            values,
            slots=slots,
            on_conflict="(strategy_id, customer_id, run_key) DO NOTHING",
            returning="id, strategy_id, customer_id, run_key",
        )
        return {(strategy_id, customer_id, run_key): fid for fid, strategy_id, customer_id, run_key in inserted}

    def add_history(self, rows: Sequence[tuple[int, dt.datetime, str, str | None, str | None]]) -> None:
        """(followup_id, at, action, reason, detail) rows, appended in one executemany."""
        bulk = BulkStatements(self.session.connection())
        bulk.run_many(
            "INSERT INTO followup_history (followup_id, at, action, reason, detail) VALUES (?, ?, ?, ?, ?)",
            [(fid, bulk.db_time(at), action, reason, detail) for fid, at, action, reason, detail in rows],
        )

    def record(
        self, followup_id: int, *, at: dt.datetime, action: str, reason: str | None = None, detail: str | None = None
    ) -> None:
        self.session.add(FollowupHistory(followup_id=followup_id, at=at, action=action, reason=reason, detail=detail))

    def get(self, followup_id: int, *, lock: bool = False) -> Followup | None:
        query = select(Followup).where(Followup.id == followup_id)
        if lock:
            query = query.with_for_update()
        return self.session.scalars(query).one_or_none()

    def claim_due(self, now: dt.datetime, limit: int) -> list[Followup]:
        """Due timers, locked against other workers (SKIP LOCKED on PostgreSQL; SQLite's writer
        lock, taken by BEGIN IMMEDIATE, does the same job there)."""
        return list(
            self.session.scalars(
                select(Followup)
                .where(Followup.due_at <= now, Followup.next_step.is_not(None))
                .order_by(Followup.due_at, Followup.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )

    def history(self, followup_ids: Iterable[int]) -> dict[int, list[FollowupHistory]]:
        out: dict[int, list[FollowupHistory]] = {}
        for chunk in chunked(list(followup_ids)):
            for row in self.session.scalars(
                select(FollowupHistory).where(FollowupHistory.followup_id.in_(chunk)).order_by(FollowupHistory.id)
            ):
                out.setdefault(row.followup_id, []).append(row)
        return out

    def list_followups(
        self, *, customer_id: int | None, strategy_id: int | None, status: str | None, limit: int, offset: int
    ) -> tuple[list[Followup], int]:
        query = select(Followup)
        if customer_id is not None:
            query = query.where(Followup.customer_id == customer_id)
        if strategy_id is not None:
            query = query.where(Followup.strategy_id == strategy_id)
        if status is not None:
            query = query.where(Followup.status == status)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.session.scalars(query.order_by(Followup.id.desc()).limit(limit).offset(offset))
        return list(rows), total

    def in_period(
        self, *, strategy_id: int | None, since: dt.datetime | None, until: dt.datetime | None
    ) -> list[Followup]:
        query = select(Followup).where(Followup.invited_at.is_not(None))
        if strategy_id is not None:
            query = query.where(Followup.strategy_id == strategy_id)
        if since is not None:
            query = query.where(Followup.invited_at >= since)
        if until is not None:
            query = query.where(Followup.invited_at < until)
        return list(self.session.scalars(query))

    def count_by(self, column: str) -> dict[str, int]:
        """Follow-ups per value of `status` or `reason` (rows without a reason are left out)."""
        field = {"status": Followup.status, "reason": Followup.reason}[column]
        rows = self.session.execute(select(field, func.count()).where(field.is_not(None)).group_by(field))
        return {str(value): int(count) for value, count in rows}

    def last_invitations(self) -> list[tuple[int, dt.datetime]]:
        """(customer, the time a follow-up last invited them), from the history."""
        query = (
            select(Followup.customer_id, func.max(FollowupHistory.at))
            .join(FollowupHistory, FollowupHistory.followup_id == Followup.id)
            .where(FollowupHistory.action == FollowupStatus.INVITED)
            .group_by(Followup.customer_id)
        )
        return [(row[0], row[1]) for row in self.session.execute(query)]

    def customers_since(self, strategy_id: int, since: dt.datetime, statuses: Iterable[str]) -> set[int]:
        """The customers this strategy planned a follow-up for since `since`, in the given statuses."""
        query = select(Followup.customer_id).where(
            Followup.strategy_id == strategy_id, Followup.planned_at >= since, Followup.status.in_(list(statuses))
        )
        return set(self.session.scalars(query))

    def awaiting_invite(self, strategy_id: int, customer_ids: Iterable[int] | None) -> list[Followup]:
        """This strategy's follow-ups planned and not yet sent (of these customers, or of all),
        locked: a debounced burst or a proactive customer who left the audience supersedes them."""
        query = (
            select(Followup)
            .where(
                Followup.strategy_id == strategy_id,
                Followup.status == FollowupStatus.PLANNED,
                Followup.next_step == Step.INVITE,
            )
            .order_by(Followup.id)
            .with_for_update()
        )
        if customer_ids is None:
            return list(self.session.scalars(query))
        out: list[Followup] = []
        for chunk in chunked(list(customer_ids)):
            out.extend(self.session.scalars(query.where(Followup.customer_id.in_(chunk))))
        return out

    def customers_with_run(self, strategy_id: int, run_key: str) -> set[int]:
        query = select(Followup.customer_id).where(Followup.strategy_id == strategy_id, Followup.run_key == run_key)
        return set(self.session.scalars(query))

    def responses_by_tier_and_channel(
        self, tiers: Collection[str], channels: Collection[str], since: dt.datetime
    ) -> dict[tuple[str, str], tuple[int, int]]:
        """(value tier, channel) → (follow-ups invited there since `since`, of those answered), in
        one grouped query; customers without a tier count under ''."""
        if not tiers or not channels:
            return {}
        tier = func.coalesce(Customer.value_tier, "")
        query = (
            select(tier, Followup.channel, func.count(), func.count(Followup.responded_at))
            .join(Customer, Customer.id == Followup.customer_id)
            .where(Followup.invited_at >= since, Followup.channel.in_(list(channels)), tier.in_(list(tiers)))
            .group_by(tier, Followup.channel)
        )
        return {(row[0], row[1] or ""): (int(row[2]), int(row[3])) for row in self.session.execute(query)}
