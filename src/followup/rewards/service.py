"""Points, through an append-only ledger keyed for idempotency."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from followup.kernel.actors import Actor
from followup.kernel.errors import InvalidInput
from followup.privacy import service as privacy
from followup.rewards.models import RewardAccount
from followup.rewards.repository import NewEntry, RewardRepository
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
    announce: bool = True,
) -> int | None:
    """Grant points once per idempotency key. Returns the new ledger entry's id, or None if already
    granted. Without `announce`, `reward.granted` waits for the caller's `announce_grant`.

    The balance is credited first, which holds the account's row, so that two grants for the same
    customer serialise; then the ledger's unique key decides: an entry under the same key makes
    this grant a no-op, and the credit is taken back.
    """
    if points <= 0:
        raise InvalidInput("points to grant must be positive", field="points")
    repo = RewardRepository(session)
    balance = repo.credit(customer_id, points, now=now)
    entry_id = repo.add_entry_unless_keyed(
        NewEntry(
            customer_id=customer_id,
            delta=points,
            balance_after=balance,
            reason=reason,
            idempotency_key=idempotency_key,
            followup_id=followup_id,
            actor=str(actor),
            created_at=now,
        )
    )
    if entry_id is None:
        repo.take_back(customer_id, points)
        return None
    privacy.record_audit(
        session,
        actor=actor,
        subject_type="customer",
        subject_id=str(customer_id),
        event="reward.granted",
        now=now,
        old={"balance": balance - points},
        new={"balance": balance, "points": points, "reason": reason},
    )
    if announce:
        _announce(
            session,
            entry_id=entry_id,
            points=points,
            balance=balance,
            reason=reason,
            followup_id=followup_id,
            subject_id=subject_id,
            now=now,
        )
    return entry_id


def announce_grant(session: Session, idempotency_key: str, *, subject_id: str, now: dt.datetime) -> None:
    """`reward.granted` for the entry a grant without `announce` made."""
    entry = RewardRepository(session).entry_row(idempotency_key)
    if entry is not None:
        _announce(
            session,
            entry_id=entry.id,
            points=entry.delta,
            balance=entry.balance_after,
            reason=entry.reason,
            followup_id=entry.followup_id,
            subject_id=subject_id,
            now=now,
        )


def _announce(
    session: Session,
    *,
    entry_id: int,
    points: int,
    balance: int,
    reason: str,
    followup_id: int | None,
    subject_id: str,
    now: dt.datetime,
) -> None:
    webhooks.publish(
        session,
        "reward.granted",
        {
            "customer_id": subject_id,
            "entry_id": entry_id,
            "points": points,
            "balance": balance,
            "reason": reason,
            "followup_id": followup_id,
        },
        now=now,
    )


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
