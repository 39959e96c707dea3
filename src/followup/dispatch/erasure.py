"""The messages part of a customer's data rights: what was sent to them and what they sent back."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from followup.customers import service as customers
from followup.dispatch.repository import SubjectRepository
from followup.dispatch.service import delivery_state, read_content
from followup.kernel.crypto import DecryptionFailed, KeyProvider

# What `followups.inbound` seals a reply's text under.
INBOUND_TEXT_PURPOSE = "inbound-comment"


def export_customer(session: Session, customer_id: int, *, keys: KeyProvider) -> dict[str, list[dict[str, Any]]]:
    repo = SubjectRepository(session)
    messages = []
    for row in repo.messages(customer_id):
        try:
            content = read_content(session, row, keys=keys) if row.content_sealed else None
        except DecryptionFailed:
            content = None
        messages.append(
            {
                "message_id": row.id,
                "followup_id": row.followup_id,
                "channel": row.channel,
                "step": row.step,
                "state": delivery_state(row),
                "subject": None if content is None else content.subject,
                "text": None if content is None else (content.short_body or content.body),
                "created_at": row.created_at,
                "sent_at": row.sent_at,
                "delivered_at": row.delivered_at,
                "opened_at": row.opened_at,
                "clicked_at": row.clicked_at,
                "answered_at": row.answered_at,
            }
        )
    replies = []
    for reply in repo.inbound(customer_id):
        text = None
        if reply.text_sealed:
            try:
                plain = customers.open_for_customer(
                    session, customer_id, reply.text_sealed, keys=keys, purpose=INBOUND_TEXT_PURPOSE
                )
            except DecryptionFailed:
                plain = None
            text = None if plain is None else plain.decode()
        replies.append(
            {
                "channel": reply.channel,
                "kind": reply.kind,
                "score": reply.score,
                "text": text,
                "followup_id": reply.followup_id,
                "received_at": reply.received_at,
            }
        )
    return {"messages": messages, "replies": replies}


def erase_customer(session: Session, customer_id: int) -> None:
    SubjectRepository(session).erase(customer_id)
