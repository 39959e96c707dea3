"""The events part of a customer's data rights: the events the wallet sent about them."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from followup.events.repository import EventRepository


def export_customer(session: Session, customer_id: int) -> dict[str, list[dict[str, Any]]]:
    return {
        "events": [
            {
                "event_id": row.event_id,
                "type": row.type,
                "occurred_at": row.occurred_at,
                "amount": row.amount,
                "currency": row.currency,
                "attributes": row.attributes,
            }
            for row in EventRepository(session).of_customer(customer_id)
        ]
    }


def erase_customer(session: Session, customer_id: int) -> None:
    """The events' attributes go; their ids, types, times and amounts stay, under the pseudonym, for
    activity and uplift figures (and so that a replayed event is still known as a duplicate)."""
    EventRepository(session).erase_attributes(customer_id)
