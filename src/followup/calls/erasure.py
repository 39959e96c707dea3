"""The phone calls part of a customer's data rights: calls planned and made, without agents' notes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from followup.calls.repository import SubjectRepository


def export_customer(session: Session, customer_id: int) -> dict[str, list[dict[str, Any]]]:
    return {
        "calls": [
            {
                "call_id": task.id,
                "followup_id": task.followup_id,
                "status": task.status,
                "outcome": task.outcome,
                "attempts": task.attempts,
                "created_at": task.created_at,
                "closed_at": task.closed_at,
            }
            for task in SubjectRepository(session).tasks(customer_id)
        ]
    }


def erase_customer(session: Session, customer_id: int, *, now: dt.datetime) -> None:
    SubjectRepository(session).erase(customer_id, now=now)
