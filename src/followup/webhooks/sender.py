"""Posting one delivery: the Standard Webhooks headers, a short timeout, no redirects, and the
address checked again at send time (a host's DNS may have changed since the endpoint was made)."""

from __future__ import annotations

import time

import httpx

from followup.kernel.standard_webhooks import sign
from followup.webhooks.service import DueDelivery, Tried, WebhookUrlRefused, check_url

TIMEOUT = httpx.Timeout(connect=5.0, read=10.0, write=10.0, pool=5.0)
USER_AGENT = "followup-webhooks/1"


def open_client() -> httpx.Client:
    return httpx.Client(timeout=TIMEOUT, follow_redirects=False, headers={"User-Agent": USER_AGENT})


def post(client: httpx.Client, due: DueDelivery, *, timestamp: int, allow_private: bool) -> Tried:
    started = time.monotonic()
    try:
        check_url(due.url, allow_private=allow_private)
    except WebhookUrlRefused as exc:
        return Tried(None, 0, exc.message, None)
    body = due.body.encode()
    headers = {
        "content-type": "application/json",
        "webhook-id": due.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(due.secret, due.message_id, timestamp, body),
    }
    try:
        response = client.post(due.url, content=body, headers=headers)
    except httpx.TimeoutException:
        return Tried(None, _ms(started), "no answer within the timeout", None)
    except httpx.TransportError as exc:
        # httpx's own message may quote the URL; the type is enough to act on.
        return Tried(None, _ms(started), f"the connection failed ({type(exc).__name__})", None)
    return Tried(response.status_code, _ms(started), None, response.text[:2000])


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
