"""Points, through an append-only ledger keyed for idempotency."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from followup.kernel.actors import Actor
from followup.kernel.errors import InvalidInput
from followup.privacy import service as privacy
from followup.rewards.models import RewardAccount, RewardEntry
from followup.rewards.repository import RewardRepository
from followup.rewards.schemas import RewardEntryOut, RewardsOut
from followup.webhooks import service as webhooks


def grant_points(
    session: Session,
    customer_id: int,
    points: int,
    *,
    idempotency_key: str,
    reason: str,
    followup_id: int | None,
    actor: Actor,
    subject_id: str,
    now: dt.datetime,
) -> RewardEntry | None:
    """Grant points once per idempotency key. Returns the new entry, or None if already granted.

    The account row is locked before the ledger is read so that two grants for the same customer
    serialise; the unique key on the ledger is the backstop if they race anyway.
    """
    if points <= 0:
        raise InvalidInput("points to grant must be positive", field="points")
    repo = RewardRepository(session)
    account = repo.lock_account(customer_id)
    if repo.entry_by_key(idempotency_key) is not None:
        return None
    if account is None:
        account = RewardAccount(customer_id=customer_id, balance=0, updated_at=now)
        repo.add(account)
        session.flush()
    old_balance = account.balance
    account.balance = old_balance + points
    account.updated_at = now
    entry = RewardEntry(
        customer_id=customer_id,
        delta=points,
        balance_after=account.balance,
        reason=reason,
        idempotency_key=idempotency_key,
        followup_id=followup_id,
        actor=str(actor),
        created_at=now,
    )
    repo.add(entry)
    session.flush()
    privacy.record_audit(
        session,
        actor=actor,
        subject_type="customer",
        subject_id=subject_id,
        event="reward.granted",
        now=now,
        old={"balance": old_balance},
        new={"balance": account.balance, "points": points, "reason": reason},
    )
    webhooks.publish(
        session,
        "reward.granted",
        {
            "customer_id": subject_id,
            "entry_id": entry.id,
            "points": points,
            "balance": account.balance,
            "reason": reason,
            "followup_id": followup_id,
        },
        now=now,
    )
    return entry


def describe_rewards(session: Session, customer_id: int, *, subject_id: str, limit: int = 100) -> RewardsOut:
    repo = RewardRepository(session)
    account = session.get(RewardAccount, customer_id)
    entries = repo.entries(customer_id, limit=limit)
    return RewardsOut(
        customer_id=subject_id,
        balance=account.balance if account else 0,
        entries=[
            RewardEntryOut(
                id=e.id,
                delta=e.delta,
                balance_after=e.balance_after,
                reason=e.reason,
                followup_id=e.followup_id,
                created_at=e.created_at,
            )
            for e in entries
        ],
    )


def granted_totals(session: Session) -> tuple[int, int]:
    """How many rewards were granted and how many points they carried, for the console's overview."""
    return RewardRepository(session).granted_totals()
