from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from followup.dispatch.models import Message, MessageAttempt
from followup.kernel.db import chunked, insert_ignoring_conflicts


class MessageRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, message: Message) -> None:
        self.session.add(message)

    def by_key(self, key: str) -> Message | None:
        return self.session.scalars(select(Message).where(Message.idempotency_key == key)).one_or_none()

    def get(self, message_id: int) -> Message | None:
        return self.session.get(Message, message_id)

    def get_claimed(self, message_id: int, claim: int) -> Message | None:
        """The message, locked, if this worker's claim (its attempt number) still holds it."""
        return self.session.scalars(
            select(Message)
            .where(
                Message.id == message_id,
                Message.attempts == claim,
                Message.status.in_(("sending", "in_flight", "unknown")),
            )
            .with_for_update()
        ).one_or_none()

    def stale_in_flight(self, *, now: dt.datetime) -> list[Message]:
        """Messages whose worker died while a provider held them, locked."""
        return list(
            self.session.scalars(
                select(Message)
                .where(Message.status == "in_flight", Message.lease_until < now)
                .with_for_update(skip_locked=True)
            )
        )

    def abandoned_too_often(self, *, now: dt.datetime, max_attempts: int) -> list[Message]:
        """Messages still `sending` after their lease ran out, with every attempt already used:
        claiming them once more would pass the attempt limit."""
        return list(
            self.session.scalars(
                select(Message)
                .where(Message.status == "sending", Message.lease_until < now, Message.attempts >= max_attempts)
                .with_for_update(skip_locked=True)
            )
        )

    def add_attempt(self, row: dict[str, Any]) -> None:
        """Record a try, unless this claim's try is recorded already (settled twice: kept as first
        told), in one statement."""
        dialect = self.session.get_bind().dialect.name
        statement = insert_ignoring_conflicts(
            dialect, MessageAttempt.__table__, index_elements=["message_id", "number"]
        )
        self.session.execute(statement, [row])

    def by_id_for_update(self, message_id: int) -> Message | None:
        return self.session.scalars(select(Message).where(Message.id == message_id).with_for_update()).one_or_none()

    def mark_time(self, followup_id: int, channel: str, column: str, now: dt.datetime) -> None:
        """Set `column` (clicked_at, answered_at) on the follow-up's messages sent on this channel,
        where it is not set yet: the first time counts."""
        field = getattr(Message, column)
        self.session.execute(
            update(Message)
            .where(
                Message.followup_id == followup_id,
                Message.channel == channel,
                Message.status == "sent",
                field.is_(None),
            )
            .values({column: now})
        )

    def attempts_of(self, message_ids: Iterable[int]) -> dict[int, list[MessageAttempt]]:
        out: dict[int, list[MessageAttempt]] = {}
        for chunk in chunked(list(message_ids)):
            query = (
                select(MessageAttempt)
                .where(MessageAttempt.message_id.in_(chunk))
                .order_by(MessageAttempt.message_id, MessageAttempt.number)
            )
            for row in self.session.scalars(query):
                out.setdefault(row.message_id, []).append(row)
        return out

    def claim_due(
        self, *, now: dt.datetime, lease_until: dt.datetime, limit: int
    ) -> tuple[list[tuple[int, int]], dict[tuple[int, int], str]]:
        """Lease due messages. Returns (message id, claim) per message, the claim being the new
        attempt number, and (message id, earlier claim) → channel of those taken over from a worker
        whose lease ran out before it recorded any answer."""
        ready = (
            select(Message.id, Message.attempts, Message.status, Message.channel)
            .where(
                or_(
                    and_(Message.status == "queued", Message.due_at <= now),
                    and_(Message.status == "sending", Message.lease_until < now),
                )
            )
            .order_by(Message.due_at, Message.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = list(self.session.execute(ready))
        claims = [(row[0], row[1] + 1) for row in rows]
        abandoned = {(row[0], row[1]): row[3] for row in rows if row[2] == "sending" and row[1] > 0}
        if claims:
            self.session.execute(
                update(Message)
                .where(Message.id.in_([message_id for message_id, _ in claims]))
                .values(status="sending", lease_until=lease_until, attempts=Message.attempts + 1)
            )
        return claims, abandoned

    def mark_in_flight(self, message_id: int, claim: int, *, lease_until: dt.datetime) -> bool:
        result = self.session.execute(
            update(Message)
            .where(Message.id == message_id, Message.status == "sending", Message.attempts == claim)
            .values(status="in_flight", lease_until=lease_until)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def for_followups(self, followup_ids: Iterable[int]) -> list[Message]:
        out: list[Message] = []
        for chunk in chunked(list(followup_ids)):
            out.extend(self.session.scalars(select(Message).where(Message.followup_id.in_(chunk)).order_by(Message.id)))
        return out

    def for_customer(self, customer_id: int, *, limit: int) -> list[Message]:
        return list(
            self.session.scalars(
                select(Message).where(Message.customer_id == customer_id).order_by(Message.id.desc()).limit(limit)
            )
        )

    def list_messages(self, *, customer_id: int | None, limit: int, offset: int) -> tuple[list[Message], int]:
        """Newest first; messages still waiting in the queue are included, with their status."""
        query = select(Message)
        if customer_id is not None:
            query = query.where(Message.customer_id == customer_id)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.session.scalars(query.order_by(Message.id.desc()).limit(limit).offset(offset))
        return list(rows), total
