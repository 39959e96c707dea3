"""The follow-ups part of a customer's data rights."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from followup.followups.enums import OPEN_STATUSES, FollowupStatus
from followup.followups.repository import FollowupRepository, SubjectRepository


def export_customer(session: Session, customer_id: int) -> dict[str, list[dict[str, Any]]]:
    rows = SubjectRepository(session).followups(customer_id)
    history = FollowupRepository(session).history([row.id for row in rows])
    return {
        "followups": [
            {
                "followup_id": row.id,
                "strategy_id": row.strategy_id,
                "event_type": row.event_type,
                "status": row.status,
                "reason": row.reason,
                "channel": row.channel,
                "planned_at": row.planned_at,
                "invited_at": row.invited_at,
                "responded_at": row.responded_at,
                "closed_at": row.closed_at,
                "history": "; ".join(
                    f"{h.at.isoformat()} {h.action}" + (f" ({h.reason})" if h.reason else "")
                    for h in history.get(row.id, [])
                ),
            }
            for row in rows
        ]
    }


def erase_customer(session: Session, customer_id: int, *, now: dt.datetime) -> None:
    """Open follow-ups stop (suppressed, reason `erased`): nothing more goes out. Closed ones stay
    for response rates and uplift."""
    stopped = SubjectRepository(session).stop_open(customer_id, open_statuses=OPEN_STATUSES, now=now)
    if stopped:
        FollowupRepository(session).add_history(
            [(fid, now, FollowupStatus.SUPPRESSED, "erased", None) for fid in stopped]
        )
