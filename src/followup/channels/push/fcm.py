"""Firebase Cloud Messaging, HTTP v1 API: one notification to one Android device token.

A service account's key signs a short JWT, which Google's token endpoint trades for an OAuth2
access token (the JWT-bearer grant); each send carries that token. What must stay true:

- The access token is fetched once and reused until fewer than five minutes of it are left, or
  until FCM answers 401 to a send: then it is fetched again and the send is tried once more.
- FCM has no idempotency key, so `idempotent` is False: a request that may have reached Google
  without an answer coming back raises `UnknownOutcomeError`, never a retryable error.
- Nothing the provider raises or logs quotes the device token, the text or the key. Google's own
  error messages are read (to tell a bad token from a bad field) but never repeated, because they
  may echo what was sent.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import httpx
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from followup.channels.providers import (
    AddressGoneError,
    Outgoing,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
    UnknownOutcomeError,
    retry_after_seconds,
    transport_error,
)
from followup.channels.push.jwt import encode_rs256
from followup.config import FcmSettings
from followup.kernel.time import Clock

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)

_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_ASSERTION_LIFETIME = dt.timedelta(hours=1)  # the longest Google accepts
_REFRESH_MARGIN = dt.timedelta(minutes=5)
_DEFAULT_TOKEN_LIFETIME = 3600  # seconds, when the token endpoint leaves expires_in out
_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
_SETTING = "FOLLOWUP_FCM.credentials_file"


class FcmProvider:
    """Sends through FCM with one kept-alive HTTP client; safe to share between threads."""

    name = "fcm"
    kind = "fcm"
    idempotent = False

    def __init__(self, settings: FcmSettings, *, clock: Clock, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> None:
        self.rate_per_second = settings.rate_per_second
        self.concurrency = settings.concurrency
        self._settings = settings
        self._clock = clock
        self._client_email, self._key, self._key_id = _read_service_account(settings.credentials_file)
        # http2 is used where the server offers it (ALPN over https); plain http stays HTTP/1.1.
        self._http = httpx.Client(http2=True, timeout=timeout, follow_redirects=False)
        self._lock = threading.Lock()
        self._access_token: str | None = None
        self._access_token_expires_at = dt.datetime.min.replace(tzinfo=dt.UTC)

    def send(self, outgoing: Outgoing) -> str:
        body = _message(outgoing)
        access_token = self._current_access_token()
        response = self._post_message(body, access_token=access_token)
        if response.status_code == 401 and _fcm_error_code(_error_of(response)) != "THIRD_PARTY_AUTH_ERROR":
            # Revoked or expired early: one fresh token, one more try. A second 401 is final.
            self._forget_access_token(access_token)
            response = self._post_message(body, access_token=self._current_access_token())
        return _read_answer(response)

    def close(self) -> None:
        self._http.close()

    # The access token.

    def _current_access_token(self) -> str:
        with self._lock:
            now = self._clock.now()
            if self._access_token is None or self._access_token_expires_at - now < _REFRESH_MARGIN:
                self._access_token, self._access_token_expires_at = self._fetch_access_token(now)
            return self._access_token

    def _forget_access_token(self, access_token: str) -> None:
        with self._lock:
            if self._access_token == access_token:  # another thread may have replaced it already
                self._access_token = None

    def _fetch_access_token(self, now: dt.datetime) -> tuple[str, dt.datetime]:
        issued_at = int(now.timestamp())
        assertion = encode_rs256(
            {
                "iss": self._client_email,
                "scope": SCOPE,
                "aud": self._settings.token_url,
                "iat": issued_at,
                "exp": issued_at + int(_ASSERTION_LIFETIME.total_seconds()),
            },
            self._key,
            key_id=self._key_id,
        )
        try:
            response = self._http.post(
                self._settings.token_url, data={"grant_type": _GRANT_TYPE, "assertion": assertion}
            )
        except httpx.TransportError as exc:
            # No message has left yet, so whatever happened, trying again later is safe.
            raise TransientProviderError(
                f"FCM: the OAuth token endpoint could not be reached ({type(exc).__name__})", code="oauth_connect"
            ) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientProviderError(
                f"FCM: the OAuth token endpoint answered {response.status_code}",
                code=f"oauth_http_{response.status_code}",
                retry_after=retry_after_seconds(response.headers.get("retry-after")),
            )
        if response.status_code != 200:
            # invalid_grant, invalid_client, …: the key was revoked or the account disabled. Every
            # message would fail the same way until an operator replaces the key.
            raise PermanentProviderError(
                f"FCM: the OAuth token endpoint refused the service account's grant "
                f"({response.status_code} {_oauth_error(response)}); check {_SETTING}",
                code=f"oauth_{_oauth_error(response)}",
            )
        answer = _json_object(response)
        access_token = answer.get("access_token")
        expires_in = answer.get("expires_in", _DEFAULT_TOKEN_LIFETIME)
        if not isinstance(access_token, str) or not access_token:
            raise TransientProviderError(
                "FCM: the OAuth token endpoint answered without an access token", code="oauth_answer"
            )
        if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
            expires_in = _DEFAULT_TOKEN_LIFETIME
        return access_token, now + dt.timedelta(seconds=expires_in)

    # The message.

    def _post_message(self, body: dict[str, Any], *, access_token: str) -> httpx.Response:
        try:
            return self._http.post(
                self._settings.messages_url, json=body, headers={"authorization": f"Bearer {access_token}"}
            )
        except httpx.TransportError as exc:
            raise transport_error(exc, provider="FCM", what="message") from exc


def _message(outgoing: Outgoing) -> dict[str, Any]:
    """The HTTP v1 `message` for one device token (FCM's data values must all be strings)."""
    notification = {"title": outgoing.title, "body": outgoing.text}
    data = {"link": outgoing.link, "reference": outgoing.reference}
    message: dict[str, Any] = {
        "token": outgoing.to,
        "notification": {key: value for key, value in notification.items() if value is not None},
        "data": {key: value for key, value in data.items() if value is not None},
    }
    if outgoing.collapse_id is not None:
        message["android"] = {"collapse_key": outgoing.collapse_id}
    return {"message": message}


def _read_answer(response: httpx.Response) -> str:
    if response.status_code == 200:
        name = _json_object(response).get("name")
        if not isinstance(name, str) or not name:
            # Accepted, yet we cannot name it: sending again could deliver it twice.
            raise UnknownOutcomeError("FCM accepted the message but answered without its name", code="fcm_no_name")
        return name
    raise _refusal(response)


def _refusal(response: httpx.Response) -> ProviderError:
    """Read FCM's error body (google.rpc.Status with FcmError details) into our error kinds."""
    status_code = response.status_code
    error = _error_of(response)
    status = error.get("status") if isinstance(error.get("status"), str) else None
    fcm_code = _fcm_error_code(error)
    code = fcm_code or status or f"http_{status_code}"
    said = f"FCM answered {status_code} {code}"
    # Only FCM's own detail deactivates a device: a bare 404 may as well be a wrong project id,
    # and reading it as "gone" would deactivate every device at once.
    if fcm_code == "UNREGISTERED":
        return AddressGoneError(f"{said}: the device token is no longer registered", code=code, status="unregistered")
    if code == "INVALID_ARGUMENT" and _names_the_token(error):
        return AddressGoneError(f"{said}: the device token is not a valid FCM token", code=code, status="unregistered")
    if status_code == 429 or status_code >= 500 or fcm_code in {"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"}:
        return TransientProviderError(
            said, code=code, retry_after=retry_after_seconds(response.headers.get("retry-after"))
        )
    return PermanentProviderError(said, code=code)


def _names_the_token(error: dict[str, Any]) -> bool:
    """Whether an INVALID_ARGUMENT is about the registration token rather than another field.

    Google marks a bad token by an FcmError detail whose message speaks of the registration token,
    and a bad field by a BadRequest detail naming it; `message.token` there is the token too.
    """
    for detail in _details(error):
        if detail.get("@type") == _BAD_REQUEST_TYPE:
            violations = detail.get("fieldViolations")
            if isinstance(violations, list) and any(
                isinstance(violation, dict) and violation.get("field") == "message.token" for violation in violations
            ):
                return True
    message = error.get("message")
    return isinstance(message, str) and "registration token" in message.lower()


def _fcm_error_code(error: dict[str, Any]) -> str | None:
    for detail in _details(error):
        if detail.get("@type") == _FCM_ERROR_TYPE and isinstance(detail.get("errorCode"), str):
            return str(detail["errorCode"])
    return None


def _details(error: dict[str, Any]) -> list[dict[str, Any]]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    return [detail for detail in details if isinstance(detail, dict)]


def _error_of(response: httpx.Response) -> dict[str, Any]:
    error = _json_object(response).get("error")
    return error if isinstance(error, dict) else {}


def _oauth_error(response: httpx.Response) -> str:
    error = _json_object(response).get("error")
    if isinstance(error, str) and error.replace("_", "").isalnum():
        return error[:40]
    return f"http_{response.status_code}"


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        value = json.loads(response.content)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _read_service_account(path: str) -> tuple[str, rsa.RSAPrivateKey, str | None]:
    """The service account's email, RSA key and key id; a ValueError naming the setting otherwise.

    The messages name the file and what is wrong with it, never a line of its content.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{_SETTING}: the file {path} cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        account = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{_SETTING}: the file {path} is not a service account's JSON key") from None
    if not isinstance(account, dict):
        raise ValueError(f"{_SETTING}: the file {path} is not a service account's JSON key")
    client_email = account.get("client_email")
    if not isinstance(client_email, str) or "@" not in client_email:
        raise ValueError(f"{_SETTING}: the file {path} does not name the service account (client_email)")
    pem = account.get("private_key")
    key = None
    if isinstance(pem, str):
        try:
            key = load_pem_private_key(pem.encode("utf-8"), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):  # cryptography's refusals, not repeated
            key = None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{_SETTING}: the file {path} does not hold a service account's private key")
    key_id = account.get("private_key_id")
    return client_email, key, key_id if isinstance(key_id, str) and key_id else None
