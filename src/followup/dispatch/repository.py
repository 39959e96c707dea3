from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from followup.dispatch.models import Message
from followup.kernel.db import chunked


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

    def claim_due(self, *, now: dt.datetime, lease_until: dt.datetime, limit: int) -> list[tuple[int, int]]:
        """Lease due messages; returns (message id, claim), the claim being the new attempt number."""
        ready = (
            select(Message.id, Message.attempts)
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
        claims = [(message_id, attempts + 1) for message_id, attempts in self.session.execute(ready)]
        if claims:
            self.session.execute(
                update(Message)
                .where(Message.id.in_([message_id for message_id, _ in claims]))
                .values(status="sending", lease_until=lease_until, attempts=Message.attempts + 1)
            )
        return claims

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
