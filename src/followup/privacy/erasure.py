"""The consents part of a customer's data rights."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from followup.privacy.repository import PrivacyRepository, SubjectRepository


def export_customer(session: Session, customer_id: int) -> dict[str, list[dict[str, Any]]]:
    repo = PrivacyRepository(session)
    return {
        "consents": [
            {"purpose": row.purpose, "channel": row.channel, "granted": row.granted, "updated_at": row.updated_at}
            for row in repo.all_consents(customer_id)
        ],
        "consent_history": [
            {
                "purpose": row.purpose,
                "channel": row.channel,
                "granted": row.granted,
                "source": row.source,
                "notice_version": row.notice_version,
                "recorded_at": row.recorded_at,
            }
            for row in repo.ledger(customer_id)
        ],
    }


def erase_customer(session: Session, customer_id: int) -> None:
    """Consents and unsubscribe links go; the ledger stays as proof, naming no one."""
    SubjectRepository(session).erase(customer_id)
