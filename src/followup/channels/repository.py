from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.orm import Session

from followup.channels.models import InboxItem, ProviderState, RateLimit, ShortLink
from followup.kernel import expiry
from followup.kernel.db import insert_ignoring_conflicts


class InboxRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def insert_once(self, row: dict[str, Any]) -> int:
        """Insert unless an item with the same idempotency key exists; the item's id either way."""
        dialect = self.session.get_bind().dialect.name
        statement = insert_ignoring_conflicts(dialect, InboxItem.__table__, index_elements=["idempotency_key"])
        self.session.execute(statement, [row])
        found = self.session.scalars(
            select(InboxItem.id).where(InboxItem.idempotency_key == row["idempotency_key"])
        ).one()
        return int(found)

    def delete_by_keys(self, keys: list[str]) -> int:
        result = self.session.execute(delete(InboxItem).where(InboxItem.idempotency_key.in_(keys)))
        return int(result.rowcount)  # type: ignore[attr-defined]

    def get_for_customer(self, customer_id: int, item_id: int) -> InboxItem | None:
        return self.session.scalars(
            select(InboxItem).where(InboxItem.id == item_id, InboxItem.customer_id == customer_id)
        ).one_or_none()

    def for_customer(self, customer_id: int, *, limit: int) -> list[InboxItem]:
        return list(
            self.session.scalars(
                select(InboxItem).where(InboxItem.customer_id == customer_id).order_by(InboxItem.id.desc()).limit(limit)
            )
        )


class RateLimitRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def next_slot_for_update(self, key: str) -> float:
        """The key's next free slot, locked until commit (a new key starts free)."""
        dialect = self.session.get_bind().dialect.name
        statement = insert_ignoring_conflicts(dialect, RateLimit.__table__, index_elements=["key"])
        self.session.execute(statement, [{"key": key, "next_slot": 0.0}])
        found = self.session.scalars(select(RateLimit.next_slot).where(RateLimit.key == key).with_for_update()).one()
        return float(found)

    def set_next_slot(self, key: str, value: float) -> None:
        self.session.execute(update(RateLimit).where(RateLimit.key == key).values(next_slot=value))


class ProviderStateRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def for_update(self, channel: str, provider: str) -> ProviderState:
        dialect = self.session.get_bind().dialect.name
        statement = insert_ignoring_conflicts(dialect, ProviderState.__table__, index_elements=["channel", "provider"])
        self.session.execute(
            statement, [{"channel": channel, "provider": provider, "failures_in_row": 0, "skipped": 0}]
        )
        return self.session.scalars(
            select(ProviderState)
            .where(ProviderState.channel == channel, ProviderState.provider == provider)
            .with_for_update()
        ).one()

    def all(self) -> list[ProviderState]:
        return list(self.session.scalars(select(ProviderState).order_by(ProviderState.channel, ProviderState.provider)))

    def open_circuits(self, channel: str, *, now: dt.datetime) -> dict[str, dt.datetime]:
        rows = self.session.execute(
            select(ProviderState.provider, ProviderState.open_until).where(
                ProviderState.channel == channel, ProviderState.open_until > now
            )
        )
        return {provider: until for provider, until in rows if until is not None}


class ShortLinkRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def insert_once(self, row: dict[str, Any]) -> None:
        dialect = self.session.get_bind().dialect.name
        statement = insert_ignoring_conflicts(dialect, ShortLink.__table__, index_elements=["code_hash"])
        self.session.execute(statement, [row])

    def get(self, code_hash: str) -> ShortLink | None:
        return self.session.get(ShortLink, code_hash)


class SubjectRepository:
    """What this domain holds about one customer, for their data rights (ADR 0024)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def erase(self, customer_id: int) -> None:
        """The inbox and short links only carry what was sent: they go."""
        self.session.execute(delete(InboxItem).where(InboxItem.customer_id == customer_id))
        self.session.execute(delete(ShortLink).where(ShortLink.customer_id == customer_id))


class RetentionRepository:
    """Inbox items and expired short links past their retention period."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @staticmethod
    def _inbox_older(cutoff: dt.datetime) -> list[ColumnElement[bool]]:
        return [InboxItem.created_at < cutoff]

    def count_inbox_older(self, cutoff: dt.datetime) -> int:
        return expiry.count(self.session, InboxItem.id, self._inbox_older(cutoff))

    def delete_inbox_older(self, cutoff: dt.datetime, *, limit: int) -> int:
        return expiry.delete_batch(
            self.session, InboxItem, InboxItem.id, self._inbox_older(cutoff), order_by=InboxItem.created_at, limit=limit
        )

    def count_links_expired(self, cutoff: dt.datetime) -> int:
        return expiry.count(self.session, ShortLink.code_hash, [ShortLink.expires_at < cutoff])

    def delete_links_expired(self, cutoff: dt.datetime, *, limit: int) -> int:
        """A short link's target (its survey link) goes with the messages that carried it."""
        return expiry.delete_batch(
            self.session,
            ShortLink,
            ShortLink.code_hash,
            [ShortLink.expires_at < cutoff],
            order_by=ShortLink.expires_at,
            limit=limit,
        )
