"""The in-app inbox's part of a customer's data rights."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from followup.channels.repository import SubjectRepository
from followup.channels.service import list_inbox
from followup.kernel.crypto import KeyProvider

_ALL = 10_000  # an inbox holds what is open: a few items, never this many


def export_customer(session: Session, customer_id: int, *, keys: KeyProvider) -> dict[str, list[dict[str, Any]]]:
    items = list_inbox(session, customer_id, keys=keys, privacy_url="", my_data_url="", limit=_ALL)
    return {"inbox": [item.model_dump(mode="json", exclude={"privacy_url", "my_data_url"}) for item in items]}


def erase_customer(session: Session, customer_id: int) -> None:
    SubjectRepository(session).erase(customer_id)
