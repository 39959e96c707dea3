"""The rewards part of a customer's data rights. Erasure leaves the ledger as it is: append-only,
under the customer's pseudonym, so its sums never move (ADR 0024)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from followup.rewards.repository import SubjectRepository


def export_customer(session: Session, customer_id: int) -> dict[str, list[dict[str, Any]]]:
    repo = SubjectRepository(session)
    account = repo.account(customer_id)
    return {
        "rewards": [
            {
                "delta": row.delta,
                "balance_after": row.balance_after,
                "reason": row.reason,
                "followup_id": row.followup_id,
                "created_at": row.created_at,
            }
            for row in repo.entries(customer_id)
        ],
        "reward_balance": [
            {"balance": 0 if account is None else account.balance, "updated_at": getattr(account, "updated_at", None)}
        ],
    }
