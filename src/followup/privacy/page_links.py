"""Links to a customer's own privacy page: signed and expiring, without a row.

A link is `/p/<token>`, the token being `<customer id>.<expiry>.<MAC>`: an HMAC under a key derived
from the master key for this use alone. Every message carries a fresh one, so a customer holding
any later message or inbox item can open the page again after an older link expired. A tampered or
expired token is refused like an unknown one (the page answers the same plain 404). The token
names the customer by followup's internal id, never by the wallet's id or a contact point.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re

from followup.kernel.crypto import KeyProvider

LINK_LIFETIME = dt.timedelta(days=30)
_KEY_LABEL = "privacy-page/v1"
_TOKEN = re.compile(r"(?P<body>(?P<customer>[1-9][0-9]{0,17})\.(?P<expires>[0-9]{1,12}))\.(?P<mac>[A-Za-z0-9_-]{32})")


def _mac(keys: KeyProvider, body: str) -> str:
    """192 bits of HMAC-SHA256, as 32 characters of URL-safe base64."""
    digest = hmac.new(keys.derive_key(_KEY_LABEL), body.encode(), hashlib.sha256).digest()[:24]
    return base64.urlsafe_b64encode(digest).decode()


def make_token(keys: KeyProvider, customer_id: int, *, now: dt.datetime) -> str:
    body = f"{customer_id}.{int((now + LINK_LIFETIME).timestamp())}"
    return f"{body}.{_mac(keys, body)}"


def read_token(keys: KeyProvider, token: str, *, now: dt.datetime) -> int | None:
    """The customer's internal id when the token is one of ours and has not expired; else None."""
    match = _TOKEN.fullmatch(token)
    if match is None or not hmac.compare_digest(match["mac"], _mac(keys, match["body"])):
        return None
    if int(match["expires"]) <= now.timestamp():
        return None
    return int(match["customer"])


def expiry(token: str) -> dt.datetime | None:
    """When a well-formed token stops working (read without checking it: for display only)."""
    match = _TOKEN.fullmatch(token)
    return None if match is None else dt.datetime.fromtimestamp(int(match["expires"]), tz=dt.UTC)
