"""What a provider is: one service a channel sends through (an SMS gateway, FCM, APNs).

A channel with providers (SMS, push) tries them in order; each provider only turns one outgoing
message into one request of its protocol and reads the answer. It raises:

- `TransientProviderError` when trying again later may work: a timeout before the request was
  sent, a refused connection, 429, 5xx. `retry_after` carries the provider's Retry-After.
- `PermanentProviderError` when this message will never go through this provider: a 4xx refusal.
- `AddressGoneError` (permanent) when the address itself is dead: an unregistered device token,
  an invalid number. The contact point is then marked (`status`) and the policy stops using it.
- `UnknownOutcomeError` when the request may have reached the provider and no answer came back
  (a read timeout, a dropped connection after the body was sent). Such a message is never sent
  through another provider; only the same provider, with the same idempotency key, may see it
  again, and only when it honours the key.

`code` is a short stable word for the attempt's `error_code` (e.g. `http_503`, `timeout`,
`UNREGISTERED`); `message` is a sentence for people that never quotes the address or the text.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Protocol

import httpx


@dataclass(frozen=True)
class Outgoing:
    """One message for one provider. `to` is an E.164 number for SMS, a device token for push;
    `reference` is our idempotency key (the same on every try of one message)."""

    to: str
    text: str
    reference: str
    title: str | None = None  # push only
    link: str | None = None  # push: what tapping the notification opens
    collapse_id: str | None = None  # push: a later notification with the same id replaces it
    callback_url: str | None = None  # SMS: where the provider posts its delivery receipt


class ProviderError(Exception):
    def __init__(self, message: str, *, code: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code[:64]
        self.retry_after = retry_after


class TransientProviderError(ProviderError):
    pass


class PermanentProviderError(ProviderError):
    pass


class AddressGoneError(PermanentProviderError):
    """The address is dead: `status` is what its contact point becomes (`unregistered` for a
    device token the platform no longer knows, `invalid` for a number no carrier serves)."""

    def __init__(self, message: str, *, code: str, status: str) -> None:
        super().__init__(message, code=code)
        self.status = status


class UnknownOutcomeError(ProviderError):
    pass


class Provider(Protocol):
    """A provider's `name` is the operator's (FOLLOWUP_SMS_PROVIDERS' `name`; `fcm`, `apns`),
    unique in its channel; `kind` is the protocol (generic, twilio, aliyun, fcm, apns)."""

    name: str
    kind: str
    rate_per_second: float | None
    concurrency: int  # at most this many sends in flight to it at once, in one worker
    idempotent: bool  # the provider drops a second request with the same reference

    def send(self, outgoing: Outgoing) -> str:
        """Send one message; returns the provider's id for it (receipts name it)."""
        ...

    def close(self) -> None: ...


def retry_after_seconds(value: str | None, *, cap: float = 3600.0) -> float | None:
    """A Retry-After header in seconds (only the delta-seconds form; an HTTP date is ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if math.isnan(seconds) or seconds < 0:
        return None
    return min(seconds, cap)


# What comes back: receipts and inbound messages, read from a provider's webhook.


@dataclass(frozen=True)
class WebhookRequest:
    """A webhook as it arrived: `url` is the full public URL the provider called (Twilio signs
    it), `headers` with lower-case names, `body` the raw bytes (signatures cover them exactly)."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


class WebhookSignatureError(Exception):
    """The webhook's signature is missing, wrong, or too old: answered 401, nothing changes."""


class WebhookFormatError(Exception):
    """The webhook is signed but does not read as the provider's format: answered 422."""


@dataclass(frozen=True)
class ReceiptReport:
    """The provider's word on one message: `provider_id` is what `send` returned."""

    provider_id: str
    status: str  # "delivered" | "failed"
    error: str | None
    at: dt.datetime | None


@dataclass(frozen=True)
class InboundSms:
    """A message a customer sent: `provider_id` is the provider's id of it (a replayed webhook
    repeats it), `sender` the customer's number in E.164."""

    provider_id: str
    sender: str
    to: str
    text: str
    at: dt.datetime | None


@dataclass(frozen=True)
class WebhookAnswer:
    """What the provider expects back on success (Twilio wants TwiML, Alibaba Cloud a JSON code)."""

    media_type: str = "application/json"
    body: bytes = b'{"ok":true}'


class SmsProvider(Provider, Protocol):
    def read_receipts(self, request: WebhookRequest, *, now: dt.datetime) -> list[ReceiptReport]:
        """Check the signature (WebhookSignatureError), then read the receipts (WebhookFormatError)."""
        ...

    def read_inbound(self, request: WebhookRequest, *, now: dt.datetime) -> list[InboundSms]: ...

    def answer(self) -> WebhookAnswer: ...


def transport_error(exc: httpx.TransportError, *, provider: str, what: str = "message") -> ProviderError:
    """A transport failure as a provider error: before the request left (no connection, no free
    connection in the pool, the proxy said no), transient; after, unknown, as the provider may have
    acted on it. The sentence names the provider only: httpx's own may quote the URL."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout | httpx.ProxyError):
        return TransientProviderError(f"{provider} could not be reached ({type(exc).__name__})", code="connect")
    if isinstance(exc, httpx.TimeoutException):
        return UnknownOutcomeError(f"{provider} did not answer in time; the {what} may have been sent", code="timeout")
    return UnknownOutcomeError(
        f"the connection to {provider} failed after the {what} was sent ({type(exc).__name__})", code="connection_lost"
    )
