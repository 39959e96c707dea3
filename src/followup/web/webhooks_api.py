"""The webhooks API: endpoints created, changed and removed, each change written to the audit log
(here, above both `webhooks` and `privacy`), tests sent and deliveries replayed."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Response
from sqlalchemy.orm import Session

from followup.kernel.actors import Actor
from followup.kernel.http import AppSettings, Keys, Now, ReadSession, WriteSession
from followup.kernel.openapi import may_answer
from followup.kernel.pagination import Limit, Offset
from followup.kernel.schemas import Page
from followup.privacy import service as privacy
from followup.staff.auth import ApiActor
from followup.webhooks import service
from followup.webhooks.schemas import (
    DeliveryOut,
    DeliveryQueued,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookUpdate,
)

router = APIRouter(tags=["webhooks"])
WebhookId = Annotated[int, Path(ge=1, le=2**62)]


def _audited(endpoint: WebhookOut) -> dict[str, Any]:
    """What the audit log keeps of an endpoint: where it points (scheme, host and port; a path or
    query may carry a token of the wallet's) and what it receives."""
    url = urlsplit(endpoint.url)
    return {
        "url": f"{url.scheme}://{url.hostname or ''}{f':{url.port}' if url.port else ''}",
        "url_digest": _digest(endpoint.url),
        "events": sorted(endpoint.events),
        "enabled": endpoint.enabled,
        "description": _digest(endpoint.description),
    }


def _digest(value: str) -> str:
    """A short SHA-256 of a value kept out of the log: tells a change, not the value."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def _audit(
    session: Session,
    webhook_id: int,
    event: str,
    *,
    actor: Actor,
    now: dt.datetime,
    old: WebhookOut | None,
    new: WebhookOut | None,
) -> None:
    privacy.record_audit(
        session,
        actor=actor,
        subject_type="webhook",
        subject_id=str(webhook_id),
        event=event,
        now=now,
        old=_audited(old) if old is not None else None,
        new=_audited(new) if new is not None else None,
    )


@router.post("/webhooks", response_model=WebhookCreated, status_code=201)
def create_webhook(
    body: WebhookCreate, session: WriteSession, actor: ApiActor, keys: Keys, now: Now, settings: AppSettings
) -> WebhookCreated:
    out, secret = service.create_endpoint(
        session, body, keys=keys, now=now, allow_private=settings.webhooks_allow_private
    )
    _audit(session, out.id, "webhook.created", actor=actor, now=now, old=None, new=out)
    return WebhookCreated(**out.model_dump(), secret=secret)


@router.get("/webhooks", response_model=Page[WebhookOut])
def list_webhooks(session: ReadSession, actor: ApiActor, limit: Limit = 50, offset: Offset = 0) -> Page[WebhookOut]:
    items, total = service.list_endpoints(session, limit=limit, offset=offset)
    return Page[WebhookOut](items=items, total=total)


@router.get("/webhooks/{webhook_id}", response_model=WebhookOut, responses=may_answer(404))
def get_webhook(webhook_id: WebhookId, session: ReadSession, actor: ApiActor) -> WebhookOut:
    return service.describe_endpoint(service.access_endpoint(session, webhook_id))


@router.patch("/webhooks/{webhook_id}", response_model=WebhookOut, responses=may_answer(404))
def update_webhook(
    webhook_id: WebhookId, body: WebhookUpdate, session: WriteSession, actor: ApiActor, now: Now, settings: AppSettings
) -> WebhookOut:
    endpoint = service.access_endpoint(session, webhook_id, lock=True)
    old = service.describe_endpoint(endpoint)
    new = service.update_endpoint(session, endpoint, body, now=now, allow_private=settings.webhooks_allow_private)
    if new != old:
        _audit(session, webhook_id, "webhook.updated", actor=actor, now=now, old=old, new=new)
    return new


@router.delete("/webhooks/{webhook_id}", status_code=204, responses=may_answer(404))
def delete_webhook(webhook_id: WebhookId, session: WriteSession, actor: ApiActor, now: Now) -> Response:
    endpoint = service.access_endpoint(session, webhook_id, lock=True)
    old = service.describe_endpoint(endpoint)
    service.delete_endpoint(session, endpoint)
    _audit(session, webhook_id, "webhook.deleted", actor=actor, now=now, old=old, new=None)
    return Response(status_code=204)


@router.post(
    "/webhooks/{webhook_id}/test", response_model=DeliveryQueued, status_code=202, responses=may_answer(404, 409)
)
def test_webhook(webhook_id: WebhookId, session: WriteSession, actor: ApiActor, now: Now) -> DeliveryQueued:
    return DeliveryQueued(delivery_id=service.send_test(session, service.access_endpoint(session, webhook_id), now=now))


@router.get("/webhooks/{webhook_id}/deliveries", response_model=Page[DeliveryOut], responses=may_answer(404))
def list_deliveries(
    webhook_id: WebhookId, session: ReadSession, actor: ApiActor, limit: Limit = 50, offset: Offset = 0
) -> Page[DeliveryOut]:
    items, total = service.list_deliveries(session, webhook_id, limit=limit, offset=offset)
    return Page[DeliveryOut](items=items, total=total)


@router.post(
    "/webhooks/deliveries/{delivery_id}/replay",
    response_model=DeliveryQueued,
    status_code=202,
    responses=may_answer(404, 409),
)
def replay_delivery(
    delivery_id: Annotated[int, Path(ge=1, le=2**62)], session: WriteSession, actor: ApiActor, now: Now
) -> DeliveryQueued:
    return DeliveryQueued(delivery_id=service.replay(session, delivery_id, now=now))
