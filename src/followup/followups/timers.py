"""Timers and the channel cascade: the steps the worker runs when a follow-up falls due.

planned ──invite──► invited ──remind──► reminded ──expire──► expired
   │                  │  └───────────────┴──answer──► responded   (answers.py)
   └─refused─► suppressed      (a refused or failed invitation cascades to the next channel,
                                or ends as suppressed / failed with the reason)
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from followup.config import Settings
from followup.customers import service as customers
from followup.dispatch.schemas import MessageUndelivered
from followup.followups.enums import AWAITING_ANSWER, FollowupStatus, Reason, Step
from followup.followups.models import Followup
from followup.followups.outreach import queue_message
from followup.followups.repository import FollowupRepository
from followup.followups.schemas import FollowupPlan
from followup.kernel.crypto import KeyProvider
from followup.kernel.logging import get_logger
from followup.policy import service as policy

log = get_logger(__name__)


def run_due_followups(
    session: Session,
    *,
    now: dt.datetime,
    settings: Settings,
    keys: KeyProvider,
    limit: int = 200,
    one_by_one: bool = False,
) -> int:
    """Run every due timer step (invite, remind, expire) in one transaction; returns how many.

    With `one_by_one`, each step runs in a savepoint of its own: a step that breaks (a bug, or
    stored data that no longer renders) would break the same way on every tick and take every
    step of its batch down with it; it ends its follow-up as failed (internal_error) instead, and
    the others go on. The worker runs a batch this way only after the batch as a whole failed, as
    flushing step by step costs the batched inserts.
    """
    repo = FollowupRepository(session)
    due = repo.claim_due(now, limit)
    for followup in due:
        if not one_by_one:
            _run_step(session, followup, now=now, settings=settings, keys=keys)
            continue
        step = followup.next_step
        try:
            with session.begin_nested():
                _run_step(session, followup, now=now, settings=settings, keys=keys)
        except (OperationalError, InterfaceError):
            raise  # the database, not this follow-up, is at fault
        except Exception as exc:  # noqa: BLE001 - one follow-up must never stop the others
            log.error("followup_step_crashed", followup_id=followup.id, step=step, error=type(exc).__name__)
            session.refresh(followup)
            close(session, followup, status=FollowupStatus.FAILED, reason=Reason.INTERNAL_ERROR, now=now)
    session.flush()
    return len(due)


def _run_step(session: Session, followup: Followup, *, now: dt.datetime, settings: Settings, keys: KeyProvider) -> None:
    if followup.next_step == Step.INVITE:
        _invite(session, followup, now=now, settings=settings, keys=keys)
    elif followup.next_step == Step.REMIND:
        _remind(session, followup, now=now, settings=settings, keys=keys)
    else:
        _expire(session, followup, now=now)


def close(
    session: Session, followup: Followup, *, status: FollowupStatus, reason: str | None, now: dt.datetime
) -> None:
    """End a follow-up without an answer (suppressed or failed), with the reason, and give its
    contact back to the fatigue budget."""
    followup.status = status
    followup.reason = reason
    followup.next_step = None
    followup.due_at = None
    followup.closed_at = now
    FollowupRepository(session).record(followup.id, at=now, action=status, reason=reason)
    policy.release_contact(session, followup.id, now=now)


def _invite(session: Session, followup: Followup, *, now: dt.datetime, settings: Settings, keys: KeyProvider) -> None:
    plan = FollowupPlan.model_validate(followup.plan)
    channels = plan.remaining_channels
    decision = policy.check_channel(session, followup.customer_id, channels, now=now, settings=settings)
    if not decision.allowed or decision.channel is None:
        close(session, followup, status=FollowupStatus.SUPPRESSED, reason=decision.reason, now=now)
        return
    if decision.deferred:
        followup.due_at = decision.send_at
        FollowupRepository(session).record(
            followup.id,
            at=now,
            action="deferred",
            reason=decision.deferred,
            detail=f"until {decision.send_at.isoformat() if decision.send_at else ''}",
        )
        return
    channel = decision.channel
    passed_over = channels[: channels.index(channel)]
    if passed_over:
        # A preferred channel refused now (e.g. consent withdrawn since planning) is a refusal
        # too: record why, so the console can explain why the customer was not emailed.
        refused = policy.check_channel(session, followup.customer_id, passed_over, now=now, settings=settings)
        FollowupRepository(session).record(
            followup.id,
            at=now,
            action="cascaded",
            reason=refused.reason,
            detail=f"{', '.join(passed_over)} refused; trying {channel}",
        )
    plan = plan.model_copy(update={"channel_index": plan.channels.index(channel)})
    followup.plan = plan.model_dump(mode="json", exclude_defaults=True)
    followup.status = FollowupStatus.INVITED
    followup.channel = channel
    followup.invited_at = now
    expire_at = now + dt.timedelta(seconds=plan.expire_after_s)
    if not queue_message(
        session,
        followup,
        plan,
        step=Step.INVITE,
        channel=channel,
        expires_at=expire_at,
        now=now,
        settings=settings,
        keys=keys,
    ):
        close(session, followup, status=FollowupStatus.FAILED, reason=Reason.UNREACHABLE, now=now)
        return
    if plan.remind_after_s:
        followup.next_step, followup.due_at = Step.REMIND, now + dt.timedelta(seconds=plan.remind_after_s)
    else:
        followup.next_step, followup.due_at = Step.EXPIRE, expire_at
    FollowupRepository(session).record(followup.id, at=now, action=FollowupStatus.INVITED, detail=channel)
    customers.note_followups(session, [(followup.customer_id, now)])


def _remind(session: Session, followup: Followup, *, now: dt.datetime, settings: Settings, keys: KeyProvider) -> None:
    if followup.invited_at is None or followup.channel is None:  # set by _invite; a reminder needs both
        followup.next_step, followup.due_at = None, None
        return
    plan = FollowupPlan.model_validate(followup.plan)
    expire_at = followup.invited_at + dt.timedelta(seconds=plan.expire_after_s)
    followup.next_step, followup.due_at = Step.EXPIRE, expire_at
    if followup.status != FollowupStatus.INVITED or expire_at <= now:
        return
    followup.status = FollowupStatus.REMINDED
    if not queue_message(
        session,
        followup,
        plan,
        step=Step.REMIND,
        channel=followup.channel,
        expires_at=expire_at,
        now=now,
        settings=settings,
        keys=keys,
    ):
        close(session, followup, status=FollowupStatus.FAILED, reason=Reason.UNREACHABLE, now=now)
        return
    FollowupRepository(session).record(followup.id, at=now, action=FollowupStatus.REMINDED, detail=followup.channel)


def _expire(session: Session, followup: Followup, *, now: dt.datetime) -> None:
    followup.next_step = None
    followup.due_at = None
    if followup.status in AWAITING_ANSWER:
        followup.status = FollowupStatus.EXPIRED
        followup.closed_at = now
        FollowupRepository(session).record(followup.id, at=now, action=FollowupStatus.EXPIRED)


def cascade_undelivered(session: Session, undelivered: MessageUndelivered, *, now: dt.datetime) -> None:
    """A message was refused at send time or failed for good: cascade to the next channel in the
    plan, or close the follow-up with the reason."""
    repo = FollowupRepository(session)
    followup = repo.get(undelivered.followup_id, lock=True)
    if followup is None or followup.status not in AWAITING_ANSWER:
        return
    reason, outcome, channel = undelivered.reason, undelivered.outcome, undelivered.channel
    if undelivered.step != Step.INVITE:
        # The reminder never reached the customer: the follow-up is still only invited.
        if followup.status == FollowupStatus.REMINDED:
            followup.status = FollowupStatus.INVITED
        repo.record(followup.id, at=now, action=f"reminder_{outcome}", reason=reason, detail=channel)
        return
    plan = FollowupPlan.model_validate(followup.plan)
    channels = plan.channels
    position = channels.index(channel) if channel in channels else len(channels)
    if position + 1 < len(channels):
        followup.plan = plan.model_copy(update={"channel_index": position + 1}).model_dump(
            mode="json", exclude_defaults=True
        )
        followup.status, followup.channel, followup.invited_at = FollowupStatus.PLANNED, None, None
        followup.next_step, followup.due_at = Step.INVITE, now
        repo.record(
            followup.id,
            at=now,
            action="cascaded",
            reason=reason,
            detail=f"{channel} {outcome}; trying {channels[position + 1]}",
        )
        return
    status = FollowupStatus.SUPPRESSED if outcome == "suppressed" else FollowupStatus.FAILED
    close(session, followup, status=status, reason=reason, now=now)
