"""Standard Webhooks (https://www.standardwebhooks.com/): how our gateways sign what they post.

A webhook carries three headers: `webhook-id` (the same on every retry of one message),
`webhook-timestamp` (Unix seconds) and `webhook-signature`, a space-separated list of
`v1,<base64 HMAC-SHA256>` computed over `{id}.{timestamp}.{body}` with the key that follows
`whsec_` in the shared secret (base64). A list lets the sender sign with an old and a new secret
while it is rotated.

What must stay true: signatures are compared in constant time; a timestamp more than `tolerance`
seconds away from now is refused, so a captured request cannot be replayed later; and no error
message quotes a secret, a signature or the body.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Mapping

from followup.channels.providers import WebhookSignatureError
from followup.kernel.standard_webhooks import WHSEC_PREFIX, digest, secret_key, sign

DEFAULT_TOLERANCE = 300  # seconds either side of now, the specification's five minutes
__all__ = ["DEFAULT_TOLERANCE", "WHSEC_PREFIX", "secret_key", "sign", "verify"]


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: dt.datetime,
    tolerance: int = DEFAULT_TOLERANCE,
) -> str:
    """Check a webhook's signature; returns its `webhook-id`.

    `headers` has lower-case names. Raises WebhookSignatureError when a header is missing, the
    timestamp is not an integer or lies more than `tolerance` seconds from `now`, or no `v1`
    signature of the list matches.
    """
    msg_id = headers.get("webhook-id")
    timestamp_text = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not timestamp_text or not signatures:
        raise WebhookSignatureError("webhook-id, webhook-timestamp and webhook-signature are all required")
    try:
        timestamp = int(timestamp_text.strip())
    except ValueError:
        raise WebhookSignatureError("webhook-timestamp is not a number of seconds") from None
    if now.tzinfo is None:
        raise ValueError("verify needs a timezone-aware now")
    if abs(now.timestamp() - timestamp) > tolerance:
        raise WebhookSignatureError(f"webhook-timestamp is more than {tolerance} seconds away from now")
    expected = digest(secret_key(secret), msg_id, timestamp, body).encode("ascii")
    for candidate in signatures.split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode("ascii", "replace"), expected):
            return msg_id
    raise WebhookSignatureError("no webhook-signature matches the body")
