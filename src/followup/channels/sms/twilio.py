"""The `twilio` SMS provider: Twilio's Messages API and its signed webhooks.

Sending is one form POST to `/2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP basic
auth. Twilio has no idempotency key, so this provider is not `idempotent`: a send that timed out
is never repeated blindly.

Webhooks (status callbacks and inbound messages) are signed with the account's auth token:
`X-Twilio-Signature` is base64(HMAC-SHA1(auth token, URL + every POST parameter, sorted by name,
as name + value)). The URL must be exactly the one Twilio called, query string included, which is
why `WebhookRequest.url` is the full public URL. The signature carries no timestamp, so a replayed
callback verifies; it is harmless because receipts and inbound messages are recorded once per
MessageSid.

https://www.twilio.com/docs/messaging/api/message-resource
https://www.twilio.com/docs/usage/webhooks/webhooks-security
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from urllib.parse import parse_qsl

import httpx

from followup.channels.providers import (
    AddressGoneError,
    InboundSms,
    Outgoing,
    PermanentProviderError,
    ReceiptReport,
    UnknownOutcomeError,
    WebhookAnswer,
    WebhookFormatError,
    WebhookRequest,
    WebhookSignatureError,
)
from followup.channels.sms.generic import (
    DEFAULT_TIMEOUT,
    exchange,
    json_object,
    open_client,
    retryable_status,
    transient_answer,
)
from followup.config import TwilioSmsSettings

# Twilio's error codes that say the number itself cannot receive SMS.
_INVALID_NUMBER = frozenset({21211, 21614})  # invalid To; To is not a mobile number
_UNSUBSCRIBED = 21610  # the recipient replied STOP: Twilio refuses every message to them
_FAILED = frozenset({"undelivered", "failed"})
_TWIML_EMPTY = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """The X-Twilio-Signature Twilio computes for a POST of `params` to `url`."""
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def check_signature(auth_token: str, request: WebhookRequest) -> list[tuple[str, str]]:
    """The request's form parameters, once its X-Twilio-Signature is found right."""
    given = request.headers.get("x-twilio-signature")
    if not given:
        raise WebhookSignatureError("X-Twilio-Signature is missing")
    try:
        params = parse_qsl(request.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise WebhookSignatureError("the body is not a UTF-8 form, so its signature cannot be checked") from None
    expected = signature(auth_token, request.url, params)
    if not hmac.compare_digest(given.encode("ascii", "replace"), expected.encode("ascii")):
        raise WebhookSignatureError("X-Twilio-Signature does not match the URL and the parameters")
    return params


class TwilioSmsProvider:
    kind = "twilio"
    idempotent = False

    def __init__(
        self,
        settings: TwilioSmsSettings,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = settings.name
        self.rate_per_second = settings.rate_per_second
        self.concurrency = settings.concurrency
        self._settings = settings
        auth = httpx.BasicAuth(settings.account_sid, settings.auth_token.get_secret_value())
        self._client = open_client(timeout=timeout, transport=transport, concurrency=settings.concurrency, auth=auth)

    def send(self, outgoing: Outgoing) -> str:
        fields = {"To": outgoing.to, "From": self._settings.from_, "Body": outgoing.text}
        if outgoing.callback_url:
            fields["StatusCallback"] = outgoing.callback_url
        request = self._client.build_request(
            "POST",
            f"{self._settings.url}/2010-04-01/Accounts/{self._settings.account_sid}/Messages.json",
            data=fields,
            headers={"Accept": "application/json"},
        )
        response = exchange(self._client, request, provider=self.name)
        return self._read_answer(response)

    def _read_answer(self, response: httpx.Response) -> str:
        status = response.status_code
        body = json_object(response) or {}
        if 200 <= status < 300:
            sid = body.get("sid")
            if not isinstance(sid, str) or not sid:
                raise UnknownOutcomeError(f"{self.name}: answered {status} without a message sid", code="no_id")
            return sid
        if retryable_status(status):
            raise transient_answer(response, provider=self.name)
        code = body.get("code")
        if isinstance(code, int) and code in _INVALID_NUMBER:
            raise AddressGoneError(
                f"{self.name}: Twilio says the number cannot receive SMS (error {code})",
                code=f"twilio_{code}",
                status="invalid",
            )
        if code == _UNSUBSCRIBED:
            raise PermanentProviderError(
                f"{self.name}: the recipient has unsubscribed from this sender (replied STOP)", code="twilio_21610"
            )
        word = f"twilio_{code}" if isinstance(code, int) else f"http_{status}"
        raise PermanentProviderError(f"{self.name}: Twilio refused the message ({status} {word})", code=word)

    def read_receipts(self, request: WebhookRequest, *, now: dt.datetime) -> list[ReceiptReport]:
        """A status callback: `delivered` and `undelivered`/`failed` are reports; `queued`, `sent`
        and the other steps on the way are not an outcome yet and give no report."""
        fields = dict(check_signature(self._settings.auth_token.get_secret_value(), request))
        sid = fields.get("MessageSid")
        status = fields.get("MessageStatus")
        if not sid or not status:
            raise WebhookFormatError("a status callback needs MessageSid and MessageStatus")
        if status == "delivered":
            return [ReceiptReport(provider_id=sid, status="delivered", error=None, at=None)]
        if status in _FAILED:
            error_code = fields.get("ErrorCode")
            error = f"twilio_{error_code}" if error_code else status
            return [ReceiptReport(provider_id=sid, status="failed", error=error[:64], at=None)]
        return []

    def read_inbound(self, request: WebhookRequest, *, now: dt.datetime) -> list[InboundSms]:
        fields = dict(check_signature(self._settings.auth_token.get_secret_value(), request))
        sid, sender, to = fields.get("MessageSid"), fields.get("From"), fields.get("To")
        if not sid or not sender or to is None or "Body" not in fields:
            raise WebhookFormatError("an inbound message needs MessageSid, From, To and Body")
        return [InboundSms(provider_id=sid, sender=sender, to=to, text=fields["Body"], at=None)]

    def answer(self) -> WebhookAnswer:
        """An empty TwiML document: Twilio replies nothing to the customer on our behalf."""
        return WebhookAnswer(media_type="text/xml", body=_TWIML_EMPTY)

    def close(self) -> None:
        self._client.close()
