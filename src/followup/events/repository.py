from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from followup.events.models import Event
from followup.kernel.db import insert_ignoring_conflicts


class EventRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def insert_new(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        """Insert events whose event_id is new; returns event_id → id for those inserted only."""
        if not rows:
            return {}
        dialect = self.session.get_bind().dialect.name
        table = Event.__table__
        statement = insert_ignoring_conflicts(dialect, table, index_elements=["event_id"]).returning(
            table.c.id, table.c.event_id
        )
        return {event_id: eid for eid, event_id in self.session.execute(statement, rows)}

    def count(self) -> int:
        return self.session.scalar(select(func.count()).select_from(Event)) or 0
