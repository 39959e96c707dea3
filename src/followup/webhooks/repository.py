from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from followup.webhooks.models import WebhookDelivery, WebhookEndpoint


class WebhookRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: WebhookEndpoint | WebhookDelivery) -> None:
        self.session.add(row)

    def delete(self, row: WebhookEndpoint) -> None:
        self.session.delete(row)

    def endpoint(self, webhook_id: int, *, lock: bool = False) -> WebhookEndpoint | None:
        query = select(WebhookEndpoint).where(WebhookEndpoint.id == webhook_id)
        return self.session.scalars(query.with_for_update() if lock else query).one_or_none()

    def endpoints(self, *, limit: int, offset: int) -> tuple[list[WebhookEndpoint], int]:
        total = self.session.scalar(select(func.count()).select_from(WebhookEndpoint)) or 0
        rows = self.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id).limit(limit).offset(offset))
        return list(rows), total

    def enabled(self) -> list[WebhookEndpoint]:
        return list(self.session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.disabled_at.is_(None))))

    def delivery(self, delivery_id: int, *, lock: bool = False) -> WebhookDelivery | None:
        query = select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
        return self.session.scalars(query.with_for_update() if lock else query).one_or_none()

    def deliveries(self, webhook_id: int, *, limit: int, offset: int) -> tuple[list[WebhookDelivery], int]:
        mine = WebhookDelivery.endpoint_id == webhook_id
        total = self.session.scalar(select(func.count()).select_from(WebhookDelivery).where(mine)) or 0
        query = select(WebhookDelivery).where(mine).order_by(WebhookDelivery.id.desc()).limit(limit).offset(offset)
        return list(self.session.scalars(query)), total

    def claim_due(self, *, now: dt.datetime, limit: int) -> list[tuple[WebhookDelivery, WebhookEndpoint]]:
        """Due deliveries, pending or left `delivering` by a worker whose lease ran out, locked."""
        query = (
            select(WebhookDelivery, WebhookEndpoint)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.status.in_(("pending", "delivering")), WebhookDelivery.next_at <= now)
            .order_by(WebhookDelivery.next_at, WebhookDelivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=WebhookDelivery)
        )
        return [(row[0], row[1]) for row in self.session.execute(query)]


class SubjectRepository:
    """What this domain holds about one customer, for their data rights (ADR 0024)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def erase_naming(self, needle: str) -> None:
        """Deliveries whose body names the customer: the ones still waiting are dropped, the sent
        ones keep their status and times and lose their body."""
        naming = WebhookDelivery.body.contains(needle, autoescape=True)
        self.session.execute(
            delete(WebhookDelivery).where(naming, WebhookDelivery.status != "delivered"),
        )
        self.session.execute(
            update(WebhookDelivery).where(naming).values(body='{"erased":true}', last_response=None),
            execution_options={"synchronize_session": False},
        )
