"""Outbound webhooks: the wallet's systems hear what happens here, signed, retried, and logged.

`publish` is called inside the transaction of whatever happened (an answer, a case, a reward, a
consent), so a delivery exists exactly when the change does. The worker posts each delivery in
the Standard Webhooks form, signed with its endpoint's secret, and retries with exponential backoff
and jitter for 24 hours; an endpoint whose delivery still fails after that is disabled, with the
reason. Every try is kept on the delivery (status, latency, the answer's first 500 characters).

Bodies carry ids, scores and states, never contact points or what customers typed: a comment may
hold a card number, and the receiver can read it through the API with the right key.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import random
import secrets
import socket
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from followup.kernel.crypto import KeyProvider
from followup.kernel.errors import Conflict, InvalidInput, NotFound
from followup.kernel.standard_webhooks import new_secret
from followup.kernel.text import control_character, plain_text
from followup.webhooks.models import WebhookDelivery, WebhookEndpoint
from followup.webhooks.repository import WebhookRepository
from followup.webhooks.schemas import DeliveryOut, WebhookCreate, WebhookOut, WebhookUpdate

TEST_EVENT = "webhook.test"
GIVE_UP_AFTER = dt.timedelta(hours=24)
LEASE = dt.timedelta(seconds=60)
_MAX_BACKOFF = 3600.0
_SECRET_CONTEXT = b"webhook-endpoint-secret"
_jitter = random.SystemRandom()


class WebhookNotFound(NotFound):
    code = "webhook_not_found"


class DeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"


class WebhookDisabled(Conflict):
    code = "webhook_disabled"


class WebhookUrlRefused(InvalidInput):
    code = "webhook_url_refused"


def check_url(url: str, *, allow_private: bool) -> str:
    """The URL, if deliveries may go there: http(s), a host, no credentials, and (unless
    `allow_private`) only public addresses, so an API key cannot aim the worker inside the network."""
    url = url.strip()
    if control_character(url) is not None or " " in url:
        raise WebhookUrlRefused("The URL contains a space or a control character.", field="url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookUrlRefused("Give an http:// or https:// URL with a host name.", field="url")
    if parts.username or parts.password:
        raise WebhookUrlRefused("Put no user name or password in the URL; deliveries are signed.", field="url")
    try:
        parts.port  # noqa: B018 - reading it checks that the port is a number in range
    except ValueError:
        raise WebhookUrlRefused("The URL's port is not a number from 0 to 65535.", field="url") from None
    if not allow_private:
        for address in _addresses(parts.hostname):
            if not address.is_global:
                raise WebhookUrlRefused(
                    f"The URL's host resolves to {address}, a private, loopback or reserved address; webhooks "
                    "go to public addresses only (FOLLOWUP_WEBHOOKS_ALLOW_PRIVATE=true allows others).",
                    field="url",
                )
    return url


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise WebhookUrlRefused(f"The host '{host}' does not resolve.", field="url") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in found]


def _describe(endpoint: WebhookEndpoint) -> WebhookOut:
    return WebhookOut(
        id=endpoint.id,
        url=endpoint.url,
        events=endpoint.events.split(),
        description=endpoint.description,
        enabled=endpoint.disabled_at is None,
        created_at=endpoint.created_at,
        disabled_at=endpoint.disabled_at,
        disabled_reason=endpoint.disabled_reason,
    )


def create_endpoint(
    session: Session, body: WebhookCreate, *, keys: KeyProvider, now: dt.datetime, allow_private: bool
) -> tuple[WebhookOut, str]:
    """A new endpoint and its secret, which is shown once and kept wrapped by the master key."""
    url = check_url(body.url, allow_private=allow_private)
    _check_description(body.description)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        url=url,
        events=" ".join(dict.fromkeys(body.events)),
        description=body.description,
        secret_wrapped=keys.wrap(secret.encode(), context=_SECRET_CONTEXT),
        created_at=now,
    )
    WebhookRepository(session).add(endpoint)
    session.flush()
    _forget_subscriptions(session)
    return _describe(endpoint), secret


def _check_description(text: str) -> None:
    if control_character(text) is not None:
        raise InvalidInput("The description contains a control character.", field="description")


def access_endpoint(session: Session, webhook_id: int, *, lock: bool = False) -> WebhookEndpoint:
    endpoint = WebhookRepository(session).endpoint(webhook_id, lock=lock)
    if endpoint is None:
        raise WebhookNotFound(f"There is no webhook {webhook_id}.")
    return endpoint


def describe_endpoint(endpoint: WebhookEndpoint) -> WebhookOut:
    return _describe(endpoint)


def list_endpoints(session: Session, *, limit: int, offset: int) -> tuple[list[WebhookOut], int]:
    rows, total = WebhookRepository(session).endpoints(limit=limit, offset=offset)
    return [_describe(row) for row in rows], total


def update_endpoint(
    session: Session, endpoint: WebhookEndpoint, patch: WebhookUpdate, *, now: dt.datetime, allow_private: bool
) -> WebhookOut:
    if patch.url is not None:
        endpoint.url = check_url(patch.url, allow_private=allow_private)
    if patch.events is not None:
        endpoint.events = " ".join(dict.fromkeys(patch.events))
    if patch.description is not None:
        _check_description(patch.description)
        endpoint.description = patch.description
    if patch.enabled is True:
        endpoint.disabled_at, endpoint.disabled_reason = None, None
    elif patch.enabled is False and endpoint.disabled_at is None:
        endpoint.disabled_at, endpoint.disabled_reason = now, "disabled by an operator"
    _forget_subscriptions(session)
    return _describe(endpoint)


def delete_endpoint(session: Session, endpoint: WebhookEndpoint) -> None:
    WebhookRepository(session).delete(endpoint)
    _forget_subscriptions(session)


def _queue(
    session: Session, endpoint_id: int, event_type: str, body: str, *, now: dt.datetime, replay_of: int | None = None
) -> WebhookDelivery:
    delivery = WebhookDelivery(
        endpoint_id=endpoint_id,
        message_id=f"msg_{secrets.token_hex(16)}",
        type=event_type,
        body=body,
        status="pending",
        attempts=0,
        next_at=now,
        created_at=now,
        replay_of=replay_of,
    )
    WebhookRepository(session).add(delivery)
    return delivery


def _body(event_type: str, data: Mapping[str, Any], now: dt.datetime) -> str:
    payload = {"type": event_type, "timestamp": now.isoformat().replace("+00:00", "Z"), "data": dict(data)}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)


def publish(session: Session, event_type: str, data: Mapping[str, Any], *, now: dt.datetime) -> int:
    """Queue `event_type` for every enabled endpoint that wants it, in the caller's transaction;
    returns how many deliveries that made."""
    endpoints = [(endpoint_id, events) for endpoint_id, events in _subscribed(session) if event_type in events]
    if not endpoints:
        return 0
    body = _body(event_type, data, now)
    for endpoint_id, _ in endpoints:
        _queue(session, endpoint_id, event_type, body, now=now)
    return len(endpoints)


_SUBSCRIBED = "followup.webhook_subscriptions"


def _subscribed(session: Session) -> list[tuple[int, frozenset[str]]]:
    """The enabled endpoints and the events each wants, read once per transaction: a batch of
    consent changes or answers asks many times."""
    found: list[tuple[int, frozenset[str]]] | None = session.info.get(_SUBSCRIBED)
    if found is None:
        found = [(row.id, frozenset(row.events.split())) for row in WebhookRepository(session).enabled()]
        session.info[_SUBSCRIBED] = found
    return found


def _forget_subscriptions(session: Session) -> None:
    session.info.pop(_SUBSCRIBED, None)


def send_test(session: Session, endpoint: WebhookEndpoint, *, now: dt.datetime) -> int:
    """A `webhook.test` delivery to this endpoint, to check the receiver and its signature check."""
    if endpoint.disabled_at is not None:
        raise WebhookDisabled(f"Webhook {endpoint.id} is disabled; enable it first (PATCH with enabled: true).")
    body = _body(TEST_EVENT, {"webhook_id": endpoint.id, "description": endpoint.description}, now)
    delivery = _queue(session, endpoint.id, TEST_EVENT, body, now=now)
    session.flush()
    return delivery.id


def replay(session: Session, delivery_id: int, *, now: dt.datetime) -> int:
    """Send a delivery's body again, as a new delivery with a new `webhook-id`."""
    repo = WebhookRepository(session)
    original = repo.delivery(delivery_id)
    if original is None:
        raise DeliveryNotFound(f"There is no webhook delivery {delivery_id}.")
    endpoint = access_endpoint(session, original.endpoint_id)
    if endpoint.disabled_at is not None:
        raise WebhookDisabled(f"Webhook {endpoint.id} is disabled; enable it first (PATCH with enabled: true).")
    delivery = _queue(session, endpoint.id, original.type, original.body, now=now, replay_of=original.id)
    session.flush()
    return delivery.id


def list_deliveries(session: Session, webhook_id: int, *, limit: int, offset: int) -> tuple[list[DeliveryOut], int]:
    access_endpoint(session, webhook_id)
    rows, total = WebhookRepository(session).deliveries(webhook_id, limit=limit, offset=offset)
    return [_delivery_out(row) for row in rows], total


def _delivery_out(row: WebhookDelivery) -> DeliveryOut:
    waiting = row.status in ("pending", "delivering")
    return DeliveryOut(
        id=row.id,
        webhook_id=row.endpoint_id,
        message_id=row.message_id,
        type=row.type,
        status=row.status,
        attempts=row.attempts,
        created_at=row.created_at,
        next_at=row.next_at if waiting else None,
        delivered_at=row.delivered_at,
        last_status=row.last_status,
        last_latency_ms=row.last_latency_ms,
        last_error=row.last_error,
        last_response=row.last_response,
        replay_of=row.replay_of,
    )


# The worker's side: claim due deliveries, post them outside any transaction, record each try.


class DueDelivery(NamedTuple):
    id: int
    url: str
    secret: str
    message_id: str
    body: str


class Tried(NamedTuple):
    """What one post came to: the HTTP status (None when no answer came), how long it took, a
    short error for the log, and the start of the answer's body."""

    status: int | None
    latency_ms: int
    error: str | None
    response: str | None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def claim_due(session: Session, *, now: dt.datetime, keys: KeyProvider, limit: int) -> list[DueDelivery]:
    """Lease due deliveries to this worker (another takes them over when the lease runs out). A
    delivery whose endpoint was disabled meanwhile fails instead."""
    repo = WebhookRepository(session)
    out = []
    for delivery, endpoint in repo.claim_due(now=now, limit=limit):
        if endpoint.disabled_at is not None:
            delivery.status, delivery.last_error = "failed", "the endpoint is disabled"
            continue
        delivery.status, delivery.next_at, delivery.attempts = "delivering", now + LEASE, delivery.attempts + 1
        secret = keys.unwrap(endpoint.secret_wrapped, context=_SECRET_CONTEXT).decode()
        out.append(DueDelivery(delivery.id, endpoint.url, secret, delivery.message_id, delivery.body))
    return out


def record_try(session: Session, delivery_id: int, tried: Tried, *, now: dt.datetime, retry_base: float) -> None:
    """Delivered; or due again after a backoff; or, once it has failed for 24 hours, failed for
    good with its endpoint disabled."""
    repo = WebhookRepository(session)
    delivery = repo.delivery(delivery_id, lock=True)
    if delivery is None or delivery.status != "delivering":
        return
    delivery.last_status, delivery.last_latency_ms = tried.status, tried.latency_ms
    delivery.last_error = tried.error[:200] if tried.error else None
    delivery.last_response = plain_text(tried.response)[:500] if tried.response else None
    if tried.delivered:
        delivery.status, delivery.delivered_at = "delivered", now
        return
    if now - delivery.created_at >= GIVE_UP_AFTER:
        delivery.status = "failed"
        endpoint = repo.endpoint(delivery.endpoint_id, lock=True)
        if endpoint is not None and endpoint.disabled_at is None:
            why = f"HTTP {tried.status}" if tried.status is not None else (tried.error or "no answer")
            endpoint.disabled_at = now
            endpoint.disabled_reason = f"deliveries failed for 24 hours; the last: {why}"[:200]
        return
    delay = min(_MAX_BACKOFF, retry_base * 2 ** max(delivery.attempts - 1, 0))
    # Equal jitter, as for messages: retries of deliveries failing together spread out.
    delivery.status = "pending"
    delivery.next_at = now + dt.timedelta(seconds=delay / 2 + _jitter.uniform(0, delay / 2))
