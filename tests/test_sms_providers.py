"""The SMS providers against local servers that speak their protocols, and their webhooks.

Every provider is checked by a real server on 127.0.0.1 (tests/sms_servers.py) that verifies the
request with the provider's published algorithm; every webhook reader is given a valid, a missing,
a wrong and (where the scheme has a time) a too-old signature, and the known-answer vectors the
providers publish.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr

from followup.channels.providers import (
    AddressGoneError,
    InboundSms,
    Outgoing,
    PermanentProviderError,
    ProviderError,
    ReceiptReport,
    TransientProviderError,
    UnknownOutcomeError,
    WebhookFormatError,
    WebhookRequest,
    WebhookSignatureError,
)
from followup.channels.sms import aliyun, twilio, webhooks
from followup.channels.sms.aliyun import AliyunSmsProvider
from followup.channels.sms.generic import GenericSmsProvider
from followup.channels.sms.twilio import TwilioSmsProvider
from followup.config import AliyunSmsSettings, GenericSmsSettings, TwilioSmsSettings
from followup.kernel.time import ManualClock
from tests.conftest import free_port
from tests.sms_servers import AliyunApi, Answer, GenericGateway, TwilioApi, aliyun_signature

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
SECRET = "whsec_" + base64.b64encode(b"a shared secret of 32 bytes!!!!!").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"somebody else's secret, 32 bytes").decode()
NUMBER = "+8613812341234"
TEXT = "【好钱包】您上次的转账顺利吗？回复0-10分\nhttps://fu.example.cn/s/Ab3\n回T退订"
GATEWAY_TOKEN = "gw-token-7fQ2"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "twilio-auth-token-9Zx"
ACCESS_KEY_ID = "LTAI5tTestKeyId"
ACCESS_KEY_SECRET = "aliyun-access-key-secret-Qw3"
# A read timeout short enough for a test; the servers wait longer before answering.
SHORT = httpx.Timeout(connect=1.0, read=0.3, write=1.0, pool=1.0)


def outgoing(**overrides: str | None) -> Outgoing:
    values: dict[str, str | None] = {
        "to": NUMBER,
        "text": TEXT,
        "reference": "msg-42.1",
        "callback_url": "https://followup.example.cn/hooks/sms/gw/receipts",
    }
    values.update(overrides)
    return Outgoing(**values)  # type: ignore[arg-type]


def assert_private(error: ProviderError | Exception) -> None:
    """No number, text or secret in what gets logged."""
    message = str(error)
    for private in (NUMBER, NUMBER[3:], "转账", GATEWAY_TOKEN, AUTH_TOKEN, ACCESS_KEY_SECRET, SECRET):
        assert private not in message


def signed(body: bytes, *, secret: str = SECRET, msg_id: str = "msg_1", at: dt.datetime = NOW) -> dict[str, str]:
    timestamp = int(at.timestamp())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": webhooks.sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def hook(
    body: bytes, headers: dict[str, str], *, url: str = "https://followup.example.cn/hooks/sms/gw/receipts"
) -> WebhookRequest:
    return WebhookRequest(method="POST", url=url, headers=headers, body=body)


# Standard Webhooks


# The vector of the Standard Webhooks reference libraries (github.com/standard-webhooks).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def vector_headers(**overrides: str) -> dict[str, str]:
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    headers.update(overrides)
    return {name: value for name, value in headers.items() if value}


VECTOR_NOW = dt.datetime.fromtimestamp(VECTOR_TIMESTAMP + 30, tz=dt.UTC)


def test_sign_reproduces_the_standard_webhooks_vector() -> None:
    assert webhooks.sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_verify_accepts_the_vector_and_returns_the_webhook_id() -> None:
    assert webhooks.verify(VECTOR_SECRET, vector_headers(), VECTOR_BODY, now=VECTOR_NOW) == VECTOR_ID


def test_verify_accepts_any_matching_signature_of_the_list() -> None:
    """While a secret is rotated the sender signs with both; unknown versions are skipped."""
    headers = vector_headers(**{"webhook-signature": f"v1a,bm9wZQ== v1,bm9wZQ== {VECTOR_SIGNATURE}"})

    assert webhooks.verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_NOW) == VECTOR_ID


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_verify_refuses_a_missing_header(missing: str) -> None:
    with pytest.raises(WebhookSignatureError, match="required"):
        webhooks.verify(VECTOR_SECRET, vector_headers(**{missing: ""}), VECTOR_BODY, now=VECTOR_NOW)


@pytest.mark.parametrize(
    ("secret", "headers", "body"),
    [
        pytest.param(OTHER_SECRET, vector_headers(), VECTOR_BODY, id="other secret"),
        pytest.param(VECTOR_SECRET, vector_headers(), b'{"test": 2432232315}', id="changed body"),
        pytest.param(VECTOR_SECRET, vector_headers(**{"webhook-id": "msg_other"}), VECTOR_BODY, id="changed id"),
        pytest.param(
            VECTOR_SECRET, vector_headers(**{"webhook-signature": VECTOR_SIGNATURE[3:]}), VECTOR_BODY, id="no version"
        ),
        pytest.param(
            VECTOR_SECRET,
            vector_headers(**{"webhook-signature": "v2," + VECTOR_SIGNATURE[3:]}),
            VECTOR_BODY,
            id="unknown version",
        ),
    ],
)
def test_verify_refuses_a_wrong_signature(secret: str, headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(WebhookSignatureError, match="no webhook-signature matches"):
        webhooks.verify(secret, headers, body, now=VECTOR_NOW)


@pytest.mark.parametrize("seconds", [301, -301, 86_400])
def test_verify_refuses_a_timestamp_more_than_five_minutes_away(seconds: int) -> None:
    now = dt.datetime.fromtimestamp(VECTOR_TIMESTAMP + seconds, tz=dt.UTC)

    with pytest.raises(WebhookSignatureError, match="300 seconds"):
        webhooks.verify(VECTOR_SECRET, vector_headers(), VECTOR_BODY, now=now)


def test_verify_accepts_a_timestamp_exactly_five_minutes_old() -> None:
    now = dt.datetime.fromtimestamp(VECTOR_TIMESTAMP + 300, tz=dt.UTC)

    assert webhooks.verify(VECTOR_SECRET, vector_headers(), VECTOR_BODY, now=now) == VECTOR_ID


def test_verify_refuses_a_timestamp_that_is_not_a_number() -> None:
    with pytest.raises(WebhookSignatureError, match="number of seconds"):
        webhooks.verify(
            VECTOR_SECRET, vector_headers(**{"webhook-timestamp": "yesterday"}), VECTOR_BODY, now=VECTOR_NOW
        )


# generic


@pytest.fixture
def gateway() -> Iterator[GenericGateway]:
    server = GenericGateway(token=GATEWAY_TOKEN)
    yield server
    server.close()


def generic_settings(url: str, **overrides: object) -> GenericSmsSettings:
    values: dict[str, object] = {
        "name": "gw",
        "kind": "generic",
        "url": url,
        "token": SecretStr(GATEWAY_TOKEN),
        "sender": "WALLET",
        "webhook_secret": SecretStr(SECRET),
    }
    values.update(overrides)
    return GenericSmsSettings.model_validate(values)


@pytest.fixture
def generic(gateway: GenericGateway) -> Iterator[GenericSmsProvider]:
    provider = GenericSmsProvider(generic_settings(gateway.url), timeout=SHORT)
    yield provider
    provider.close()


def test_generic_posts_the_message_with_bearer_token_and_idempotency_key(
    gateway: GenericGateway, generic: GenericSmsProvider
) -> None:
    provider_id = generic.send(outgoing())

    assert provider_id == "gw-1"
    assert gateway.refused == []
    [request] = gateway.received
    assert request.headers["idempotency-key"] == "msg-42.1"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "to": NUMBER,
        "text": TEXT,
        "sender": "WALLET",
        "reference": "msg-42.1",
        "callback_url": "https://followup.example.cn/hooks/sms/gw/receipts",
    }
    assert (generic.kind, generic.name, generic.idempotent) == ("generic", "gw", True)


def test_generic_send_repeated_with_the_same_reference_reaches_the_handset_once(
    gateway: GenericGateway, generic: GenericSmsProvider
) -> None:
    first = generic.send(outgoing())
    second = generic.send(outgoing())

    assert first == second == "gw-1"
    assert len(gateway.received) == 2
    assert len(gateway.sent) == 1


def test_generic_without_a_sender_sends_null(gateway: GenericGateway) -> None:
    provider = GenericSmsProvider(generic_settings(gateway.url, sender=""))
    try:
        provider.send(outgoing(callback_url=None))
    finally:
        provider.close()

    body = gateway.received[0].json()
    assert isinstance(body, dict)
    assert (body["sender"], body["callback_url"]) == (None, None)


def test_generic_with_a_wrong_token_is_refused_for_good(gateway: GenericGateway) -> None:
    provider = GenericSmsProvider(generic_settings(gateway.url, token=SecretStr("not-the-token")))
    try:
        with pytest.raises(PermanentProviderError) as caught:
            provider.send(outgoing())
    finally:
        provider.close()

    assert caught.value.code == "unauthorized"
    assert not isinstance(caught.value, AddressGoneError)
    assert gateway.sent == []


@pytest.mark.parametrize(("status", "retry_after"), [(503, "30"), (429, "7"), (500, None)])
def test_generic_busy_gateway_is_transient_with_its_retry_after(
    gateway: GenericGateway, generic: GenericSmsProvider, status: int, retry_after: str | None
) -> None:
    gateway.script(Answer(status, {"error": "busy"}, headers={"Retry-After": retry_after} if retry_after else {}))

    with pytest.raises(TransientProviderError) as caught:
        generic.send(outgoing())

    assert caught.value.code == f"http_{status}"
    assert caught.value.retry_after == (float(retry_after) if retry_after else None)
    assert gateway.sent == []
    assert_private(caught.value)


def test_generic_refusal_is_permanent_with_the_gateways_word(
    gateway: GenericGateway, generic: GenericSmsProvider
) -> None:
    gateway.script(Answer(400, {"error": "text_too_long", "message": "at most 10 segments"}))

    with pytest.raises(PermanentProviderError) as caught:
        generic.send(outgoing())

    assert caught.value.code == "text_too_long"
    assert not isinstance(caught.value, AddressGoneError)


def test_generic_refusal_without_a_body_is_named_by_its_status(
    gateway: GenericGateway, generic: GenericSmsProvider
) -> None:
    gateway.script(Answer(422, b"<html>nope</html>"))

    with pytest.raises(PermanentProviderError) as caught:
        generic.send(outgoing())

    assert caught.value.code == "http_422"


def test_generic_invalid_number_marks_the_address_gone(gateway: GenericGateway, generic: GenericSmsProvider) -> None:
    gateway.script(Answer(400, {"error": "invalid_number"}))

    with pytest.raises(AddressGoneError) as caught:
        generic.send(outgoing())

    assert (caught.value.code, caught.value.status) == ("invalid_number", "invalid")
    assert_private(caught.value)


def test_generic_read_timeout_is_an_unknown_outcome(gateway: GenericGateway, generic: GenericSmsProvider) -> None:
    gateway.script(Answer(201, {"id": "late"}, delay=1.0))

    with pytest.raises(UnknownOutcomeError) as caught:
        generic.send(outgoing())

    assert caught.value.code == "timeout"
    assert_private(caught.value)


def test_generic_connection_dropped_after_sending_is_an_unknown_outcome(
    gateway: GenericGateway, generic: GenericSmsProvider
) -> None:
    gateway.script(Answer(drop=True))

    with pytest.raises(UnknownOutcomeError) as caught:
        generic.send(outgoing())

    assert caught.value.code == "connection_lost"


def test_generic_accepted_without_an_id_is_an_unknown_outcome(
    gateway: GenericGateway, generic: GenericSmsProvider
) -> None:
    gateway.script(Answer(202, {"status": "queued"}))

    with pytest.raises(UnknownOutcomeError) as caught:
        generic.send(outgoing())

    assert caught.value.code == "no_id"


def test_generic_refused_connection_is_transient() -> None:
    provider = GenericSmsProvider(generic_settings(f"http://127.0.0.1:{free_port()}"), timeout=SHORT)
    try:
        with pytest.raises(TransientProviderError) as caught:
            provider.send(outgoing())
    finally:
        provider.close()

    assert caught.value.code == "connect_error"
    assert "127.0.0.1" not in str(caught.value)


def test_generic_number_not_in_e164_is_refused_before_sending(
    gateway: GenericGateway, generic: GenericSmsProvider
) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        generic.send(outgoing(to="13812341234"))

    assert caught.value.code == "not_e164"
    assert gateway.received == []


RECEIPT = {"id": "gw-1", "status": "delivered", "error": None, "at": "2026-11-23T10:00:05+08:00"}
INBOUND = {"id": "in-7", "from": NUMBER, "to": "+8610690000", "text": "9分，很好用", "at": "2026-11-23T02:01:00Z"}


def test_generic_reads_one_signed_receipt(generic: GenericSmsProvider) -> None:
    body = json.dumps(RECEIPT).encode()

    reports = generic.read_receipts(hook(body, signed(body)), now=NOW)

    assert reports == [
        ReceiptReport(
            provider_id="gw-1", status="delivered", error=None, at=dt.datetime(2026, 11, 23, 2, 0, 5, tzinfo=dt.UTC)
        )
    ]


def test_generic_reads_a_list_of_receipts(generic: GenericSmsProvider) -> None:
    failed = {"id": "gw-2", "status": "failed", "error": "blocked_by_carrier", "at": None}
    body = json.dumps([RECEIPT, failed]).encode()

    reports = generic.read_receipts(hook(body, signed(body)), now=NOW)

    assert [(r.provider_id, r.status, r.error) for r in reports] == [
        ("gw-1", "delivered", None),
        ("gw-2", "failed", "blocked_by_carrier"),
    ]
    assert reports[1].at is None


def test_generic_reads_signed_inbound_messages(generic: GenericSmsProvider) -> None:
    body = json.dumps([INBOUND]).encode()

    messages = generic.read_inbound(hook(body, signed(body)), now=NOW)

    assert messages == [
        InboundSms(
            provider_id="in-7",
            sender=NUMBER,
            to="+8610690000",
            text="9分，很好用",
            at=dt.datetime(2026, 11, 23, 2, 1, tzinfo=dt.UTC),
        )
    ]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"content-type": "application/json"}, id="unsigned"),
        pytest.param(signed(b"{}"), id="signature of another body"),
        pytest.param("other secret", id="other secret"),
        pytest.param("too old", id="too old"),
    ],
)
def test_generic_refuses_webhooks_without_a_valid_signature(generic: GenericSmsProvider, headers: object) -> None:
    body = json.dumps(RECEIPT).encode()
    if headers == "other secret":
        headers = signed(body, secret=OTHER_SECRET)
    elif headers == "too old":
        headers = signed(body, at=NOW - dt.timedelta(minutes=6))
    assert isinstance(headers, dict)

    with pytest.raises(WebhookSignatureError):
        generic.read_receipts(hook(body, headers), now=NOW)
    with pytest.raises(WebhookSignatureError):
        generic.read_inbound(hook(body, headers), now=NOW)


def test_generic_without_a_webhook_secret_refuses_every_webhook(gateway: GenericGateway) -> None:
    provider = GenericSmsProvider(generic_settings(gateway.url, webhook_secret=None))
    body = json.dumps(RECEIPT).encode()
    try:
        with pytest.raises(WebhookSignatureError, match="no webhook_secret"):
            provider.read_receipts(hook(body, signed(body)), now=NOW)
        with pytest.raises(WebhookSignatureError, match="no webhook_secret"):
            provider.read_inbound(hook(body, signed(body)), now=NOW)
    finally:
        provider.close()


@pytest.mark.parametrize(
    "payload",
    [
        {"id": "gw-1", "status": "sent"},
        {"status": "delivered"},
        {"id": "gw-1", "status": "delivered", "at": "2026-11-23 10:00:05"},
        "delivered",
    ],
)
def test_generic_signed_receipts_in_another_shape_are_a_format_error(
    generic: GenericSmsProvider, payload: object
) -> None:
    body = json.dumps(payload).encode()

    with pytest.raises(WebhookFormatError):
        generic.read_receipts(hook(body, signed(body)), now=NOW)


def test_generic_format_error_does_not_quote_the_message(generic: GenericSmsProvider) -> None:
    body = json.dumps({**INBOUND, "from": "13812341234"}).encode()

    with pytest.raises(WebhookFormatError) as caught:
        generic.read_inbound(hook(body, signed(body)), now=NOW)

    assert "from" in str(caught.value)
    assert_private(caught.value)


# twilio


@pytest.fixture
def twilio_api() -> Iterator[TwilioApi]:
    server = TwilioApi(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    yield server
    server.close()


def twilio_settings(url: str = "https://api.twilio.com", **overrides: object) -> TwilioSmsSettings:
    values: dict[str, object] = {
        "name": "tw",
        "kind": "twilio",
        "url": url,
        "account_sid": ACCOUNT_SID,
        "auth_token": SecretStr(AUTH_TOKEN),
        "from": "+15005550006",
    }
    values.update(overrides)
    return TwilioSmsSettings.model_validate(values)


@pytest.fixture
def twilio_provider(twilio_api: TwilioApi) -> Iterator[TwilioSmsProvider]:
    provider = TwilioSmsProvider(twilio_settings(twilio_api.url), timeout=SHORT)
    yield provider
    provider.close()


def test_twilio_posts_the_form_with_basic_auth(twilio_api: TwilioApi, twilio_provider: TwilioSmsProvider) -> None:
    sid = twilio_provider.send(outgoing())

    assert sid == "SM" + "0" * 31 + "1"
    assert twilio_api.refused == []
    [request] = twilio_api.received
    assert request.form() == {
        "To": NUMBER,
        "From": "+15005550006",
        "Body": TEXT,
        "StatusCallback": "https://followup.example.cn/hooks/sms/gw/receipts",
    }
    assert (twilio_provider.kind, twilio_provider.idempotent) == ("twilio", False)


def test_twilio_without_a_callback_url_sends_no_status_callback(
    twilio_api: TwilioApi, twilio_provider: TwilioSmsProvider
) -> None:
    twilio_provider.send(outgoing(callback_url=None))

    assert "StatusCallback" not in twilio_api.received[0].form()


def test_twilio_with_a_wrong_auth_token_is_refused_for_good(twilio_api: TwilioApi) -> None:
    provider = TwilioSmsProvider(twilio_settings(twilio_api.url, auth_token=SecretStr("wrong")))
    try:
        with pytest.raises(PermanentProviderError) as caught:
            provider.send(outgoing())
    finally:
        provider.close()

    assert caught.value.code == "twilio_20003"
    assert len(twilio_api.refused) == 1


@pytest.mark.parametrize("code", [21211, 21614])
def test_twilio_invalid_or_landline_number_marks_the_address_gone(
    twilio_api: TwilioApi, twilio_provider: TwilioSmsProvider, code: int
) -> None:
    twilio_api.script(Answer(400, {"code": code, "message": f"The 'To' number {NUMBER} is not valid", "status": 400}))

    with pytest.raises(AddressGoneError) as caught:
        twilio_provider.send(outgoing())

    assert (caught.value.code, caught.value.status) == (f"twilio_{code}", "invalid")
    assert_private(caught.value)


def test_twilio_unsubscribed_recipient_is_permanent_and_not_an_address_gone(
    twilio_api: TwilioApi, twilio_provider: TwilioSmsProvider
) -> None:
    twilio_api.script(
        Answer(400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400})
    )

    with pytest.raises(PermanentProviderError) as caught:
        twilio_provider.send(outgoing())

    assert caught.value.code == "twilio_21610"
    assert not isinstance(caught.value, AddressGoneError)


def test_twilio_other_refusal_is_permanent_with_its_code(
    twilio_api: TwilioApi, twilio_provider: TwilioSmsProvider
) -> None:
    twilio_api.script(Answer(400, {"code": 21606, "message": "The From phone number is not valid", "status": 400}))

    with pytest.raises(PermanentProviderError) as caught:
        twilio_provider.send(outgoing())

    assert caught.value.code == "twilio_21606"
    assert not isinstance(caught.value, AddressGoneError)


@pytest.mark.parametrize(("status", "retry_after"), [(429, "12"), (503, "60"), (500, None)])
def test_twilio_busy_is_transient(
    twilio_api: TwilioApi, twilio_provider: TwilioSmsProvider, status: int, retry_after: str | None
) -> None:
    body = {"code": 20429, "message": "Too Many Requests", "status": status}
    twilio_api.script(Answer(status, body, headers={"Retry-After": retry_after} if retry_after else {}))

    with pytest.raises(TransientProviderError) as caught:
        twilio_provider.send(outgoing())

    assert caught.value.code == f"http_{status}"
    assert caught.value.retry_after == (float(retry_after) if retry_after else None)


def test_twilio_read_timeout_is_an_unknown_outcome(twilio_api: TwilioApi, twilio_provider: TwilioSmsProvider) -> None:
    twilio_api.script(Answer(201, {"sid": "SMlate"}, delay=1.0))

    with pytest.raises(UnknownOutcomeError) as caught:
        twilio_provider.send(outgoing())

    assert caught.value.code == "timeout"


# The worked example of https://www.twilio.com/docs/usage/webhooks/webhooks-security.
TWILIO_DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_DOC_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675310"),
    ("Digits", "1234"),
    ("From", "+14158675310"),
    ("To", "+18005551212"),
]


def test_twilio_signature_reproduces_twilios_documented_example() -> None:
    assert twilio.signature("12345", TWILIO_DOC_URL, TWILIO_DOC_PARAMS) == "GvWf1cFY/Q7PnoempGyD5oXAezc="


def test_twilio_signature_does_not_depend_on_the_order_of_the_form() -> None:
    assert twilio.signature("12345", TWILIO_DOC_URL, TWILIO_DOC_PARAMS[::-1]) == "GvWf1cFY/Q7PnoempGyD5oXAezc="


HOOK_URL = "https://followup.example.cn/hooks/sms/tw/receipts"


def twilio_hook(params: list[tuple[str, str]], *, token: str = AUTH_TOKEN, url: str = HOOK_URL) -> WebhookRequest:
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": twilio.signature(token, url, params),
    }
    return WebhookRequest(method="POST", url=url, headers=headers, body=urlencode(params).encode())


def status_callback(status: str, **extra: str) -> list[tuple[str, str]]:
    return [
        ("AccountSid", ACCOUNT_SID),
        ("MessageSid", "SM0123"),
        ("MessageStatus", status),
        ("SmsStatus", status),
        ("To", NUMBER),
        *extra.items(),
    ]


def test_twilio_reads_a_delivered_status_callback() -> None:
    provider = TwilioSmsProvider(twilio_settings())
    try:
        reports = provider.read_receipts(twilio_hook(status_callback("delivered")), now=NOW)
    finally:
        provider.close()

    assert reports == [ReceiptReport(provider_id="SM0123", status="delivered", error=None, at=None)]


@pytest.mark.parametrize(
    ("status", "extra", "error"), [("undelivered", {"ErrorCode": "30003"}, "twilio_30003"), ("failed", {}, "failed")]
)
def test_twilio_reads_undelivered_and_failed_as_failed(status: str, extra: dict[str, str], error: str) -> None:
    provider = TwilioSmsProvider(twilio_settings())
    try:
        reports = provider.read_receipts(twilio_hook(status_callback(status, **extra)), now=NOW)
    finally:
        provider.close()

    assert reports == [ReceiptReport(provider_id="SM0123", status="failed", error=error, at=None)]


@pytest.mark.parametrize("status", ["queued", "sending", "sent", "accepted"])
def test_twilio_steps_on_the_way_give_no_report(status: str) -> None:
    provider = TwilioSmsProvider(twilio_settings())
    try:
        assert provider.read_receipts(twilio_hook(status_callback(status)), now=NOW) == []
    finally:
        provider.close()


def test_twilio_reads_an_inbound_message_with_a_query_string_in_the_url() -> None:
    url = "https://followup.example.cn/hooks/sms/tw/inbound?site=cn"
    params = [("MessageSid", "SM77"), ("From", NUMBER), ("To", "+15005550006"), ("Body", "STOP"), ("NumMedia", "0")]
    provider = TwilioSmsProvider(twilio_settings())
    try:
        messages = provider.read_inbound(twilio_hook(params, url=url), now=NOW)
    finally:
        provider.close()

    assert messages == [InboundSms(provider_id="SM77", sender=NUMBER, to="+15005550006", text="STOP", at=None)]


def _without_signature(request: WebhookRequest) -> WebhookRequest:
    return WebhookRequest(
        request.method, request.url, {"content-type": "application/x-www-form-urlencoded"}, request.body
    )


def _other_url(request: WebhookRequest) -> WebhookRequest:
    return WebhookRequest(request.method, request.url.replace("https", "http"), request.headers, request.body)


def _tampered(request: WebhookRequest) -> WebhookRequest:
    return WebhookRequest(request.method, request.url, request.headers, request.body.replace(b"delivered", b"failed"))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_without_signature, id="missing"),
        pytest.param(lambda r: twilio_hook(status_callback("delivered"), token="another-token"), id="other token"),
        pytest.param(_other_url, id="other url"),
        pytest.param(_tampered, id="tampered parameter"),
    ],
)
def test_twilio_refuses_a_missing_or_wrong_signature(make: object) -> None:
    request = make(twilio_hook(status_callback("delivered")))  # type: ignore[operator]
    provider = TwilioSmsProvider(twilio_settings())
    try:
        with pytest.raises(WebhookSignatureError):
            provider.read_receipts(request, now=NOW)
        with pytest.raises(WebhookSignatureError):
            provider.read_inbound(request, now=NOW)
    finally:
        provider.close()


def test_twilio_signed_callback_without_a_sid_is_a_format_error() -> None:
    provider = TwilioSmsProvider(twilio_settings())
    try:
        with pytest.raises(WebhookFormatError):
            provider.read_receipts(twilio_hook([("MessageStatus", "delivered")]), now=NOW)
        with pytest.raises(WebhookFormatError):
            provider.read_inbound(twilio_hook([("MessageSid", "SM1"), ("From", NUMBER)]), now=NOW)
    finally:
        provider.close()


def test_twilio_answers_with_empty_twiml() -> None:
    provider = TwilioSmsProvider(twilio_settings())
    try:
        answer = provider.answer()
    finally:
        provider.close()

    assert answer.media_type == "text/xml"
    assert answer.body == b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


# aliyun


def test_aliyun_signature_reproduces_the_sendsms_documentation_example() -> None:
    """Alibaba Cloud's SendSms signing example (GET, AccessKey testId / testSecret)."""
    params = {
        "AccessKeyId": "testId",
        "Action": "SendSms",
        "Format": "XML",
        "OutId": "123",
        "PhoneNumbers": "15300000001",
        "RegionId": "cn-hangzhou",
        "SignName": "阿里云短信测试专用",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
        "SignatureVersion": "1.0",
        "TemplateCode": "SMS_71390007",
        "TemplateParam": '{"customer":"test"}',
        "Timestamp": "2017-07-12T02:42:19Z",
        "Version": "2017-05-25",
    }

    assert aliyun.rpc_signature(params, secret="testSecret", method="GET") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    assert aliyun_signature(params, "testSecret", "GET") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="  # the test server's own


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [("a b", "a%20b"), ("*", "%2A"), ("~-_.", "~-_."), ("/=&+", "%2F%3D%26%2B"), ("派", "%E6%B4%BE")],
)
def test_aliyun_percent_encoding_follows_alibaba_cloud(raw: str, encoded: str) -> None:
    assert aliyun.percent_encode(raw) == encoded


@pytest.fixture
def aliyun_api() -> Iterator[AliyunApi]:
    server = AliyunApi(access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET)
    yield server
    server.close()


def aliyun_settings(url: str = "https://dysmsapi.aliyuncs.com", **overrides: object) -> AliyunSmsSettings:
    values: dict[str, object] = {
        "name": "ali",
        "kind": "aliyun",
        "url": url,
        "access_key_id": ACCESS_KEY_ID,
        "access_key_secret": SecretStr(ACCESS_KEY_SECRET),
        "sign_name": "好钱包",
        "template_code": "SMS_480000001",
        "webhook_secret": SecretStr(SECRET),
    }
    values.update(overrides)
    return AliyunSmsSettings.model_validate(values)


@pytest.fixture
def aliyun_provider(aliyun_api: AliyunApi) -> Iterator[AliyunSmsProvider]:
    provider = AliyunSmsProvider(aliyun_settings(aliyun_api.url), clock=ManualClock(NOW), timeout=SHORT)
    yield provider
    provider.close()


def test_aliyun_posts_a_signed_sendsms_with_the_template_variables(
    aliyun_api: AliyunApi, aliyun_provider: AliyunSmsProvider
) -> None:
    biz_id = aliyun_provider.send(outgoing())

    assert biz_id == "900619700000001^0"
    assert aliyun_api.refused == []
    [request] = aliyun_api.received
    assert (request.method, request.path) == ("POST", "/")
    form = request.form()
    nonce = form.pop("SignatureNonce")
    form.pop("Signature")
    assert len(nonce) == 32
    assert form == {
        "AccessKeyId": ACCESS_KEY_ID,
        "Action": "SendSms",
        "Format": "JSON",
        "RegionId": "cn-hangzhou",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "Timestamp": "2026-11-23T02:00:00Z",
        "Version": "2017-05-25",
        "PhoneNumbers": "13812341234",
        "SignName": "好钱包",
        "TemplateCode": "SMS_480000001",
        "TemplateParam": '{"text":"您上次的转账顺利吗？回复0-10分","link":"https://fu.example.cn/s/Ab3"}',
        "OutId": "msg-42.1",
    }
    assert (aliyun_provider.kind, aliyun_provider.idempotent) == ("aliyun", False)


def test_aliyun_nonce_differs_on_every_request(aliyun_api: AliyunApi, aliyun_provider: AliyunSmsProvider) -> None:
    aliyun_provider.send(outgoing())
    aliyun_provider.send(outgoing())

    first, second = (request.form()["SignatureNonce"] for request in aliyun_api.received)
    assert first != second


def test_aliyun_international_number_is_sent_with_its_country_code_without_plus(
    aliyun_api: AliyunApi, aliyun_provider: AliyunSmsProvider
) -> None:
    aliyun_provider.send(outgoing(to="+85291234567", text="How was your transfer?\nReply STOP to opt out"))

    form = aliyun_api.received[0].form()
    assert form["PhoneNumbers"] == "85291234567"
    assert json.loads(form["TemplateParam"]) == {"text": "How was your transfer?"}


def test_aliyun_with_a_wrong_access_key_secret_is_refused_for_good(aliyun_api: AliyunApi) -> None:
    provider = AliyunSmsProvider(
        aliyun_settings(aliyun_api.url, access_key_secret=SecretStr("wrong")), clock=ManualClock(NOW)
    )
    try:
        with pytest.raises(PermanentProviderError) as caught:
            provider.send(outgoing())
    finally:
        provider.close()

    assert caught.value.code == "SignatureDoesNotMatch"
    assert len(aliyun_api.refused) == 1


def test_aliyun_illegal_number_marks_the_address_gone(
    aliyun_api: AliyunApi, aliyun_provider: AliyunSmsProvider
) -> None:
    aliyun_api.script(Answer(200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号 13812341234"}))

    with pytest.raises(AddressGoneError) as caught:
        aliyun_provider.send(outgoing())

    assert (caught.value.code, caught.value.status) == ("isv.MOBILE_NUMBER_ILLEGAL", "invalid")
    assert_private(caught.value)


@pytest.mark.parametrize("code", ["isv.BUSINESS_LIMIT_CONTROL", "Throttling.User", "Throttling"])
def test_aliyun_rate_limits_are_transient(aliyun_api: AliyunApi, aliyun_provider: AliyunSmsProvider, code: str) -> None:
    aliyun_api.script(Answer(200, {"Code": code, "Message": "触发分钟级流控Permits:1"}))

    with pytest.raises(TransientProviderError) as caught:
        aliyun_provider.send(outgoing())

    assert caught.value.code == code


def test_aliyun_other_code_is_permanent_with_the_code(
    aliyun_api: AliyunApi, aliyun_provider: AliyunSmsProvider
) -> None:
    aliyun_api.script(Answer(200, {"Code": "isv.TEMPLATE_MISSING_PARAMETERS", "Message": "模板缺少变量"}))

    with pytest.raises(PermanentProviderError) as caught:
        aliyun_provider.send(outgoing())

    assert caught.value.code == "isv.TEMPLATE_MISSING_PARAMETERS"
    assert not isinstance(caught.value, AddressGoneError)


@pytest.mark.parametrize("status", [500, 503])
def test_aliyun_server_error_is_transient(
    aliyun_api: AliyunApi, aliyun_provider: AliyunSmsProvider, status: int
) -> None:
    aliyun_api.script(Answer(status, {"Code": "ServiceUnavailable"}, headers={"Retry-After": "5"}))

    with pytest.raises(TransientProviderError) as caught:
        aliyun_provider.send(outgoing())

    assert (caught.value.code, caught.value.retry_after) == (f"http_{status}", 5.0)


def test_aliyun_read_timeout_is_an_unknown_outcome(aliyun_api: AliyunApi, aliyun_provider: AliyunSmsProvider) -> None:
    aliyun_api.script(Answer(200, {"Code": "OK", "BizId": "late"}, delay=1.0))

    with pytest.raises(UnknownOutcomeError) as caught:
        aliyun_provider.send(outgoing())

    assert caught.value.code == "timeout"


def test_aliyun_template_params_leave_the_sign_and_opt_out_to_the_template() -> None:
    message = outgoing(text="【好钱包】感谢使用扫码支付\nhttps://fu.example.cn/s/Zz9\n回T退订", link=None)

    assert aliyun.template_params(message) == {"text": "感谢使用扫码支付", "link": "https://fu.example.cn/s/Zz9"}


def test_aliyun_template_params_use_the_messages_link() -> None:
    message = outgoing(text="感谢使用\nhttps://a.cn/s/1\n回T退订", link="https://a.cn/s/1")

    assert aliyun.template_params(message) == {"text": "感谢使用", "link": "https://a.cn/s/1"}


PUSH_BASE = "https://followup.example.cn/hooks/sms/ali"
REPORT = {
    "phone_number": "13812341234",
    "send_time": "2026-11-23 10:00:00",
    "report_time": "2026-11-23 10:00:08",
    "success": True,
    "err_code": "DELIVERED",
    "err_msg": "用户接收成功",
    "sms_size": "1",
    "biz_id": "900619700000001^0",
    "out_id": "msg-42.1",
}
UP = {
    "phone_number": "13812341234",
    "send_time": "2026-11-23 10:03:00",
    "content": "9分，很好用",
    "sign_name": "好钱包",
    "dest_code": "1234",
    "sequence_id": 1234567890,
}


def push(kind: str, payload: object, *, token: str | None, headers: dict[str, str] | None = None) -> WebhookRequest:
    url = f"{PUSH_BASE}/{kind}" + (f"?token={token}" if token is not None else "")
    body = json.dumps(payload, ensure_ascii=False).encode()
    return WebhookRequest(method="POST", url=url, headers=headers or {"content-type": "application/json"}, body=body)


@pytest.fixture
def ali() -> Iterator[AliyunSmsProvider]:
    provider = AliyunSmsProvider(aliyun_settings(), clock=ManualClock(NOW))
    yield provider
    provider.close()


def test_aliyun_push_token_is_derived_from_the_secret_and_hides_it() -> None:
    token = aliyun.push_token(SECRET)

    assert token.startswith("ap1_")
    assert len(token) == 47
    assert token == aliyun.push_token(SECRET)
    assert token != aliyun.push_token(OTHER_SECRET)
    assert SECRET.removeprefix("whsec_") not in token


def test_aliyun_reads_delivery_reports_pushed_with_the_token(ali: AliyunSmsProvider) -> None:
    failed = {**REPORT, "biz_id": "900619700000002^0", "success": False, "err_code": "MK:0001", "report_time": None}

    reports = ali.read_receipts(push("receipts", [REPORT, failed], token=aliyun.push_token(SECRET)), now=NOW)

    assert reports == [
        ReceiptReport(
            provider_id="900619700000001^0",
            status="delivered",
            error=None,
            at=dt.datetime(2026, 11, 23, 2, 0, 8, tzinfo=dt.UTC),
        ),
        ReceiptReport(provider_id="900619700000002^0", status="failed", error="MK:0001", at=None),
    ]


def test_aliyun_reads_upstream_messages_as_e164_with_a_stable_id(ali: AliyunSmsProvider) -> None:
    request = push("inbound", [UP], token=aliyun.push_token(SECRET))

    [message] = ali.read_inbound(request, now=NOW)
    [replayed] = ali.read_inbound(request, now=NOW + dt.timedelta(minutes=10))

    assert (message.sender, message.to, message.text) == (NUMBER, "1234", "9分，很好用")
    assert message.at == dt.datetime(2026, 11, 23, 2, 3, tzinfo=dt.UTC)
    assert message.provider_id.startswith("smsup_")
    assert replayed.provider_id == message.provider_id
    assert "13812341234" not in message.provider_id


def test_aliyun_upstream_messages_that_differ_get_different_ids(ali: AliyunSmsProvider) -> None:
    token = aliyun.push_token(SECRET)
    second = {**UP, "sequence_id": "1234567891", "content": "10"}

    first_id, second_id = (m.provider_id for m in ali.read_inbound(push("inbound", [UP, second], token=token), now=NOW))

    assert first_id != second_id


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("ap1_" + "A" * 43, id="wrong"),
        pytest.param(aliyun.push_token(OTHER_SECRET), id="other secret"),
        pytest.param(SECRET, id="the secret itself"),
    ],
)
def test_aliyun_refuses_a_push_without_the_right_token(ali: AliyunSmsProvider, token: str | None) -> None:
    with pytest.raises(WebhookSignatureError):
        ali.read_receipts(push("receipts", [REPORT], token=token), now=NOW)
    with pytest.raises(WebhookSignatureError):
        ali.read_inbound(push("inbound", [UP], token=token), now=NOW)


def test_aliyun_refuses_a_push_with_the_token_twice(ali: AliyunSmsProvider) -> None:
    token = aliyun.push_token(SECRET)
    request = push("receipts", [REPORT], token=f"{token}&token=x")

    with pytest.raises(WebhookSignatureError):
        ali.read_receipts(request, now=NOW)


def test_aliyun_accepts_a_relay_signing_in_the_standard_webhooks_form(ali: AliyunSmsProvider) -> None:
    body = json.dumps([REPORT]).encode()
    request = WebhookRequest("POST", f"{PUSH_BASE}/receipts", signed(body), body)

    [report] = ali.read_receipts(request, now=NOW)

    assert report.provider_id == "900619700000001^0"


@pytest.mark.parametrize("when", [NOW - dt.timedelta(minutes=6), NOW])
def test_aliyun_relay_signature_alone_decides_even_with_a_right_token(
    ali: AliyunSmsProvider, when: dt.datetime
) -> None:
    body = json.dumps([REPORT]).encode()
    secret = SECRET if when != NOW else OTHER_SECRET  # too old, or signed with another secret
    url = f"{PUSH_BASE}/receipts?token={aliyun.push_token(SECRET)}"
    request = WebhookRequest("POST", url, signed(body, secret=secret, at=when), body)

    with pytest.raises(WebhookSignatureError):
        ali.read_receipts(request, now=NOW)


def test_aliyun_without_a_webhook_secret_refuses_every_push() -> None:
    provider = AliyunSmsProvider(aliyun_settings(webhook_secret=None), clock=ManualClock(NOW))
    try:
        with pytest.raises(WebhookSignatureError, match="no webhook_secret"):
            provider.read_receipts(push("receipts", [REPORT], token=aliyun.push_token(SECRET)), now=NOW)
    finally:
        provider.close()


@pytest.mark.parametrize("payload", [[{"success": True}], [{**REPORT, "biz_id": ""}], {"Code": "OK"}])
def test_aliyun_push_in_another_shape_is_a_format_error(ali: AliyunSmsProvider, payload: object) -> None:
    with pytest.raises(WebhookFormatError):
        ali.read_receipts(push("receipts", payload, token=aliyun.push_token(SECRET)), now=NOW)


def test_aliyun_upstream_number_that_is_not_a_number_is_a_format_error(ali: AliyunSmsProvider) -> None:
    with pytest.raises(WebhookFormatError) as caught:
        ali.read_inbound(
            push("inbound", [{**UP, "phone_number": "138-1234-1234"}], token=aliyun.push_token(SECRET)), now=NOW
        )

    assert_private(caught.value)


def test_aliyun_answers_what_the_push_expects(ali: AliyunSmsProvider) -> None:
    answer = ali.answer()

    assert answer.media_type == "application/json"
    assert json.loads(answer.body) == {"code": 0, "msg": "接收成功"}
