from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from followup.strategies.models import Segment, Strategy, StrategyVersion, Wave


class StrategyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def keys_by_id(self) -> dict[int, str]:
        return {int(row[0]): str(row[1]) for row in self.session.execute(select(Strategy.id, Strategy.key))}

    def by_key(self, key: str) -> Strategy | None:
        return self.session.scalars(select(Strategy).where(Strategy.key == key)).one_or_none()

    def all(self) -> list[Strategy]:
        return list(self.session.scalars(select(Strategy).order_by(Strategy.id)))

    def active_by_kind(self, kind: str) -> list[Strategy]:
        return list(
            self.session.scalars(
                select(Strategy).where(Strategy.kind == kind, Strategy.status == "active").order_by(Strategy.id)
            )
        )

    def due_by_kind(self, kind: str, now: dt.datetime, *, limit: int) -> list[Strategy]:
        """Active strategies of a kind whose next run (a wave, a sweep) has come, the longest due first."""
        query = (
            select(Strategy)
            .where(
                Strategy.kind == kind,
                Strategy.status == "active",
                Strategy.next_run_at.is_not(None),
                Strategy.next_run_at <= now,
            )
            .order_by(Strategy.next_run_at, Strategy.id)
            .limit(limit)
        )
        return list(self.session.scalars(query))

    def move_next_run(self, strategy_id: int, *, expected: dt.datetime, to: dt.datetime) -> bool:
        """Move a strategy's next wave from `expected` to `to`; False when another worker moved it
        first (on PostgreSQL the UPDATE waits for that worker's commit, then finds nothing to move)."""
        moved = self.session.execute(
            update(Strategy)
            .where(Strategy.id == strategy_id, Strategy.next_run_at == expected)
            .values(next_run_at=to)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(moved, "rowcount", 0) == 1)

    def list_strategies(self, *, limit: int, offset: int) -> tuple[list[Strategy], int]:
        total = self.session.scalar(select(func.count()).select_from(Strategy)) or 0
        return list(self.session.scalars(select(Strategy).order_by(Strategy.id).limit(limit).offset(offset))), total

    def keys(self, ids: set[int]) -> dict[int, str]:
        if not ids:
            return {}
        return dict(self.session.execute(select(Strategy.id, Strategy.key).where(Strategy.id.in_(ids))).all())

    def add(self, strategy: Strategy) -> None:
        self.session.add(strategy)

    def add_version(self, version: StrategyVersion) -> None:
        self.session.add(version)

    def versions(self, strategy_id: int) -> list[StrategyVersion]:
        query = (
            select(StrategyVersion)
            .where(StrategyVersion.strategy_id == strategy_id)
            .order_by(StrategyVersion.version.desc())
        )
        return list(self.session.scalars(query))


class SegmentRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def by_key(self, key: str, *, lock: bool = False) -> Segment | None:
        query = select(Segment).where(Segment.key == key)
        return self.session.scalars(query.with_for_update() if lock else query).one_or_none()

    def all(self) -> list[Segment]:
        return list(self.session.scalars(select(Segment).order_by(Segment.key)))

    def list_segments(self, *, limit: int, offset: int) -> tuple[list[Segment], int]:
        total = self.session.scalar(select(func.count()).select_from(Segment)) or 0
        return list(self.session.scalars(select(Segment).order_by(Segment.key).limit(limit).offset(offset))), total

    def add(self, segment: Segment) -> None:
        self.session.add(segment)

    def delete(self, segment: Segment) -> None:
        self.session.delete(segment)


class WaveRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, strategy_id: int, fired_at: dt.datetime) -> Wave | None:
        query = select(Wave).where(Wave.strategy_id == strategy_id, Wave.fired_at == fired_at)
        return self.session.scalars(query).one_or_none()

    def add(self, wave: Wave) -> None:
        self.session.add(wave)

    def list_waves(self, strategy_id: int, *, limit: int, offset: int) -> tuple[list[Wave], int]:
        where = Wave.strategy_id == strategy_id
        total = self.session.scalar(select(func.count()).select_from(Wave).where(where)) or 0
        query = select(Wave).where(where).order_by(Wave.fired_at.desc()).limit(limit).offset(offset)
        return list(self.session.scalars(query)), total
