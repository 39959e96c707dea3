"""The cases part of a customer's data rights: their cases and what they were told, never what
staff wrote among themselves."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy.orm import Session

from followup.cases.repository import SubjectRepository
from followup.cases.service import TEXT_PURPOSE
from followup.customers import service as customers
from followup.kernel.crypto import DecryptionFailed, KeyProvider

# What the customer was sent about their case; notes and resolutions are staff's own words.
_TOLD_THE_CUSTOMER = frozenset({"reply"})


def export_customer(session: Session, customer_id: int, *, keys: KeyProvider) -> dict[str, list[dict[str, Any]]]:
    repo = SubjectRepository(session)
    cases = repo.cases(customer_id)
    told: dict[int, list[str]] = defaultdict(list)
    for event in repo.events_of([case.id for case in cases]):
        if event.kind not in _TOLD_THE_CUSTOMER or event.text_sealed is None:
            continue
        try:
            plain = customers.open_for_customer(
                session, customer_id, event.text_sealed, keys=keys, purpose=TEXT_PURPOSE
            )
        except DecryptionFailed:
            plain = None
        if plain is not None:
            told[event.case_id].append(f"{event.at.isoformat()} {plain.decode()}")
    return {
        "cases": [
            {
                "case_id": case.id,
                "kind": case.kind,
                "status": case.status,
                "opened_at": case.opened_at,
                "first_response_at": case.first_response_at,
                "resolved_at": case.resolved_at,
                "resolution_code": case.resolution_code,
                "closed_at": case.closed_at,
                "replies_to_you": "\n".join(told.get(case.id, [])),
            }
            for case in cases
        ]
    }


def erase_customer(session: Session, customer_id: int) -> None:
    SubjectRepository(session).erase(customer_id)
