"""Standard Webhooks (https://www.standardwebhooks.com/) signatures, both ways.

A webhook carries `webhook-id` (the same on every retry of one message), `webhook-timestamp` (Unix
seconds) and `webhook-signature`: `v1,<base64 HMAC-SHA256>` over `{id}.{timestamp}.{body}`, keyed
with the bytes that follow `whsec_` in the shared secret (base64). Gateways sign what they post to
us this way (`channels.sms.webhooks` checks it); we sign what we post to the wallet's systems.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

WHSEC_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh `whsec_…` secret: 32 random bytes."""
    return WHSEC_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_…` secret (a secret without the prefix is read as plain base64)."""
    encoded = secret.removeprefix(WHSEC_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        # The secret is not quoted: it would end up in a log.
        raise ValueError("the webhook secret is not base64 after whsec_") from exc


def digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode("ascii")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value (one signature) for this id, timestamp and body."""
    return f"v1,{digest(secret_key(secret), msg_id, timestamp, body)}"
