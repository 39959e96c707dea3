"""The `generic` SMS provider: our own small HTTP protocol, which any gateway or bridge can speak.

The protocol is written down in docs/channels/sms-gateway.md; the pydantic models below are its
JSON shapes, defined once. A gateway must honour `Idempotency-Key`, which is why this provider is
`idempotent` and a send whose fate is unknown may be repeated with the same key.

This module also holds what the three SMS providers share about HTTP: one kept-alive client with
the same timeouts, and one reading of transport failures. The line between "never sent" and "may
have been sent" is drawn there, once: a failure to connect is transient (the request never left),
a timeout or a dropped connection after the request went out is an unknown outcome.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Annotated, Literal

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from followup.channels.providers import (
    AddressGoneError,
    InboundSms,
    Outgoing,
    PermanentProviderError,
    ReceiptReport,
    TransientProviderError,
    UnknownOutcomeError,
    WebhookAnswer,
    WebhookFormatError,
    WebhookRequest,
    WebhookSignatureError,
    retry_after_seconds,
)
from followup.channels.sms import webhooks
from followup.config import GenericSmsSettings

# connect 5 s, read 10 s: a gateway that has not answered in 10 s is treated as "may have sent".
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=10.0, write=10.0, pool=5.0)
MAX_ITEMS_PER_WEBHOOK = 1000

_CODE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")
_E164 = r"^\+[1-9][0-9]{1,14}$"


# What every SMS provider shares about HTTP.


def open_client(
    *,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
    auth: httpx.BasicAuth | None = None,
    concurrency: int = 4,
) -> httpx.Client:
    """One client per provider, kept alive for its lifetime, with a connection for each send a
    worker may have in flight; redirects are not followed (a provider that redirects a send is
    misconfigured, and following it could post the message twice)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.Client(timeout=timeout, transport=transport, auth=auth, follow_redirects=False, limits=limits)


def exchange(client: httpx.Client, request: httpx.Request, *, provider: str) -> httpx.Response:
    """Send one request and read its answer, turning transport failures into provider errors.

    Messages name the provider only: httpx's own messages may quote the URL, which is kept out.
    """
    try:
        return client.send(request)
    except httpx.ConnectTimeout:
        raise TransientProviderError(f"{provider}: no connection within the timeout", code="connect_timeout") from None
    except httpx.ConnectError:
        raise TransientProviderError(
            f"{provider}: the connection was refused or failed", code="connect_error"
        ) from None
    except httpx.PoolTimeout:
        raise TransientProviderError(
            f"{provider}: no free connection within the timeout", code="pool_timeout"
        ) from None
    except httpx.ProxyError:
        raise TransientProviderError(f"{provider}: the proxy refused the request", code="proxy_error") from None
    except httpx.TimeoutException:
        # Read or write timeout: the request, or part of it, went out; the provider may act on it.
        raise UnknownOutcomeError(
            f"{provider}: no answer within the timeout; the message may have been accepted", code="timeout"
        ) from None
    except httpx.TransportError:
        raise UnknownOutcomeError(
            f"{provider}: the connection was lost after the request was sent; the message may have been accepted",
            code="connection_lost",
        ) from None


def retryable_status(status: int) -> bool:
    """429, 5xx, and 408 (the server gave up before it had the whole request, so it did nothing)."""
    return status in (408, 429) or status >= 500


def transient_answer(response: httpx.Response, *, provider: str) -> TransientProviderError:
    return TransientProviderError(
        f"{provider}: answered {response.status_code}; trying again later may work",
        code=f"http_{response.status_code}",
        retry_after=retry_after_seconds(response.headers.get("retry-after")),
    )


def json_object(response: httpx.Response) -> dict[str, object] | None:
    """The answer's body as a JSON object, or None when it is not one."""
    try:
        value = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def format_problem(exc: ValidationError) -> str:
    """Where a webhook's body is wrong, without its values (they hold numbers and texts)."""
    places = [f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['type']}" for error in exc.errors()]
    return "; ".join(places[:5])


# The protocol's JSON shapes (docs/channels/sms-gateway.md).


class GatewayMessage(BaseModel):
    """POST {url}/messages: one message to send."""

    to: str = Field(pattern=_E164)
    text: str
    sender: str | None
    reference: str
    callback_url: str | None


class GatewayAccepted(BaseModel):
    """A 2xx answer: the gateway's id of the message, which its receipts name."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=128)


class GatewayRefusal(BaseModel):
    """A 4xx answer's body: `error` is a short word; `invalid_number` marks the number dead."""

    model_config = ConfigDict(extra="ignore")

    error: str | None = None
    message: str | None = None


class GatewayReceipt(BaseModel):
    """POST /hooks/sms/{provider}/receipts: what became of one message."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=128)
    status: Literal["delivered", "failed"]
    error: str | None = Field(default=None, max_length=64)
    at: AwareDatetime | None = None


class GatewayInbound(BaseModel):
    """POST /hooks/sms/{provider}/inbound: one message a customer sent."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str = Field(min_length=1, max_length=128)
    from_: str = Field(alias="from", pattern=_E164)
    to: str = Field(max_length=32)
    text: str = Field(max_length=10_000)
    at: AwareDatetime | None = None


_Receipts = TypeAdapter(Annotated[list[GatewayReceipt], Field(max_length=MAX_ITEMS_PER_WEBHOOK)] | GatewayReceipt)
_Inbound = TypeAdapter(Annotated[list[GatewayInbound], Field(max_length=MAX_ITEMS_PER_WEBHOOK)] | GatewayInbound)


class GenericSmsProvider:
    """A gateway speaking our protocol: Bearer token, `Idempotency-Key`, JSON both ways, and
    webhooks signed in the Standard Webhooks form with `webhook_secret`."""

    kind = "generic"
    idempotent = True

    def __init__(
        self,
        settings: GenericSmsSettings,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = settings.name
        self.rate_per_second = settings.rate_per_second
        self.concurrency = settings.concurrency
        self._settings = settings
        self._client = open_client(timeout=timeout, transport=transport, concurrency=settings.concurrency)

    def send(self, outgoing: Outgoing) -> str:
        try:
            message = GatewayMessage(
                to=outgoing.to,
                text=outgoing.text,
                sender=self._settings.sender or None,
                reference=outgoing.reference,
                callback_url=outgoing.callback_url,
            )
        except ValidationError:
            raise PermanentProviderError(f"{self.name}: the number is not in E.164 form", code="not_e164") from None
        request = self._client.build_request(
            "POST",
            f"{self._settings.url}/messages",
            content=message.model_dump_json().encode(),
            headers={
                "Authorization": f"Bearer {self._settings.token.get_secret_value()}",
                "Idempotency-Key": outgoing.reference,
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        response = exchange(self._client, request, provider=self.name)
        return self._read_answer(response)

    def _read_answer(self, response: httpx.Response) -> str:
        status = response.status_code
        if 200 <= status < 300:
            try:
                return GatewayAccepted.model_validate(json_object(response) or {}).id
            except ValidationError:
                # The gateway took the message but did not say under which id: receipts cannot be
                # matched and sending again through another gateway could double it.
                raise UnknownOutcomeError(
                    f"{self.name}: answered {status} without a message id", code="no_id"
                ) from None
        if retryable_status(status):
            raise transient_answer(response, provider=self.name)
        refusal = _refusal(response)
        if refusal == "invalid_number":
            raise AddressGoneError(
                f"{self.name}: the gateway says the number is invalid", code=refusal, status="invalid"
            )
        code = refusal if refusal is not None else f"http_{status}"
        raise PermanentProviderError(f"{self.name}: the gateway refused the message ({status} {code})", code=code)

    def read_receipts(self, request: WebhookRequest, *, now: dt.datetime) -> list[ReceiptReport]:
        self._verify(request, now=now)
        try:
            parsed = _Receipts.validate_json(request.body)
        except ValidationError as exc:
            raise WebhookFormatError(
                f"the receipts do not read as the gateway protocol: {format_problem(exc)}"
            ) from None
        items = parsed if isinstance(parsed, list) else [parsed]
        return [ReceiptReport(provider_id=item.id, status=item.status, error=item.error, at=item.at) for item in items]

    def read_inbound(self, request: WebhookRequest, *, now: dt.datetime) -> list[InboundSms]:
        self._verify(request, now=now)
        try:
            parsed = _Inbound.validate_json(request.body)
        except ValidationError as exc:
            raise WebhookFormatError(
                f"the inbound messages do not read as the gateway protocol: {format_problem(exc)}"
            ) from None
        items = parsed if isinstance(parsed, list) else [parsed]
        return [
            InboundSms(provider_id=item.id, sender=item.from_, to=item.to, text=item.text, at=item.at) for item in items
        ]

    def _verify(self, request: WebhookRequest, *, now: dt.datetime) -> None:
        secret = self._settings.webhook_secret
        if secret is None:
            # Without a shared secret nothing tells a gateway's webhook from anyone else's.
            raise WebhookSignatureError(f"{self.name} has no webhook_secret, so it accepts no webhooks")
        webhooks.verify(secret.get_secret_value(), request.headers, request.body, now=now)

    def answer(self) -> WebhookAnswer:
        return WebhookAnswer()

    def close(self) -> None:
        self._client.close()


def _refusal(response: httpx.Response) -> str | None:
    """The refusal's `error` word when it is a short code; anything else is not trusted as a code."""
    body = json_object(response)
    if body is None:
        return None
    try:
        error = GatewayRefusal.model_validate(body).error
    except ValidationError:
        return None
    if error is None or not _CODE.match(error):
        return None
    return error
