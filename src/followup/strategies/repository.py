from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from followup.strategies.models import Segment, Strategy


class StrategyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

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

    def list_strategies(self, *, limit: int, offset: int) -> tuple[list[Strategy], int]:
        total = self.session.scalar(select(func.count()).select_from(Strategy)) or 0
        return list(self.session.scalars(select(Strategy).order_by(Strategy.id).limit(limit).offset(offset))), total

    def keys(self, ids: set[int]) -> dict[int, str]:
        if not ids:
            return {}
        return dict(self.session.execute(select(Strategy.id, Strategy.key).where(Strategy.id.in_(ids))).all())

    def add(self, strategy: Strategy) -> None:
        self.session.add(strategy)


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
