"""The answers part of a customer's data rights: responses and interview bookings."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy.orm import Session

from followup.kernel.crypto import KeyProvider
from followup.surveys.repository import SubjectRepository
from followup.surveys.service import describe_responses


def export_customer(session: Session, customer_id: int, *, keys: KeyProvider) -> dict[str, list[dict[str, Any]]]:
    repo = SubjectRepository(session)
    responses = []
    for out in describe_responses(session, repo.responses(customer_id), keys=keys):
        row = out.model_dump(mode="json", exclude={"customer_id"})
        row["answers"] = json.dumps(row["answers"], ensure_ascii=False, sort_keys=True)
        row["response_id"] = row.pop("id")
        responses.append(row)
    bookings = [
        {
            "booking_id": row.id,
            "followup_id": row.followup_id,
            "starts_at": row.starts_at,
            "ends_at": row.ends_at,
            "location": json.dumps(row.location, ensure_ascii=False, sort_keys=True),
            "booked_at": row.booked_at,
        }
        for row in repo.bookings(customer_id)
    ]
    return {"responses": responses, "interviews": bookings}


def erase_customer(session: Session, customer_id: int, *, now: dt.datetime) -> None:
    """Scores stay for NPS history, detached from the person; texts go and open links expire."""
    SubjectRepository(session).erase(customer_id, now=now)
