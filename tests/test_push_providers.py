"""The push providers against local servers that speak FCM's and APNs' protocols (tests/push_servers.py).

Real sockets, real JWTs: the servers verify every grant and provider token with the public key of
a throwaway key made here, and a ManualClock moves time for the token lifetimes.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from followup.channels.providers import (
    AddressGoneError,
    Outgoing,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
    UnknownOutcomeError,
)
from followup.channels.push import jwt
from followup.channels.push.apns import ApnsProvider
from followup.channels.push.fcm import FcmProvider
from followup.config import ApnsSettings, FcmSettings
from followup.kernel.time import ManualClock
from tests.conftest import START
from tests.push_servers import PROJECT_ID, Answer, ApnsServer, FcmMessage, FcmServer, apns_reason, fcm_error

QUICK = httpx.Timeout(2.0, connect=1.0)  # a broken test server fails the test fast
IMPATIENT = httpx.Timeout(0.3, connect=1.0)  # for the read timeouts

FCM_DEVICE = "dFcmTokenOfAnAndroidPhone:APA91b" + "Q" * 120
APNS_DEVICE = "a1b2c3d4" * 8
TEXT = "How was your transfer to Li Wei? 转账体验如何？"
CLIENT_EMAIL = "followup@demo-wallet.iam.gserviceaccount.com"
KEY_ID = "ABC123DEFG"
TEAM_ID = "DEF123GHIJ"
TOPIC = "com.example.wallet"
STALE_KEY = "-----BEGIN PRIVATE KEY-----\nbm90LWEta2V5LWF0LWFsbA==\n-----END PRIVATE KEY-----\n"


def invitation(to: str, **overrides: str) -> Outgoing:
    fields = {
        "to": to,
        "text": TEXT,
        "reference": "msg-42:invite",
        "title": "Wallet",
        "link": "https://wallet.example/s/abc",
        "collapse_id": "followup-42",
    }
    return Outgoing(**{**fields, **overrides})


def assert_private(error: ProviderError) -> None:
    """An error is logged and stored: it must not carry the address or the text."""
    for secret in (FCM_DEVICE, APNS_DEVICE, TEXT, "Li Wei"):
        assert secret not in str(error)
        assert secret not in error.code


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


# Keys and files.


@pytest.fixture(scope="module")
def service_account_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def apns_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def credentials_file(tmp_path: Path, service_account_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "service-account.json"
    account = {
        "type": "service_account",
        "project_id": PROJECT_ID,
        "private_key_id": "0123456789abcdef",
        "private_key": pem(service_account_key),
        "client_email": CLIENT_EMAIL,
        # Google's real endpoint: the settings' token_url must win, or the test server sees nothing.
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path.write_text(json.dumps(account))
    return path


@pytest.fixture
def key_file(tmp_path: Path, apns_key: ec.EllipticCurvePrivateKey) -> Path:
    path = tmp_path / f"AuthKey_{KEY_ID}.p8"
    path.write_text(pem(apns_key))
    return path


# FCM.


@pytest.fixture
def fcm_server(service_account_key: rsa.RSAPrivateKey, clock: ManualClock) -> Iterator[FcmServer]:
    server = FcmServer(public_key=service_account_key.public_key(), client_email=CLIENT_EMAIL, clock=clock)
    yield server
    server.stop()


def fcm_settings(credentials_file: Path, server: FcmServer, **overrides: str) -> FcmSettings:
    fields = {
        "credentials_file": str(credentials_file),
        "project_id": PROJECT_ID,
        "send_url": server.send_url,
        "token_url": server.token_url,
        "rate_per_second": 500,
    }
    return FcmSettings.model_validate({**fields, **overrides})


@pytest.fixture
def fcm(credentials_file: Path, fcm_server: FcmServer, clock: ManualClock) -> Iterator[FcmProvider]:
    provider = FcmProvider(fcm_settings(credentials_file, fcm_server), clock=clock, timeout=QUICK)
    yield provider
    provider.close()


def test_fcm_sends_one_v1_message_and_returns_its_name(fcm: FcmProvider, fcm_server: FcmServer) -> None:
    name = fcm.send(invitation(FCM_DEVICE))

    assert name == f"projects/{PROJECT_ID}/messages/0:1"
    assert fcm_server.messages == [
        FcmMessage(
            "Bearer ya29.test-token-1",
            {
                "message": {
                    "token": FCM_DEVICE,
                    "notification": {"title": "Wallet", "body": TEXT},
                    "data": {"link": "https://wallet.example/s/abc", "reference": "msg-42:invite"},
                    "android": {"collapse_key": "followup-42"},
                }
            },
        )
    ]
    start = int(START.timestamp())
    assert fcm_server.token_requests == [
        {
            "iss": CLIENT_EMAIL,
            "scope": "https://www.googleapis.com/auth/firebase.messaging",
            "aud": fcm_server.token_url,
            "iat": start,
            "exp": start + 3600,
        }
    ]
    assert fcm_server.grant_headers == [{"alg": "RS256", "typ": "JWT", "kid": "0123456789abcdef"}]
    assert (fcm.name, fcm.kind, fcm.idempotent, fcm.rate_per_second) == ("fcm", "fcm", False, 500)


def test_fcm_leaves_out_what_the_message_does_not_have(fcm: FcmProvider, fcm_server: FcmServer) -> None:
    fcm.send(Outgoing(to=FCM_DEVICE, text=TEXT, reference="msg-43:invite"))

    assert fcm_server.messages[0].body == {
        "message": {"token": FCM_DEVICE, "notification": {"body": TEXT}, "data": {"reference": "msg-43:invite"}}
    }


def test_fcm_fetches_the_access_token_once_and_keeps_one_connection(fcm: FcmProvider, fcm_server: FcmServer) -> None:
    for number in range(3):
        fcm.send(invitation(FCM_DEVICE, reference=f"msg-{number}"))

    assert len(fcm_server.token_requests) == 1
    assert [message.authorization for message in fcm_server.messages] == ["Bearer ya29.test-token-1"] * 3
    assert fcm_server.connections == 1


def test_fcm_refreshes_the_access_token_with_less_than_five_minutes_left(
    fcm: FcmProvider, fcm_server: FcmServer, clock: ManualClock
) -> None:
    fcm.send(invitation(FCM_DEVICE))  # the server's token lives 3599 s
    clock.advance(dt.timedelta(seconds=3599 - 301))
    fcm.send(invitation(FCM_DEVICE))
    clock.advance(dt.timedelta(seconds=2))
    fcm.send(invitation(FCM_DEVICE))

    assert [message.authorization for message in fcm_server.messages] == [
        "Bearer ya29.test-token-1",
        "Bearer ya29.test-token-1",
        "Bearer ya29.test-token-2",
    ]
    assert [claims["iat"] for claims in fcm_server.token_requests] == [
        int(START.timestamp()),
        int(START.timestamp()) + 3599 - 301 + 2,
    ]


def test_fcm_fetches_a_new_access_token_after_a_401_and_sends_once_more(
    fcm: FcmProvider, fcm_server: FcmServer
) -> None:
    fcm.send(invitation(FCM_DEVICE))
    fcm_server.revoked.add("ya29.test-token-1")

    name = fcm.send(invitation(FCM_DEVICE))

    assert name == f"projects/{PROJECT_ID}/messages/0:3"
    assert len(fcm_server.token_requests) == 2
    assert [message.authorization for message in fcm_server.messages] == [
        "Bearer ya29.test-token-1",
        "Bearer ya29.test-token-1",  # refused with 401
        "Bearer ya29.test-token-2",
    ]


def test_fcm_a_second_401_is_final(fcm: FcmProvider, fcm_server: FcmServer) -> None:
    fcm_server.answers = [fcm_error(401, "UNAUTHENTICATED"), fcm_error(401, "UNAUTHENTICATED")]

    with pytest.raises(PermanentProviderError) as raised:
        fcm.send(invitation(FCM_DEVICE))

    assert raised.value.code == "UNAUTHENTICATED"
    assert not isinstance(raised.value, AddressGoneError)
    assert len(fcm_server.messages) == 2
    assert len(fcm_server.token_requests) == 2


def test_fcm_a_third_party_auth_error_keeps_the_access_token(fcm: FcmProvider, fcm_server: FcmServer) -> None:
    fcm_server.answers = [fcm_error(401, "UNAUTHENTICATED", error_code="THIRD_PARTY_AUTH_ERROR")]

    with pytest.raises(PermanentProviderError) as raised:
        fcm.send(invitation(FCM_DEVICE))

    assert raised.value.code == "THIRD_PARTY_AUTH_ERROR"
    assert len(fcm_server.messages) == 1
    assert len(fcm_server.token_requests) == 1


def test_fcm_unregistered_token_is_gone(fcm: FcmProvider, fcm_server: FcmServer) -> None:
    fcm_server.answers = [
        fcm_error(404, "NOT_FOUND", error_code="UNREGISTERED", message="Requested entity was not found.")
    ]

    with pytest.raises(AddressGoneError) as raised:
        fcm.send(invitation(FCM_DEVICE))

    assert (raised.value.code, raised.value.status) == ("UNREGISTERED", "unregistered")
    assert_private(raised.value)


@pytest.mark.parametrize(
    ("details", "message", "gone"),
    [
        pytest.param(
            [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT"}],
            "The registration token is not a valid FCM registration token",
            True,
            id="fcm-error-on-the-token",
        ),
        pytest.param(
            [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": "message.token"}]}],
            "Invalid value at 'message.token'",
            True,
            id="bad-request-on-the-token",
        ),
        pytest.param(
            [
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"field": "message.data[0].value"}],
                }
            ],
            "Invalid value at 'message.data[0].value' (TYPE_STRING), 12",
            False,
            id="bad-request-on-another-field",
        ),
    ],
)
def test_fcm_invalid_argument_is_gone_only_when_it_names_the_token(
    fcm: FcmProvider, fcm_server: FcmServer, details: list[dict[str, object]], message: str, gone: bool
) -> None:
    error = {"code": 400, "message": message, "status": "INVALID_ARGUMENT", "details": details}
    fcm_server.answers = [Answer(400, {"error": error})]

    with pytest.raises(PermanentProviderError) as raised:
        fcm.send(invitation(FCM_DEVICE))

    assert isinstance(raised.value, AddressGoneError) is gone
    assert raised.value.code == "INVALID_ARGUMENT"
    assert message not in str(raised.value)  # Google's words may echo what was sent
    assert_private(raised.value)


@pytest.mark.parametrize(
    ("answer", "code", "retry_after"),
    [
        (fcm_error(429, "RESOURCE_EXHAUSTED", error_code="QUOTA_EXCEEDED"), "QUOTA_EXCEEDED", 30.0),
        (fcm_error(503, "UNAVAILABLE", error_code="UNAVAILABLE"), "UNAVAILABLE", 30.0),
        (fcm_error(500, "INTERNAL", error_code="INTERNAL"), "INTERNAL", None),
        (Answer(502, None), "http_502", 30.0),
    ],
)
def test_fcm_busy_or_failing_is_transient_with_retry_after(
    fcm: FcmProvider, fcm_server: FcmServer, answer: Answer, code: str, retry_after: float | None
) -> None:
    headers = {"retry-after": "30"} if retry_after is not None else {}
    fcm_server.answers = [Answer(answer.status, answer.body, headers)]

    with pytest.raises(TransientProviderError) as raised:
        fcm.send(invitation(FCM_DEVICE))

    assert (raised.value.code, raised.value.retry_after) == (code, retry_after)
    assert len(fcm_server.messages) == 1
    assert_private(raised.value)


def test_fcm_other_refusals_are_permanent(fcm: FcmProvider, fcm_server: FcmServer) -> None:
    fcm_server.answers = [fcm_error(403, "PERMISSION_DENIED", error_code="SENDER_ID_MISMATCH")]

    with pytest.raises(PermanentProviderError) as raised:
        fcm.send(invitation(FCM_DEVICE))

    assert raised.value.code == "SENDER_ID_MISMATCH"
    assert not isinstance(raised.value, AddressGoneError)


def test_fcm_read_timeout_is_an_unknown_outcome(
    credentials_file: Path, fcm_server: FcmServer, clock: ManualClock
) -> None:
    provider = FcmProvider(fcm_settings(credentials_file, fcm_server), clock=clock, timeout=IMPATIENT)
    fcm_server.answers = [Answer(misbehave="hang")]

    with pytest.raises(UnknownOutcomeError) as raised:
        provider.send(invitation(FCM_DEVICE))
    provider.close()

    assert raised.value.code == "timeout"
    assert len(fcm_server.messages) == 1


def test_fcm_connection_dropped_after_the_request_is_an_unknown_outcome(
    fcm: FcmProvider, fcm_server: FcmServer
) -> None:
    fcm_server.answers = [Answer(misbehave="drop")]

    with pytest.raises(UnknownOutcomeError) as raised:
        fcm.send(invitation(FCM_DEVICE))

    assert raised.value.code == "connection_lost"
    assert len(fcm_server.messages) == 1


def test_fcm_unreachable_is_transient(credentials_file: Path, fcm_server: FcmServer, clock: ManualClock) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    unreachable_fcm = FcmProvider(
        fcm_settings(credentials_file, fcm_server, send_url=f"{dead}/v1/projects/{PROJECT_ID}/messages:send"),
        clock=clock,
        timeout=QUICK,
    )
    unreachable_google = FcmProvider(
        fcm_settings(credentials_file, fcm_server, token_url=f"{dead}/token"), clock=clock, timeout=QUICK
    )

    with pytest.raises(TransientProviderError) as at_send:
        unreachable_fcm.send(invitation(FCM_DEVICE))
    with pytest.raises(TransientProviderError) as at_grant:
        unreachable_google.send(invitation(FCM_DEVICE))
    unreachable_fcm.close()
    unreachable_google.close()

    assert (at_send.value.code, at_grant.value.code) == ("connect", "oauth_connect")
    assert fcm_server.messages == []


def test_fcm_refused_grant_is_permanent_and_sends_nothing(
    tmp_path: Path, fcm_server: FcmServer, clock: ManualClock
) -> None:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # not the account's key
    path = tmp_path / "revoked.json"
    path.write_text(json.dumps({"client_email": CLIENT_EMAIL, "private_key": pem(other_key)}))
    provider = FcmProvider(fcm_settings(path, fcm_server), clock=clock, timeout=QUICK)

    with pytest.raises(PermanentProviderError) as raised:
        provider.send(invitation(FCM_DEVICE))
    provider.close()

    assert raised.value.code == "oauth_invalid_grant"
    assert "FOLLOWUP_FCM.credentials_file" in str(raised.value)
    assert fcm_server.token_requests == []
    assert fcm_server.messages == []


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (None, "cannot be read"),
        ("not json {", "is not a service account's JSON key"),
        ("[1, 2]", "is not a service account's JSON key"),
        (json.dumps({"private_key": STALE_KEY}), "does not name the service account (client_email)"),
        (json.dumps({"client_email": CLIENT_EMAIL}), "does not hold a service account's private key"),
        (
            json.dumps({"client_email": CLIENT_EMAIL, "private_key": STALE_KEY}),
            "does not hold a service account's private key",
        ),
        ("P-256", "does not hold a service account's private key"),
    ],
)
def test_fcm_bad_credentials_file_is_a_clear_configuration_error(
    tmp_path: Path, clock: ManualClock, apns_key: ec.EllipticCurvePrivateKey, content: str | None, complaint: str
) -> None:
    path = tmp_path / "service-account.json"
    if content == "P-256":  # a key of the wrong kind
        content = json.dumps({"client_email": CLIENT_EMAIL, "private_key": pem(apns_key)})
    if content is not None:
        path.write_text(content)
    settings = FcmSettings(credentials_file=str(path), project_id=PROJECT_ID)

    with pytest.raises(ValueError, match=r"^FOLLOWUP_FCM\.credentials_file: ") as raised:
        FcmProvider(settings, clock=clock)

    message = str(raised.value)
    assert f"the file {path} " in message
    assert complaint in message
    assert "PRIVATE KEY" not in message
    assert "bm90LWEta2V5" not in message
    assert raised.value.__cause__ is None  # no chained parser error carrying the file's content


# APNs.


@pytest.fixture
def apns_server(apns_key: ec.EllipticCurvePrivateKey, clock: ManualClock) -> Iterator[ApnsServer]:
    server = ApnsServer(public_key=apns_key.public_key(), key_id=KEY_ID, team_id=TEAM_ID, topic=TOPIC, clock=clock)
    yield server
    server.stop()


def apns_settings(key_file: Path, server: ApnsServer, **overrides: str) -> ApnsSettings:
    fields = {"key_file": str(key_file), "key_id": KEY_ID, "team_id": TEAM_ID, "topic": TOPIC, "url": server.url}
    return ApnsSettings.model_validate({**fields, **overrides})


@pytest.fixture
def apns(key_file: Path, apns_server: ApnsServer, clock: ManualClock) -> Iterator[ApnsProvider]:
    provider = ApnsProvider(apns_settings(key_file, apns_server), clock=clock, timeout=QUICK)
    yield provider
    provider.close()


def test_apns_sends_an_alert_over_http2_and_returns_the_apns_id(apns: ApnsProvider, apns_server: ApnsServer) -> None:
    apns_id = apns.send(invitation(APNS_DEVICE))

    (request,) = apns_server.requests
    assert request.path == f"/3/device/{APNS_DEVICE}"
    assert request.headers["apns-id"] == apns_id
    assert {name: request.headers[name] for name in ("apns-topic", "apns-push-type", "apns-collapse-id")} == {
        "apns-topic": TOPIC,
        "apns-push-type": "alert",
        "apns-collapse-id": "followup-42",
    }
    assert request.headers["apns-expiration"] == str(int((START + dt.timedelta(days=1)).timestamp()))
    assert request.body == {
        "aps": {"alert": {"title": "Wallet", "body": TEXT}},
        "link": "https://wallet.example/s/abc",
        "reference": "msg-42:invite",
    }
    assert request.token_claims == {"iss": TEAM_ID, "iat": int(START.timestamp())}
    assert (apns.name, apns.kind, apns.idempotent, apns.rate_per_second) == ("apns", "apns", False, None)


def test_apns_every_try_of_one_message_carries_the_same_apns_id(apns: ApnsProvider, apns_server: ApnsServer) -> None:
    first = apns.send(invitation(APNS_DEVICE))
    again = apns.send(invitation(APNS_DEVICE))
    other = apns.send(invitation(APNS_DEVICE, reference="msg-43:invite"))

    assert first == again != other
    assert "apns-collapse-id" in apns_server.requests[0].headers


def test_apns_leaves_out_what_the_message_does_not_have(apns: ApnsProvider, apns_server: ApnsServer) -> None:
    apns.send(Outgoing(to=APNS_DEVICE, text=TEXT, reference="msg-43:invite"))

    (request,) = apns_server.requests
    assert request.body == {"aps": {"alert": {"body": TEXT}}, "reference": "msg-43:invite"}
    assert "apns-collapse-id" not in request.headers


def test_apns_a_collapse_id_over_64_bytes_becomes_a_stable_digest(apns: ApnsProvider, apns_server: ApnsServer) -> None:
    long_id = "followup-42-" + "步" * 30

    apns.send(invitation(APNS_DEVICE, collapse_id=long_id))
    apns.send(invitation(APNS_DEVICE, collapse_id=long_id))

    sent = [request.headers["apns-collapse-id"] for request in apns_server.requests]
    assert sent[0] == sent[1]
    assert len(sent[0].encode()) <= 64
    assert sent[0] != long_id


def test_apns_reuses_the_provider_token_then_replaces_it_after_20_minutes(
    apns: ApnsProvider, apns_server: ApnsServer, clock: ManualClock
) -> None:
    apns.send(invitation(APNS_DEVICE))
    clock.advance(dt.timedelta(minutes=19, seconds=59))
    apns.send(invitation(APNS_DEVICE))
    clock.advance(dt.timedelta(seconds=1))
    apns.send(invitation(APNS_DEVICE))

    authorizations = [request.headers["authorization"] for request in apns_server.requests]
    assert authorizations[0] == authorizations[1] != authorizations[2]
    assert [request.token_claims for request in apns_server.requests] == [
        {"iss": TEAM_ID, "iat": int(START.timestamp())},
        {"iss": TEAM_ID, "iat": int(START.timestamp())},
        {"iss": TEAM_ID, "iat": int(START.timestamp()) + 20 * 60},
    ]
    assert apns_server.connections == 1  # one HTTP/2 connection carries every send


def test_apns_replaces_the_provider_token_after_expired_provider_token_and_tries_once_more(
    apns: ApnsProvider, apns_server: ApnsServer, clock: ManualClock
) -> None:
    apns.send(invitation(APNS_DEVICE))
    clock.advance(dt.timedelta(minutes=5))
    apns_server.answers = [apns_reason(403, "ExpiredProviderToken")]

    apns_id = apns.send(invitation(APNS_DEVICE))

    assert apns_id == apns_server.requests[0].headers["apns-id"]
    authorizations = [request.headers["authorization"] for request in apns_server.requests]
    assert len(authorizations) == 3
    assert authorizations[0] == authorizations[1] != authorizations[2]
    assert apns_server.requests[2].token_claims == {"iss": TEAM_ID, "iat": int(START.timestamp()) + 5 * 60}


def test_apns_a_second_refused_provider_token_is_final(apns: ApnsProvider, apns_server: ApnsServer) -> None:
    apns_server.answers = [apns_reason(403, "InvalidProviderToken"), apns_reason(403, "InvalidProviderToken")]

    with pytest.raises(PermanentProviderError) as raised:
        apns.send(invitation(APNS_DEVICE))

    assert raised.value.code == "InvalidProviderToken"
    assert len(apns_server.requests) == 2


@pytest.mark.parametrize(
    "answer",
    [
        apns_reason(410, "Unregistered"),
        apns_reason(400, "BadDeviceToken"),
    ],
    ids=["410-unregistered", "400-bad-device-token"],
)
def test_apns_dead_device_token_is_gone(apns: ApnsProvider, apns_server: ApnsServer, answer: Answer) -> None:
    apns_server.answers = [answer]

    with pytest.raises(AddressGoneError) as raised:
        apns.send(invitation(APNS_DEVICE))

    assert (raised.value.code, raised.value.status) == (answer.body["reason"], "unregistered")
    assert_private(raised.value)


def test_apns_a_device_token_that_is_not_hex_is_gone_without_a_request(
    apns: ApnsProvider, apns_server: ApnsServer
) -> None:
    with pytest.raises(AddressGoneError) as raised:
        apns.send(invitation("../../3/device/" + APNS_DEVICE))

    assert raised.value.code == "BadDeviceToken"
    assert apns_server.requests == []


@pytest.mark.parametrize(
    ("answer", "retry_after"),
    [
        (apns_reason(429, "TooManyRequests", **{"retry-after": "10"}), 10.0),
        (apns_reason(503, "ServiceUnavailable"), None),
        (apns_reason(500, "InternalServerError"), None),
    ],
    ids=["429", "503", "500"],
)
def test_apns_busy_or_failing_is_transient(
    apns: ApnsProvider, apns_server: ApnsServer, answer: Answer, retry_after: float | None
) -> None:
    apns_server.answers = [answer]

    with pytest.raises(TransientProviderError) as raised:
        apns.send(invitation(APNS_DEVICE))

    assert (raised.value.code, raised.value.retry_after) == (answer.body["reason"], retry_after)
    assert len(apns_server.requests) == 1
    assert_private(raised.value)


def test_apns_other_refusals_are_permanent_with_the_reason(
    key_file: Path, apns_server: ApnsServer, clock: ManualClock
) -> None:
    provider = ApnsProvider(apns_settings(key_file, apns_server, topic="com.example.other"), clock=clock, timeout=QUICK)

    with pytest.raises(PermanentProviderError) as raised:
        provider.send(invitation(APNS_DEVICE))
    provider.close()

    assert raised.value.code == "DeviceTokenNotForTopic"
    assert not isinstance(raised.value, AddressGoneError)
    assert len(apns_server.requests) == 1


def test_apns_read_timeout_is_an_unknown_outcome(key_file: Path, apns_server: ApnsServer, clock: ManualClock) -> None:
    provider = ApnsProvider(apns_settings(key_file, apns_server), clock=clock, timeout=IMPATIENT)
    apns_server.answers = [Answer(misbehave="hang")]

    with pytest.raises(UnknownOutcomeError) as raised:
        provider.send(invitation(APNS_DEVICE))
    provider.close()

    assert raised.value.code == "timeout"
    assert len(apns_server.requests) == 1


def test_apns_connection_dropped_after_the_request_is_an_unknown_outcome(
    apns: ApnsProvider, apns_server: ApnsServer
) -> None:
    apns_server.answers = [Answer(misbehave="drop")]

    with pytest.raises(UnknownOutcomeError) as raised:
        apns.send(invitation(APNS_DEVICE))

    assert raised.value.code == "connection_lost"
    assert len(apns_server.requests) == 1


def test_apns_unreachable_is_transient(key_file: Path, clock: ManualClock) -> None:
    settings = ApnsSettings(
        key_file=str(key_file), key_id=KEY_ID, team_id=TEAM_ID, topic=TOPIC, url=f"http://127.0.0.1:{closed_port()}"
    )
    provider = ApnsProvider(settings, clock=clock, timeout=QUICK)

    with pytest.raises(TransientProviderError) as raised:
        provider.send(invitation(APNS_DEVICE))
    provider.close()

    assert raised.value.code == "connect"


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (None, "cannot be read"),
        ("not a key", "does not hold a private key (a .p8 PEM file)"),
        (STALE_KEY, "does not hold a private key (a .p8 PEM file)"),
        ("RSA", "does not hold an APNs signing key (EC P-256)"),
        ("P-384", "does not hold an APNs signing key (EC P-256)"),
    ],
)
def test_apns_bad_key_file_is_a_clear_configuration_error(
    tmp_path: Path,
    clock: ManualClock,
    service_account_key: rsa.RSAPrivateKey,
    content: str | None,
    complaint: str,
) -> None:
    path = tmp_path / "AuthKey.p8"
    if content == "RSA":
        content = pem(service_account_key)
    elif content == "P-384":
        content = pem(ec.generate_private_key(ec.SECP384R1()))
    if content is not None:
        path.write_text(content)
    settings = ApnsSettings(key_file=str(path), key_id=KEY_ID, team_id=TEAM_ID, topic=TOPIC)

    with pytest.raises(ValueError, match=r"^FOLLOWUP_APNS\.key_file: ") as raised:
        ApnsProvider(settings, clock=clock)

    message = str(raised.value)
    assert f"the file {path} " in message
    assert complaint in message
    assert "PRIVATE KEY" not in message
    assert "bm90LWEta2V5" not in message
    assert raised.value.__cause__ is None


# The JWT module.


def test_es256_signature_is_raw_r_and_s(apns_key: ec.EllipticCurvePrivateKey) -> None:
    token = jwt.encode_es256({"iss": TEAM_ID, "iat": 1_700_000_000}, apns_key, key_id=KEY_ID)

    header, claims = jwt.verify(token, apns_key.public_key(), algorithm="ES256")

    assert header == {"alg": "ES256", "kid": KEY_ID}
    assert claims == {"iss": TEAM_ID, "iat": 1_700_000_000}
    signature = token.split(".")[2]
    assert "=" not in signature
    assert len(base64.urlsafe_b64decode(signature + "==")) == 64  # not DER, which is 70 to 72 bytes


def test_verify_refuses_a_changed_claim_a_wrong_key_and_another_algorithm(
    apns_key: ec.EllipticCurvePrivateKey, service_account_key: rsa.RSAPrivateKey
) -> None:
    es256 = jwt.encode_es256({"iss": TEAM_ID, "iat": 1}, apns_key, key_id=KEY_ID)
    rs256 = jwt.encode_rs256({"iss": CLIENT_EMAIL}, service_account_key)
    header, _claims, signature = es256.split(".")
    forged_claims = base64.urlsafe_b64encode(json.dumps({"iss": "SOMEONEELS", "iat": 1}).encode()).decode().rstrip("=")

    with pytest.raises(jwt.InvalidTokenError, match="does not verify"):
        jwt.verify(f"{header}.{forged_claims}.{signature}", apns_key.public_key(), algorithm="ES256")
    with pytest.raises(jwt.InvalidTokenError, match="does not verify"):
        jwt.verify(es256, ec.generate_private_key(ec.SECP256R1()).public_key(), algorithm="ES256")
    with pytest.raises(jwt.InvalidTokenError, match="not signed with ES256"):
        jwt.verify(rs256, apns_key.public_key(), algorithm="ES256")
    with pytest.raises(jwt.InvalidTokenError, match="three"):
        jwt.verify("only.two", apns_key.public_key(), algorithm="ES256")
    assert jwt.verify(rs256, service_account_key.public_key(), algorithm="RS256")[1] == {"iss": CLIENT_EMAIL}
