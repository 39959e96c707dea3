"""Apple Push Notification service: one alert to one iOS device token, over HTTP/2.

Authentication is token-based: the team's .p8 key (PKCS#8, EC P-256) signs an ES256 provider token
that every request carries. What must stay true:

- The provider token is reused and replaced once it is 20 minutes old: Apple refuses a token
  older than an hour and throttles (TooManyProviderTokenUpdates) a team that makes new ones more
  often than every 20 minutes. After ExpiredProviderToken or InvalidProviderToken a new token is
  made at once and the request tried once more.
- APNs only speaks HTTP/2 and wants few, long-lived connections, so one client keeps one
  connection open and multiplexes every send over it.
- apns-collapse-id only replaces a notification on the device; APNs has no idempotency key, so
  `idempotent` is False and a request without an answer raises `UnknownOutcomeError`.
- Nothing raised or logged quotes the device token, the text or the key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from followup.channels.providers import (
    AddressGoneError,
    Outgoing,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
    retry_after_seconds,
    transport_error,
)
from followup.channels.push.jwt import encode_es256
from followup.config import ApnsSettings
from followup.kernel.time import Clock

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
TOKEN_REFRESH_AFTER = dt.timedelta(minutes=20)
# How long APNs keeps trying to reach a device that is off: a day, then the invitation is dropped
# (the next follow-up step, a reminder or another channel, takes over).
NOTIFICATION_LIFETIME = dt.timedelta(days=1)

_COLLAPSE_ID_MAX_BYTES = 64
_DEVICE_TOKEN = re.compile(r"^[0-9A-Fa-f]{32,200}$")
_GONE_REASONS = frozenset({"Unregistered", "BadDeviceToken"})
_STALE_TOKEN_REASONS = frozenset({"ExpiredProviderToken", "InvalidProviderToken"})
# apns-id is derived from our reference, so every try of one message carries the same id.
_APNS_ID_NAMESPACE = uuid.UUID("0b7f3d0e-6a51-4c1e-9a7e-5d2f8f1c4a90")
_SETTING = "FOLLOWUP_APNS.key_file"


class ApnsProvider:
    """Sends through APNs with one kept-alive HTTP/2 connection; safe to share between threads."""

    name = "apns"
    kind = "apns"
    idempotent = False

    def __init__(self, settings: ApnsSettings, *, clock: Clock, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> None:
        self.rate_per_second = settings.rate_per_second
        self.concurrency = settings.concurrency
        self._settings = settings
        self._clock = clock
        self._key = _read_signing_key(settings.key_file)
        # HTTP/2 only: over https it is negotiated by ALPN, over http (tests) spoken from the start.
        self._http = httpx.Client(http1=False, http2=True, timeout=timeout, follow_redirects=False)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_issued_at = dt.datetime.min.replace(tzinfo=dt.UTC)

    def send(self, outgoing: Outgoing) -> str:
        if not _DEVICE_TOKEN.match(outgoing.to):
            # It would not even make a valid request path; Apple would answer BadDeviceToken.
            raise AddressGoneError(
                "APNs: the device token is not hexadecimal", code="BadDeviceToken", status="unregistered"
            )
        apns_id = str(uuid.uuid5(_APNS_ID_NAMESPACE, outgoing.reference))
        body = _payload(outgoing)
        token = self._provider_token()
        response = self._post(outgoing, body, apns_id=apns_id, token=token)
        if response.status_code == 403 and _reason(response) in _STALE_TOKEN_REASONS:
            self._replace_token(token)
            response = self._post(outgoing, body, apns_id=apns_id, token=self._provider_token())
        if response.status_code == 200:
            return response.headers.get("apns-id") or apns_id
        raise _refusal(response)

    def close(self) -> None:
        self._http.close()

    # The provider token.

    def _provider_token(self) -> str:
        with self._lock:
            now = self._clock.now()
            age = now - self._token_issued_at
            if self._token is None or age >= TOKEN_REFRESH_AFTER or age < dt.timedelta(0):
                self._token = encode_es256(
                    {"iss": self._settings.team_id, "iat": int(now.timestamp())},
                    self._key,
                    key_id=self._settings.key_id,
                )
                self._token_issued_at = now
            return self._token

    def _replace_token(self, refused: str) -> None:
        with self._lock:
            if self._token == refused:  # another thread may have replaced it already
                self._token = None

    # The request.

    def _post(self, outgoing: Outgoing, body: bytes, *, apns_id: str, token: str) -> httpx.Response:
        expiration = self._clock.now() + NOTIFICATION_LIFETIME
        headers = {
            "authorization": f"bearer {token}",
            "apns-topic": self._settings.topic,
            "apns-push-type": "alert",
            "apns-priority": "10",
            "apns-id": apns_id,
            "apns-expiration": str(int(expiration.timestamp())),
            "content-type": "application/json",
        }
        if outgoing.collapse_id is not None:
            headers["apns-collapse-id"] = _collapse_id(outgoing.collapse_id)
        try:
            return self._http.post(f"{self._settings.url}/3/device/{outgoing.to}", content=body, headers=headers)
        except httpx.TransportError as exc:
            raise transport_error(exc, provider="APNs", what="notification") from exc


def _payload(outgoing: Outgoing) -> bytes:
    alert = {"title": outgoing.title, "body": outgoing.text}
    payload: dict[str, Any] = {"aps": {"alert": {key: value for key, value in alert.items() if value is not None}}}
    if outgoing.link is not None:
        payload["link"] = outgoing.link
    payload["reference"] = outgoing.reference
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _collapse_id(collapse_id: str) -> str:
    """The collapse id, or when it is over APNs' 64 bytes a digest of it: still one value per
    collapse id, so later notifications still replace earlier ones."""
    if len(collapse_id.encode("utf-8")) <= _COLLAPSE_ID_MAX_BYTES:
        return collapse_id
    return hashlib.sha256(collapse_id.encode("utf-8")).hexdigest()


def _refusal(response: httpx.Response) -> ProviderError:
    status_code = response.status_code
    reason = _reason(response)
    code = reason or f"http_{status_code}"
    said = f"APNs answered {status_code} {code}"
    if status_code == 410 or (status_code == 400 and reason in _GONE_REASONS):
        return AddressGoneError(
            f"{said}: the device token is no longer valid for this app", code=code, status="unregistered"
        )
    if status_code == 429 or status_code >= 500:
        return TransientProviderError(
            said, code=code, retry_after=retry_after_seconds(response.headers.get("retry-after"))
        )
    return PermanentProviderError(said, code=code)


def _reason(response: httpx.Response) -> str | None:
    """APNs' `reason` word (e.g. BadDeviceToken); only a plain word, so nothing else leaks through."""
    try:
        body = json.loads(response.content)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    reason = body.get("reason") if isinstance(body, dict) else None
    if isinstance(reason, str) and reason.isalnum():
        return reason[:64]
    return None


def _read_signing_key(path: str) -> ec.EllipticCurvePrivateKey:
    """The team's P-256 signing key from its .p8 file; a ValueError naming the setting otherwise.

    The messages name the file and what is wrong with it, never a line of its content.
    """
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{_SETTING}: the file {path} cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):  # cryptography's refusals, not repeated
        raise ValueError(f"{_SETTING}: the file {path} does not hold a private key (a .p8 PEM file)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"{_SETTING}: the file {path} does not hold an APNs signing key (EC P-256)")
    return key
