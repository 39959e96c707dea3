"""Outbound webhooks' part of an erasure: deliveries that name the customer."""

from __future__ import annotations

import json

from sqlalchemy.orm import Session

from followup.webhooks.repository import SubjectRepository


def erase_customer(session: Session, external_id: str) -> None:
    """Deliveries whose body names the customer's external id (as every event's `customer_id` does):
    waiting ones are dropped, sent ones keep their status and lose their body."""
    SubjectRepository(session).erase_naming('"customer_id":' + json.dumps(external_id, ensure_ascii=False))
