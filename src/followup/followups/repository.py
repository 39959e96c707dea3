from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import case, func, or_, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from followup.customers import service as customers
from followup.followups.enums import OPEN_STATUSES, FollowupStatus, Step
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


def _answered_values(at: Any) -> dict[str, Any]:
    return {"status": FollowupStatus.RESPONDED, "responded_at": at, "closed_at": at, "next_step": None, "due_at": None}


class Answered(NamedTuple):
    """A follow-up just closed by an answer: what the answer goes on with."""

    id: int
    customer_id: int
    strategy_id: int
    plan: dict[str, Any]


# The statuses a follow-up is answered from, as SQL literals (our own enum's values).
_OPEN_SQL = ", ".join(f"'{status.value}'" for status in sorted(OPEN_STATUSES))


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

    # An answer closes its follow-up at the driver, past the unit of work and SQLAlchemy's binding:
    # its transaction holds the write lock every other answer waits for.

    def close_answered(self, followup_id: int, at: dt.datetime) -> Answered | None:
        """End the follow-up as answered, if it is still open: its id, customer, strategy and plan;
        None when it is not open (answered, expired, closed) and nothing was written."""
        bulk = BulkStatements(self.session.connection())
        when = bulk.db_time(at)
        found = bulk.run(
            "UPDATE followups SET status = ?, next_step = NULL, due_at = NULL, responded_at = ?, closed_at = ?"  # noqa: S608
            f" WHERE id = ? AND status IN ({_OPEN_SQL}) RETURNING id, customer_id, strategy_id, plan",
            (FollowupStatus.RESPONDED.value, when, when, followup_id),
        ).first()
        if found is None:
            return None
        closed = Answered(found[0], found[1], found[2], bulk.from_json(found[3]))
        loaded = self.session.identity_map.get(self.session.identity_key(Followup, followup_id))
        if loaded is not None:  # the session's copy says what was written
            for name, value in _answered_values(at).items():
                set_committed_value(loaded, name, value)
        return closed

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

    def latest_for_customer(self, customer_id: int, *, limit: int) -> list[Followup]:
        query = select(Followup).where(Followup.customer_id == customer_id).order_by(Followup.id.desc())
        return list(self.session.scalars(query.limit(limit)))

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

    def activity_by_strategy(
        self, strategy_ids: Collection[int], since: dt.datetime
    ) -> dict[int, tuple[int, int, int]]:
        """strategy → (planned, invited, of those invited answered) since `since`, in one grouped
        query: planned counts follow-ups planned and not suppressed, invited and answered count by
        the time of the invitation (as the metrics do)."""
        if not strategy_ids:
            return {}
        invited = Followup.invited_at >= since
        planned = (Followup.planned_at >= since) & (Followup.status != FollowupStatus.SUPPRESSED)
        query = (
            select(
                Followup.strategy_id,
                func.sum(case((planned, 1), else_=0)),
                func.sum(case((invited, 1), else_=0)),
                func.sum(case((invited & Followup.responded_at.is_not(None), 1), else_=0)),
            )
            .where(Followup.strategy_id.in_(list(strategy_ids)), or_(Followup.planned_at >= since, invited))
            .group_by(Followup.strategy_id)
        )
        return {row[0]: (int(row[1] or 0), int(row[2] or 0), int(row[3] or 0)) for row in self.session.execute(query)}

    def answered_since(self, strategy_ids: Collection[int], since: dt.datetime) -> list[tuple[int, int]]:
        """(follow-up, strategy) of the follow-ups invited since `since` that were answered."""
        if not strategy_ids:
            return []
        query = select(Followup.id, Followup.strategy_id).where(
            Followup.strategy_id.in_(list(strategy_ids)),
            Followup.invited_at >= since,
            Followup.responded_at.is_not(None),
        )
        return [(row[0], row[1]) for row in self.session.execute(query)]

    def responses_by_tier_and_channel(
        self, tiers: Collection[str], channels: Collection[str], since: dt.datetime
    ) -> dict[tuple[str, str], tuple[int, int]]:
        """(value tier, channel) → (follow-ups invited there since `since`, of those answered), in
        one grouped query; customers without a tier count under ''."""
        if not tiers or not channels:
            return {}
        tier = customers.value_tier_sql("c")
        bulk = BulkStatements(self.session.connection())
        tier_slots, channel_slots = ", ".join("?" * len(tiers)), ", ".join("?" * len(channels))
        rows = bulk.fetch(
            f"SELECT {tier}, f.channel, COUNT(*), COUNT(f.responded_at) FROM {Followup.__tablename__} f "  # noqa: S608
            f"{customers.customer_join('c', 'f.customer_id')} WHERE f.invited_at >= ? "
            f"AND f.channel IN ({channel_slots}) AND {tier} IN ({tier_slots}) GROUP BY {tier}, f.channel",
            [bulk.db_time(since), *channels, *tiers],
        )
        return {(row[0], row[1]): (int(row[2]), int(row[3])) for row in rows}


class PickTable:
    """Planning in the database (followups.bulk_planning): the customers of one plan in a temporary
    table, and the statements that plan them all at once. Table and column names and the policy's
    expressions are our own constants; every value is bound."""

    NAME = "followup_picks"
    COLUMNS = ("customer_id", "due_at", "deferred", "detail", "preset")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.bulk = BulkStatements(session.connection())
        # This plan's follow-ups: its keys, written after the last follow-up there was before it
        # (a customer who had this run's follow-up already keeps it, and it is not counted again).
        self._mine = (
            f"FROM {self.NAME} p JOIN {Followup.__tablename__} f ON f.strategy_id = :strategy "
            "AND f.customer_id = p.customer_id AND f.run_key = :run_key AND f.id > :after"
        )

    def create(self, rows: Sequence[tuple[object, ...]]) -> None:
        """(customer_id, due_at, deferred 0/1, history detail, preset reason) rows, in customer order."""
        postgres = self.bulk.postgres
        self.session.execute(text(f"DROP TABLE IF EXISTS {'pg_temp' if postgres else 'temp'}.{self.NAME}"))
        self.session.execute(
            text(
                f"CREATE TEMPORARY TABLE {self.NAME} ("
                f"customer_id {'BIGINT' if postgres else 'INTEGER'} PRIMARY KEY, "
                f"due_at {'TIMESTAMP WITH TIME ZONE' if postgres else 'TEXT'}, deferred INTEGER NOT NULL, "
                f"detail TEXT, preset VARCHAR(32)){' ON COMMIT DROP' if postgres else ''}"
            )
        )
        self.bulk.copy_rows(self.NAME, self.COLUMNS, rows)
        if postgres:  # a temporary table has no statistics until analysed; the joins below need them
            self.session.execute(text(f"ANALYZE {self.NAME}"))

    def customer_ids_sql(self) -> str:
        return f"SELECT customer_id FROM {self.NAME}"  # noqa: S608

    def keys(self, strategy_id: int, run_key: str, now: dt.datetime) -> dict[str, object]:
        """The parameters naming this plan's rows; read just before they are written (a wave's
        claim keeps a second writer of the same run away)."""
        after = self.session.scalar(select(func.coalesce(func.max(Followup.id), 0)))
        return {"strategy": strategy_id, "run_key": run_key, "now": self.bulk.db_time(now), "after": after}

    def insert_followups(self, plan: str, *, joins: str, refusal: str, params: dict[str, object]) -> int:
        """A follow-up per pick with this plan: planned when `refusal` (over `p`, the pick, and the
        `joins`) is NULL and the pick has no preset reason, else suppressed with the reason.
        Returns how many were written (a customer who has this run's follow-up already gets none)."""
        planned, suppressed = f"'{FollowupStatus.PLANNED}'", f"'{FollowupStatus.SUPPRESSED}'"
        plan_slot = "CAST(:plan AS JSON)" if self.bulk.postgres else ":plan"
        result = self.session.execute(
            text(
                f"INSERT INTO {Followup.__tablename__} (strategy_id, customer_id, run_key, status, reason, plan, "  # noqa: S608
                "next_step, due_at, planned_at, closed_at) "
                "SELECT :strategy, d.customer_id, :run_key, "
                f"CASE WHEN d.reason IS NULL THEN {planned} ELSE {suppressed} END, d.reason, {plan_slot}, "
                f"CASE WHEN d.reason IS NULL THEN '{Step.INVITE}' END, "
                "CASE WHEN d.reason IS NULL THEN d.due_at END, :now, "
                "CASE WHEN d.reason IS NULL THEN NULL ELSE :now END "
                f"FROM (SELECT p.customer_id, p.due_at, COALESCE(p.preset, {refusal}) AS reason "
                f"FROM {self.NAME} p {joins}) d "
                "WHERE TRUE ORDER BY d.customer_id "
                "ON CONFLICT (strategy_id, customer_id, run_key) DO NOTHING"
            ),
            {**params, "plan": plan},
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def insert_history(self, keys: dict[str, object], *, deferral: str | None) -> int:
        """Each new follow-up's first history: planned (with the pick's detail) or suppressed; then,
        given a `deferral`, that for the planned ones whose invite waits for quiet hours to end.
        Returns how many were deferred."""
        planned = f"'{FollowupStatus.PLANNED}'"
        head = f"INSERT INTO {FollowupHistory.__tablename__} (followup_id, at, action, reason, detail) "
        self.session.execute(
            text(
                f"{head}SELECT f.id, :now, f.status, f.reason, CASE WHEN f.status = {planned} THEN p.detail END "
                f"{self._mine} ORDER BY p.customer_id"
            ),
            keys,
        )
        if deferral is None:
            return 0
        result = self.session.execute(
            text(
                f"{head}SELECT f.id, :now, 'deferred', :deferral, NULL "
                f"{self._mine} WHERE f.status = {planned} AND p.deferred = 1 ORDER BY p.customer_id"
            ),
            {**keys, "deferral": deferral},
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def planned_reservations_sql(self) -> str:
        """(customer_id, strategy_id, followup_id, reserved_at) of the new planned follow-ups."""
        return (
            f"SELECT f.customer_id, f.strategy_id, f.id, :now {self._mine} WHERE f.status = '{FollowupStatus.PLANNED}'"
        )

    def suppression_reasons(self, keys: dict[str, object]) -> dict[str, int]:
        """reason → how many of the new follow-ups were suppressed for it."""
        query = text(
            f"SELECT f.reason, COUNT(*) {self._mine} WHERE f.status = '{FollowupStatus.SUPPRESSED}' GROUP BY f.reason"
        )
        return {row[0] or "": int(row[1]) for row in self.session.execute(query, keys)}

    def drop(self) -> None:
        self.session.execute(text(f"DROP TABLE {self.NAME}"))


class SubjectRepository:
    """What this domain holds about one customer, for their data rights (ADR 0024)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def followups(self, customer_id: int) -> list[Followup]:
        return list(
            self.session.scalars(select(Followup).where(Followup.customer_id == customer_id).order_by(Followup.id))
        )

    def stop_open(self, customer_id: int, *, open_statuses: Collection[str], now: dt.datetime) -> list[int]:
        """Close the customer's open follow-ups as suppressed; their ids."""
        ids = list(
            self.session.scalars(
                select(Followup.id).where(Followup.customer_id == customer_id, Followup.status.in_(list(open_statuses)))
            )
        )
        if ids:
            self.session.execute(
                update(Followup)
                .where(Followup.id.in_(ids))
                .values(status="suppressed", reason="erased", next_step=None, due_at=None, closed_at=now),
                execution_options={"synchronize_session": False},
            )
        return ids
