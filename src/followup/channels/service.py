"""The in-app inbox the wallet app reads."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy.orm import Session

from followup.channels.repository import InboxRepository
from followup.channels.schemas import InboxItemOut, MessageContent
from followup.customers import service as customers
from followup.kernel.crypto import KeyProvider
from followup.kernel.errors import NotFound

_PURPOSE = "inbox"


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


def list_inbox(session: Session, customer_id: int, *, keys: KeyProvider, limit: int = 50) -> list[InboxItemOut]:
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
                created_at=row.created_at,
                read=row.read_at is not None,
            )
        )
    return items
