from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, case, func, literal_column, or_, select, update
from sqlalchemy.orm import Session

from followup.dispatch.models import InboundMessage, Message, MessageAttempt
from followup.kernel import expiry
from followup.kernel.db import chunked, insert_ignoring_conflicts

_KEYS_OF = select(Message.idempotency_key).where(
    Message.followup_id == bindparam("followup"), Message.channel == bindparam("channel")
)


class MessageRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, message: Message) -> None:
        self.session.add(message)

    def by_key(self, key: str) -> Message | None:
        return self.session.scalars(select(Message).where(Message.idempotency_key == key)).one_or_none()

    def last_sent_channel(self, followup_id: int) -> str | None:
        return self.session.scalar(
            select(Message.channel)
            .where(Message.followup_id == followup_id, Message.status == "sent")
            .order_by(Message.id.desc())
            .limit(1)
        )

    def key_taken(self, key: str) -> bool:
        """Whether a message holds this key, stored or about to be: without flushing the session,
        so queueing many messages in one transaction writes them in one go at the end."""
        if any(isinstance(row, Message) and row.idempotency_key == key for row in self.session.new):
            return True
        with self.session.no_autoflush:
            return self.session.scalar(select(Message.id).where(Message.idempotency_key == key)) is not None

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

    def claimed_many(
        self, claims: Iterable[tuple[int, int]], *, statuses: Sequence[str] = ("sending", "in_flight", "unknown")
    ) -> dict[int, Message]:
        """`get_claimed` for many (message id, claim): the messages, locked, that this worker's
        claims still hold, in one of `statuses`."""
        wanted = dict(claims)
        out: dict[int, Message] = {}
        for chunk in chunked(list(wanted)):
            query = select(Message).where(Message.id.in_(chunk), Message.status.in_(statuses)).with_for_update()
            out.update({row.id: row for row in self.session.scalars(query) if row.attempts == wanted[row.id]})
        return out

    def claims_held(self, claims: Iterable[tuple[int, int]]) -> dict[int, tuple[int | None, str]]:
        """Of these (message id, claim), the messages the claim still holds, locked: id →
        (follow-up id, channel)."""
        wanted = dict(claims)
        out: dict[int, tuple[int | None, str]] = {}
        for chunk in chunked(list(wanted)):
            query = (
                select(Message.id, Message.attempts, Message.followup_id, Message.channel)
                .where(Message.id.in_(chunk), Message.status.in_(("sending", "in_flight", "unknown")))
                .with_for_update()
            )
            for message_id, attempts, followup_id, channel in self.session.execute(query):
                if attempts == wanted[message_id]:
                    out[message_id] = (followup_id, channel)
        return out

    def mark_sent(self, changes: Sequence[Mapping[str, Any]]) -> None:
        """Messages accepted by their provider: id, sent_at, provider_ref, provider, segments each."""
        if not changes:
            return
        table = cast(Table, Message.__table__)
        self.session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                status="sent",
                lease_until=None,
                reason=None,
                sent_at=bindparam("b_sent_at"),
                provider_ref=bindparam("b_provider_ref"),
                provider=bindparam("b_provider"),
                segments=bindparam("b_segments"),
            ),
            [{f"b_{key}": value for key, value in change.items()} for change in changes],
        )

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

    def add_attempts(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Record a claim's tries, unless they are recorded already (settled twice: kept as first
        told), in one statement."""
        dialect = self.session.get_bind().dialect.name
        statement = insert_ignoring_conflicts(
            dialect, MessageAttempt.__table__, index_elements=["message_id", "number", "seq"]
        )
        self.session.execute(statement, rows)

    def by_provider_ref_for_update(self, provider_ref: str) -> Message | None:
        return self.session.scalars(
            select(Message)
            .where(Message.provider_ref == provider_ref)
            .order_by(Message.id.desc())
            .limit(1)
            .with_for_update()
        ).first()

    def by_key_for_update(self, key: str) -> Message | None:
        return self.session.scalars(select(Message).where(Message.idempotency_key == key).with_for_update()).first()

    def engaged(self, followup_id: int, *, answered_only: bool) -> bool:
        marks = [Message.answered_at.is_not(None)]
        if not answered_only:
            marks += [Message.opened_at.is_not(None), Message.clicked_at.is_not(None)]
        found = self.session.scalar(select(Message.id).where(Message.followup_id == followup_id, or_(*marks)).limit(1))
        return found is not None

    def tries_since(self, since: dt.datetime) -> list[tuple[str, str, str, int]]:
        query = (
            select(Message.channel, MessageAttempt.provider, MessageAttempt.outcome, func.count())
            .join(Message, Message.id == MessageAttempt.message_id)
            .where(MessageAttempt.started_at >= since)
            .group_by(Message.channel, MessageAttempt.provider, MessageAttempt.outcome)
        )
        return [(str(c), str(p), str(o), int(n)) for c, p, o, n in self.session.execute(query)]

    def keys_of(self, followup_id: int, *, channel: str) -> list[str]:
        # Through the connection with a statement built once: an answer asks, holding the write lock.
        found = self.session.connection().execute(_KEYS_OF, {"followup": followup_id, "channel": channel})
        return [key for (key,) in found]

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
                .order_by(MessageAttempt.message_id, MessageAttempt.number, MessageAttempt.seq)
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

    def mark_in_flight(
        self, message_id: int, claim: int, *, lease_until: dt.datetime, provider: str | None = None
    ) -> bool:
        """One short transaction per email sent: written against the table, which costs half of
        an ORM update."""
        values: dict[str, Any] = {"status": "in_flight", "lease_until": lease_until}
        if provider is not None:
            values["provider"] = provider
        table = cast(Table, Message.__table__)
        result = self.session.execute(
            update(table)
            .where(
                table.c.id == message_id,
                table.c.status.in_(("sending", "in_flight")) if provider else table.c.status == "sending",
                table.c.attempts == claim,
            )
            .values(values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def pin_provider(self, message_id: int, claim: int, provider: str) -> bool:
        result = self.session.execute(
            update(Message)
            .where(Message.id == message_id, Message.status == "sending", Message.attempts == claim)
            .values(provider=provider)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def last_try_lost(self, message_id: int, number: int) -> bool:
        """Whether the claim `number` of the message ended with its worker gone (a lost try)."""
        outcomes = self.session.scalars(
            select(MessageAttempt.outcome).where(
                MessageAttempt.message_id == message_id, MessageAttempt.number == number
            )
        )
        return "lost" in set(outcomes)

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

    def claim_inbound(self, row: dict[str, Any]) -> InboundMessage | None:
        dialect = self.session.get_bind().dialect.name
        statement = insert_ignoring_conflicts(
            dialect, InboundMessage.__table__, index_elements=["provider", "provider_ref"]
        )
        if not self.session.execute(statement, [row]).rowcount:  # type: ignore[attr-defined]
            return None
        return self.session.scalars(
            select(InboundMessage).where(
                InboundMessage.provider == row["provider"], InboundMessage.provider_ref == row["provider_ref"]
            )
        ).one()

    def latest_followup_on(self, customer_id: int, channel: str) -> int | None:
        return self.session.scalars(
            select(Message.followup_id)
            .where(Message.customer_id == customer_id, Message.channel == channel, Message.followup_id.is_not(None))
            .order_by(Message.id.desc())
            .limit(1)
        ).first()

    def funnel_rows(
        self, *, since: dt.datetime | None, until: dt.datetime | None
    ) -> list[tuple[int | None, str, int, int, int, int, int]]:
        engaged = or_(Message.opened_at.is_not(None), Message.clicked_at.is_not(None), Message.answered_at.is_not(None))
        query = (
            select(
                Message.strategy_id,
                Message.channel,
                func.count(),
                func.count(case((Message.status == "sent", 1))),
                func.count(case((Message.receipt == "delivered", 1))),
                func.count(case((engaged, 1))),
                func.count(case((Message.answered_at.is_not(None), 1))),
            )
            .where(Message.step.in_(("invite", "remind")))
            .group_by(Message.strategy_id, Message.channel)
        )
        if since is not None:
            query = query.where(Message.created_at >= since)
        if until is not None:
            query = query.where(Message.created_at < until)
        return [
            (row[0], str(row[1]), int(row[2]), int(row[3]), int(row[4]), int(row[5]), int(row[6]))
            for row in self.session.execute(query)
        ]


class SubjectRepository:
    """What this domain holds about one customer, for their data rights (ADR 0024)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def messages(self, customer_id: int) -> list[Message]:
        return list(
            self.session.scalars(select(Message).where(Message.customer_id == customer_id).order_by(Message.id))
        )

    def inbound(self, customer_id: int) -> list[InboundMessage]:
        return list(
            self.session.scalars(
                select(InboundMessage).where(InboundMessage.customer_id == customer_id).order_by(InboundMessage.id)
            )
        )

    def erase(self, customer_id: int) -> None:
        """Messages not sent yet are suppressed; every message's content and error text and every
        reply's text go (the sealed ones are unreadable already: this drops the ciphertext too)."""
        self.session.execute(
            update(Message)
            .where(Message.customer_id == customer_id, Message.status == "queued")
            .values(status="suppressed", reason="erased"),
            execution_options={"synchronize_session": False},
        )
        self.session.execute(
            update(Message).where(Message.customer_id == customer_id).values(content_sealed=b"", last_error=None),
            execution_options={"synchronize_session": False},
        )
        self.session.execute(
            update(InboundMessage).where(InboundMessage.customer_id == customer_id).values(text_sealed=None),
            execution_options={"synchronize_session": False},
        )


# Not yet handed to a provider: their content is still to be sent, however old.
_UNSENT = ("queued", "sending", "in_flight")


class RetentionRepository:
    """Message content and reply texts past their retention period. Each predicate repeats the
    WHERE of its partial index word for word (migration 0024): SQLite uses a partial index only
    when the query names its condition, and rows already cleared leave the index."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @staticmethod
    def _content_older(cutoff: dt.datetime) -> list[ColumnElement[bool]]:
        return [
            func.length(Message.content_sealed) > literal_column("0"),
            Message.created_at < cutoff,
            Message.status.not_in(_UNSENT),
        ]

    def count_content_older(self, cutoff: dt.datetime) -> int:
        return expiry.count(self.session, Message.id, self._content_older(cutoff))

    def clear_content_older(self, cutoff: dt.datetime, *, limit: int) -> int:
        """The content and the provider's error text go; states, times and counts stay for rates."""
        return expiry.clear_batch(
            self.session,
            Message,
            Message.id,
            self._content_older(cutoff),
            values={"content_sealed": b"", "last_error": None},
            order_by=Message.created_at,
            limit=limit,
        )

    @staticmethod
    def _reply_text_older(cutoff: dt.datetime) -> list[ColumnElement[bool]]:
        return [InboundMessage.text_sealed.is_not(None), InboundMessage.received_at < cutoff]

    def count_reply_texts_older(self, cutoff: dt.datetime) -> int:
        return expiry.count(self.session, InboundMessage.id, self._reply_text_older(cutoff))

    def clear_reply_texts_older(self, cutoff: dt.datetime, *, limit: int) -> int:
        """A reply's words go; what it was read as (its kind and score) stays."""
        return expiry.clear_batch(
            self.session,
            InboundMessage,
            InboundMessage.id,
            self._reply_text_older(cutoff),
            values={"text_sealed": None},
            order_by=InboundMessage.received_at,
            limit=limit,
        )
