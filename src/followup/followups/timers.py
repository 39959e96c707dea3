"""Timers and the channel cascade: the steps the worker runs when a follow-up falls due.

planned ──invite──► invited ──remind──► reminded ──expire──► expired
   │                  │  └───────────────┴──answer──► responded   (answers.py)
   └─refused─► suppressed      (a refused or failed invitation cascades to the next channel,
                                or ends as suppressed / failed with the reason)

A timed cascade (`"channels": [{"channel": "push"}, {"channel": "sms", "if_not_opened_within":
"PT2H"}, …]`) adds `cascade` steps while the follow-up is invited: each falls due its wait after
the step before, and sends the next channel only if its condition still holds (nothing of the
follow-up opened, clicked or answered; or not answered), inside the customer's allowed hours.
All of it is one follow-up and one unit of the fatigue budget.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from followup.calls import service as calls
from followup.channels import capabilities
from followup.config import Settings
from followup.customers import service as customers
from followup.dispatch import service as dispatch
from followup.dispatch.schemas import MessageUndelivered
from followup.followups.enums import AWAITING_ANSWER, FollowupStatus, Reason, Step
from followup.followups.models import Followup
from followup.followups.outreach import queue_message
from followup.followups.repository import FollowupRepository
from followup.followups.schemas import FollowupPlan
from followup.kernel.crypto import KeyProvider
from followup.kernel.logging import get_logger
from followup.policy import service as policy
from followup.policy.schemas import Decision

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
    decisions: dict[int, Decision] = {}
    if not one_by_one:
        # The batch's reads in a few queries rather than a few per follow-up: the policy's answer
        # for every invitation, and the customers and data keys their messages are sealed under.
        customers.load_for_messages(session, {followup.customer_id for followup in due}, keys=keys)
        decisions = _invite_decisions(session, due, now=now, settings=settings)
    for followup in due:
        if not one_by_one:
            _run_step(session, followup, now=now, settings=settings, keys=keys, decision=decisions.get(followup.id))
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


def _check(
    session: Session,
    followup: Followup,
    plan: FollowupPlan,
    channels: Sequence[str],
    *,
    now: dt.datetime,
    settings: Settings,
) -> Decision:
    """The policy's answer for these channels now, asked as the follow-up's kind asks: a security
    check as a service message, at any hour."""
    return policy.check_channel(
        session,
        followup.customer_id,
        channels,
        now=now,
        settings=settings,
        purpose=plan.purpose,
        at_any_hour=plan.security_check,
    )


def _invite_decisions(
    session: Session, due: list[Followup], *, now: dt.datetime, settings: Settings
) -> dict[int, Decision]:
    invites = [
        (followup, FollowupPlan.model_validate(followup.plan)) for followup in due if followup.next_step == Step.INVITE
    ]
    decisions: dict[int, Decision] = {}
    for check in (False, True):  # feedback, then security checks: service, at any hour
        asked = [(followup, plan) for followup, plan in invites if plan.security_check is check]
        if not asked:
            continue
        found = policy.check_channels(
            session,
            [(followup.customer_id, plan.remaining_channels) for followup, plan in asked],
            now=now,
            settings=settings,
            purpose=asked[0][1].purpose,
            at_any_hour=check,
        )
        decisions.update((followup.id, decision) for (followup, _), decision in zip(asked, found, strict=True))
    return decisions


def _run_step(
    session: Session,
    followup: Followup,
    *,
    now: dt.datetime,
    settings: Settings,
    keys: KeyProvider,
    decision: Decision | None = None,
) -> None:
    if followup.next_step == Step.INVITE:
        _invite(session, followup, now=now, settings=settings, keys=keys, decision=decision)
    elif followup.next_step == Step.CASCADE:
        _cascade(session, followup, now=now, settings=settings, keys=keys)
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


def _invite(
    session: Session,
    followup: Followup,
    *,
    now: dt.datetime,
    settings: Settings,
    keys: KeyProvider,
    decision: Decision | None = None,
) -> None:
    """Send the first channel the policy allows now; `decision` is the policy's answer when the
    batch asked for it already."""
    plan = FollowupPlan.model_validate(followup.plan)
    channels = plan.remaining_channels
    if decision is None:
        decision = _check(session, followup, plan, channels, now=now, settings=settings)
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
        refused = _check(session, followup, plan, passed_over, now=now, settings=settings)
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
    _schedule_cascade(followup, plan, since=now)
    FollowupRepository(session).record(followup.id, at=now, action=FollowupStatus.INVITED, detail=channel)
    customers.note_followups(session, [(followup.customer_id, now)])


def _schedule_cascade(followup: Followup, plan: FollowupPlan, *, since: dt.datetime) -> None:
    """When the channel after the current one waits for a condition, its step falls due its wait
    after `since` (before any reminder or expiry set, which it then sets again itself)."""
    following = plan.channel_index + 1
    if plan.waits is None or following >= len(plan.channels):
        return
    wait = plan.waits[following]
    if wait is None or followup.invited_at is None:
        return
    due = since + dt.timedelta(seconds=wait[1])
    if due < followup.invited_at + dt.timedelta(seconds=plan.expire_after_s) and (
        followup.due_at is None or due <= followup.due_at
    ):
        followup.next_step, followup.due_at = Step.CASCADE, due


def _cascade(session: Session, followup: Followup, *, now: dt.datetime, settings: Settings, keys: KeyProvider) -> None:
    """A timed cascade's step: the next channel, if its condition holds."""
    plan = FollowupPlan.model_validate(followup.plan)
    following = plan.channel_index + 1
    if followup.status not in AWAITING_ANSWER or followup.invited_at is None or plan.waits is None:
        followup.next_step, followup.due_at = None, None
        return
    wait = plan.waits[following] if following < len(plan.channels) else None
    channel = plan.channels[following] if following < len(plan.channels) else None
    repo = FollowupRepository(session)
    engaged = dispatch.engaged(session, followup.id, answered_only=wait is not None and wait[0] == "answered")
    moved = plan.model_copy(update={"channel_index": following})
    if wait is None or channel is None or engaged:
        detail = f"{channel} not needed: the customer {'answered' if wait and wait[0] == 'answered' else 'opened'}"
        repo.record(followup.id, at=now, action="cascade_skipped", detail=detail)
    else:
        decision = _check(session, followup, plan, [channel], now=now, settings=settings)
        if decision.allowed and decision.deferred and decision.send_at is not None:
            followup.due_at = decision.send_at  # quiet hours: the step waits for the morning
            repo.record(followup.id, at=now, action="deferred", reason=decision.deferred, detail=channel)
            return
        expire_at = followup.invited_at + dt.timedelta(seconds=plan.expire_after_s)
        if decision.allowed and queue_message(
            session,
            followup,
            moved,
            step=Step.INVITE,
            channel=channel,
            expires_at=expire_at,
            now=now,
            settings=settings,
            keys=keys,
        ):
            followup.channel = channel
            condition = "opened" if wait[0] == "opened" else "answered"
            repo.record(
                followup.id,
                at=now,
                action="cascaded",
                reason=f"not_{condition}",
                detail=f"not {condition} in time; trying {channel}",
            )
        else:
            repo.record(followup.id, at=now, action="cascade_skipped", reason=decision.reason, detail=channel)
    followup.plan = moved.model_dump(mode="json", exclude_defaults=True)
    _after_invite(followup, moved, now=now)


def _after_invite(followup: Followup, plan: FollowupPlan, *, now: dt.datetime) -> None:
    """What falls due next once a cascade step is done: the next step, a reminder, or the expiry."""
    assert followup.invited_at is not None  # noqa: S101 - a cascade runs only for an invited follow-up
    expire_at = followup.invited_at + dt.timedelta(seconds=plan.expire_after_s)
    remind_at = followup.invited_at + dt.timedelta(seconds=plan.remind_after_s) if plan.remind_after_s else None
    if remind_at is not None and followup.status == FollowupStatus.INVITED and remind_at > now:
        followup.next_step, followup.due_at = Step.REMIND, remind_at
    else:
        followup.next_step, followup.due_at = Step.EXPIRE, expire_at
    _schedule_cascade(followup, plan, since=now)


def _remind(session: Session, followup: Followup, *, now: dt.datetime, settings: Settings, keys: KeyProvider) -> None:
    if followup.invited_at is None or followup.channel is None:  # set by _invite; a reminder needs both
        followup.next_step, followup.due_at = None, None
        return
    plan = FollowupPlan.model_validate(followup.plan)
    expire_at = followup.invited_at + dt.timedelta(seconds=plan.expire_after_s)
    followup.next_step, followup.due_at = Step.EXPIRE, expire_at
    if followup.status != FollowupStatus.INVITED or expire_at <= now or followup.channel == capabilities.PHONE:
        return  # a call is not reminded: it is tried again by itself (`calls.retry_time`)
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
    _schedule_cascade(followup, plan, since=followup.invited_at)
    FollowupRepository(session).record(followup.id, at=now, action=FollowupStatus.REMINDED, detail=followup.channel)


def _expire(session: Session, followup: Followup, *, now: dt.datetime) -> None:
    followup.next_step = None
    followup.due_at = None
    if followup.status in AWAITING_ANSWER:
        followup.status = FollowupStatus.EXPIRED
        followup.closed_at = now
        FollowupRepository(session).record(followup.id, at=now, action=FollowupStatus.EXPIRED)
        dispatch.withdraw_from_inbox(session, followup.id)
        calls.cancel_for_followup(session, followup.id, now=now)  # a call of an earlier channel too


def end_declined(session: Session, followup: Followup, *, reason: str, now: dt.datetime) -> None:
    """The customer declined on the phone (refused the survey, or asked never to be called): the
    follow-up ends without an answer, its contact spent (they were reached)."""
    followup.status = FollowupStatus.EXPIRED
    followup.reason = reason
    followup.next_step = None
    followup.due_at = None
    followup.closed_at = now
    FollowupRepository(session).record(followup.id, at=now, action="declined", reason=reason)


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
