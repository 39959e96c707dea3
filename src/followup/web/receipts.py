"""The receipt of an answer just given: what lets the page after the POST thank the customer.

A survey of one question is used up by its one-click answer, so the GET that follows the POST's
redirect finds no open invitation — and a used link must show the same 404 page as one that never
existed, so that a probe learns nothing. The redirect therefore carries a receipt: an HMAC, under a
key derived from the master key, over the link's token hash, an expiry a few minutes ahead, the
points granted and the page's language. It proves that whoever follows it has just answered through
this very link (a token is one invitation, which has one response), without a row or a cookie.
The answer to a yes_no question ("Was this you?") rides along too, so the page after a "no" can
show how to freeze the account without taking the query string's word for it.

A receipt cannot be made without the master key, is worth nothing on another link, and holds no
personal data. Once it expires, the link is back to the plain 404 page.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass

from followup.kernel.crypto import KeyProvider, hash_token

RECEIPT_LIFETIME = dt.timedelta(minutes=10)
_KEY_LABEL = "survey-receipt/v1"
_RECEIPT = re.compile(
    r"(?P<body>(?P<expires>[0-9]{1,12})\.(?P<points>[0-9]{1,9})\.(?P<locale>[A-Za-z-]{2,16})(?:\.(?P<said>yes|no))?)"
    r"\.(?P<mac>[A-Za-z0-9_-]{43})"
)


@dataclass(frozen=True)
class AnswerReceipt:
    points: int
    locale: str
    said: str | None = None  # "yes" or "no" to a yes_no question; None after a rating


def issue_receipt(
    keys: KeyProvider, token: str, *, points: int, locale: str, now: dt.datetime, said: str | None = None
) -> str:
    """EXPIRES.POINTS.LOCALE[.SAID].MAC: SAID (yes or no) only after a yes_no question."""
    expires = int((now + RECEIPT_LIFETIME).timestamp())
    body = f"{expires}.{points}.{locale}" + (f".{said}" if said in ("yes", "no") else "")
    return f"{body}.{_mac(keys, token, body)}"


def read_receipt(keys: KeyProvider, token: str, receipt: str | None, *, now: dt.datetime) -> AnswerReceipt | None:
    """The receipt's content when it was issued for this token and has not expired; else None."""
    match = _RECEIPT.fullmatch(receipt or "")
    if match is None or not hmac.compare_digest(match["mac"], _mac(keys, token, match["body"])):
        return None
    if int(match["expires"]) <= now.timestamp():
        return None
    return AnswerReceipt(points=int(match["points"]), locale=match["locale"], said=match["said"])


def _mac(keys: KeyProvider, token: str, body: str) -> str:
    digest = hmac.new(keys.derive_key(_KEY_LABEL), f"{hash_token(token)}|{body}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
