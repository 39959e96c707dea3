"""The in-app inbox the wallet app reads."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re

from sqlalchemy.orm import Session

from followup.channels.repository import InboxRepository, ProviderStateRepository, ShortLinkRepository
from followup.channels.schemas import InboxItemOut, MessageContent, ProviderHealthOut
from followup.customers import service as customers
from followup.kernel.crypto import KeyProvider
from followup.kernel.errors import NotFound

_PURPOSE = "inbox"
_SHORT_CODE = re.compile(r"^[A-Za-z0-9_-]{16}$")


def deliver_to_inbox(
    session: Session,
    *,
    customer_id: int,
    idempotency_key: str,
    content: MessageContent,
    keys: KeyProvider,
    now: dt.datetime,
) -> int:
    payload = {
        "title": content.subject,
        "body": f"{content.body}\n{content.question or ''}".strip(),
        "link": content.link,
    }
    sealed = customers.seal_for_customer(
        session, customer_id, json.dumps(payload, ensure_ascii=False).encode(), keys=keys, now=now, purpose=_PURPOSE
    )
    return InboxRepository(session).insert_once(
        {
            "customer_id": customer_id,
            "idempotency_key": idempotency_key,
            "content_sealed": sealed,
            "created_at": now,
            "read_at": None,
        }
    )


class InboxItemNotFound(NotFound):
    code = "inbox_item_not_found"


def mark_read(session: Session, customer_id: int, item_id: int, *, now: dt.datetime) -> str:
    """Mark the customer's inbox item read (the first time counts); returns the idempotency key it
    was delivered under, the message's own. InboxItemNotFound when the customer has no such item."""
    item = InboxRepository(session).get_for_customer(customer_id, item_id)
    if item is None:
        raise InboxItemNotFound(f"This customer's inbox has no item {item_id}.")
    if item.read_at is None:
        item.read_at = now
    return item.idempotency_key


def remove_from_inbox(session: Session, idempotency_keys: list[str]) -> int:
    """Take items out of the inbox (their follow-up was answered or expired: nothing is left to do
    with them); returns how many there were."""
    return InboxRepository(session).delete_by_keys(idempotency_keys) if idempotency_keys else 0


def list_inbox(
    session: Session, customer_id: int, *, keys: KeyProvider, privacy_url: str, my_data_url: str, limit: int = 50
) -> list[InboxItemOut]:
    """The open inbox items, newest first; each links to the privacy notice and, with a fresh token,
    to the customer's own privacy page."""
    items = []
    for row in InboxRepository(session).for_customer(customer_id, limit=limit):
        plain = customers.open_for_customer(session, customer_id, row.content_sealed, keys=keys, purpose=_PURPOSE)
        if plain is None:
            continue
        payload = json.loads(plain)
        items.append(
            InboxItemOut(
                id=row.id,
                title=payload["title"],
                body=payload["body"],
                link=payload["link"],
                privacy_url=privacy_url,
                my_data_url=my_data_url,
                created_at=row.created_at,
                read=row.read_at is not None,
            )
        )
    return items


# Short links: /r/{code} in an SMS, standing for the survey's long link.

_SHORT_LINK_PURPOSE = "short-link"
_SHORT_CODE_BYTES = 12  # 96 bits, 16 characters of base64url


def short_code(idempotency_key: str, *, keys: KeyProvider) -> str:
    """The short code of a message's link: a keyed hash of its idempotency key, so every retry of
    the message gets the same code, and nobody without our key can find one."""
    digest = bytes.fromhex(keys.blind_index(_SHORT_LINK_PURPOSE, idempotency_key))[:_SHORT_CODE_BYTES]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def shorten(
    session: Session,
    *,
    customer_id: int,
    idempotency_key: str,
    target: str,
    expires_at: dt.datetime,
    keys: KeyProvider,
    now: dt.datetime,
) -> str:
    """The code of a short link to `target`, created once per message."""
    code = short_code(idempotency_key, keys=keys)
    sealed = customers.seal_for_customer(
        session, customer_id, target.encode(), keys=keys, now=now, purpose=_SHORT_LINK_PURPOSE
    )
    ShortLinkRepository(session).insert_once(
        {
            "code_hash": _code_hash(code),
            "customer_id": customer_id,
            "target_sealed": sealed,
            "created_at": now,
            "expires_at": expires_at,
        }
    )
    return code


def resolve_short_link(session: Session, code: str, *, keys: KeyProvider, now: dt.datetime) -> str | None:
    """Where a short link leads; None when there is no such link, it expired, or its customer's
    data was erased."""
    if not _SHORT_CODE.match(code):
        return None
    row = ShortLinkRepository(session).get(_code_hash(code))
    if row is None or row.expires_at <= now:
        return None
    plain = customers.open_for_customer(
        session, row.customer_id, row.target_sealed, keys=keys, purpose=_SHORT_LINK_PURPOSE
    )
    return None if plain is None else plain.decode()


def provider_health(session: Session) -> list[ProviderHealthOut]:
    """Every provider that has sent, failed or been skipped, as the workers left its health."""
    return [
        ProviderHealthOut(
            channel=row.channel,
            provider=row.provider,
            failures_in_row=row.failures_in_row,
            open_until=row.open_until,
            skipped=row.skipped,
            last_error_code=row.last_error_code,
            last_error_at=row.last_error_at,
            last_success_at=row.last_success_at,
        )
        for row in ProviderStateRepository(session).all()
    ]
