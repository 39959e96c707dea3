"""The follow-up state machine: planning, its timers, answers and their outcomes.

planned ──invite──► invited ──remind──► reminded ──expire──► expired
   │                  │  └───────────────┴──answer──► responded
   └─refused─► suppressed      (a refused or failed invitation cascades to the next channel,
                                or ends as suppressed / failed with the reason)
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from followup.cases import service as cases
from followup.config import Settings
from followup.customers import service as customers
from followup.customers.schemas import CustomerSnapshot
from followup.dispatch import service as dispatch
from followup.followups.content import render_message
from followup.followups.models import Followup
from followup.followups.repository import FollowupRepository, NewFollowup
from followup.followups.schemas import (
    OPEN_STATUSES,
    AnswerOutcome,
    FollowupOut,
    HistoryOut,
    PlanItem,
    PlanStats,
)
from followup.kernel.actors import SYSTEM
from followup.kernel.crypto import KeyProvider
from followup.kernel.logging import get_logger
from followup.policy import service as policy
from followup.policy.schemas import PlanningRequest
from followup.privacy import service as privacy
from followup.rewards import service as rewards
from followup.surveys import service as surveys
from followup.surveys.schemas import LocalizedText
from followup.surveys.service import InvitationInvalid

MESSAGE_OUTCOME_JOB = "followups.message_outcome"
INTERNAL_ERROR = "internal_error"

log = get_logger(__name__)


def plan_followups(
    session: Session,
    items: Sequence[PlanItem],
    *,
    now: dt.datetime,
    settings: Settings,
    snapshots: Mapping[int, CustomerSnapshot] | None = None,
) -> PlanStats:
    """Insert a follow-up for every item: planned when the policy allows, suppressed with the
    reason when it does not. Bulk reads and bulk inserts: this runs inside event ingest."""
    stats = PlanStats()
    if not items:
        return stats
    to_check = [item for item in items if item.preset_reason is None]
    decisions = iter(
        policy.check_planning(
            session,
            [
                PlanningRequest(
                    customer_id=i.customer_id,
                    strategy_id=i.strategy_id,
                    channels=i.channels,
                    recontact_days=i.recontact_days,
                    send_at=i.send_at,
                )
                for i in to_check
            ],
            now=now,
            settings=settings,
            snapshots=snapshots,
        )
    )
    plans: dict[tuple[object, ...], str] = {}
    rows: list[NewFollowup] = []
    notes: list[tuple[str, str | None]] = []
    for item in items:
        plan = _plan_json(item, plans)
        decision_reason: str | None
        if item.preset_reason is not None:
            decision_reason, deferred, send_at = item.preset_reason, None, None
        else:
            decision = next(decisions)
            decision_reason = None if decision.allowed else decision.reason
            deferred, send_at = decision.deferred, decision.send_at
        if decision_reason is not None:
            status, next_step, closed_at = "suppressed", None, now
        else:
            status, next_step, closed_at = "planned", "invite", None
        rows.append(
            NewFollowup(
                strategy_id=item.strategy_id,
                customer_id=item.customer_id,
                event_id=item.event_id,
                event_type=item.event_type,
                event_ref=item.event_ref,
                status=status,
                reason=decision_reason,
                plan=plan,
                next_step=next_step,
                due_at=send_at if next_step else None,
                planned_at=now,
                closed_at=closed_at,
            )
        )
        notes.append((decision_reason or "", deferred))

    inserted = FollowupRepository(session).insert_many(rows)
    history: list[tuple[int, dt.datetime, str, str | None, str | None]] = []
    reservations: list[tuple[int, int, int]] = []
    for row, (reason, deferred) in zip(rows, notes, strict=True):
        followup_id = inserted.get((row.strategy_id, row.event_id))
        if followup_id is None:
            stats.duplicates += 1
            continue
        if reason:
            stats.suppressed += 1
            stats.reasons[reason] = stats.reasons.get(reason, 0) + 1
            history.append((followup_id, now, "suppressed", reason, None))
            continue
        stats.planned += 1
        reservations.append((row.customer_id, row.strategy_id, followup_id))
        assert row.due_at is not None  # noqa: S101 - a planned follow-up always has its invite due
        history.append((followup_id, now, "planned", None, f"invite due {row.due_at.isoformat()}"))
        if deferred:
            stats.deferred += 1
            history.append((followup_id, now, "deferred", deferred, None))
    FollowupRepository(session).add_history(history)
    policy.reserve_contacts(session, reservations, now=now)
    return stats


def _plan_json(item: PlanItem, cache: dict[tuple[object, ...], str]) -> str:
    """The plan copied onto the follow-up, as JSON text; the same for every item of one strategy
    version, so it is encoded once per batch and strategy."""
    key = (
        item.strategy_key,
        item.channels,
        item.survey_version_id,
        item.reward_points,
        item.remind_after,
        item.expire_after,
    )
    encoded = cache.get(key)
    if encoded is None:
        encoded = json.dumps(
            {
                "strategy_key": item.strategy_key,
                "channels": list(item.channels),
                "channel_index": 0,
                "survey_version_id": item.survey_version_id,
                "reward_points": item.reward_points,
                "remind_after_s": int(item.remind_after.total_seconds()) if item.remind_after else None,
                "expire_after_s": int(item.expire_after.total_seconds()),
            }
        )
        cache[key] = encoded
    return encoded


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
            _refuse(session, followup, status="failed", reason=INTERNAL_ERROR, now=now)
    session.flush()
    return len(due)


def _run_step(session: Session, followup: Followup, *, now: dt.datetime, settings: Settings, keys: KeyProvider) -> None:
    if followup.next_step == "invite":
        _invite(session, followup, now=now, settings=settings, keys=keys)
    elif followup.next_step == "remind":
        _remind(session, followup, now=now, settings=settings, keys=keys)
    else:
        _expire(session, followup, now=now)


def _refuse(session: Session, followup: Followup, *, status: str, reason: str | None, now: dt.datetime) -> None:
    followup.status = status
    followup.reason = reason
    followup.next_step = None
    followup.due_at = None
    followup.closed_at = now
    FollowupRepository(session).record(followup.id, at=now, action=status, reason=reason)
    policy.release_contact(session, followup.id, now=now)


def _invite(session: Session, followup: Followup, *, now: dt.datetime, settings: Settings, keys: KeyProvider) -> None:
    plan = followup.plan
    channels = plan["channels"][plan.get("channel_index", 0) :]
    decision = policy.check_channel(session, followup.customer_id, channels, now=now, settings=settings)
    if not decision.allowed or decision.channel is None:
        _refuse(session, followup, status="suppressed", reason=decision.reason, now=now)
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
    followup.plan = {**plan, "channel_index": plan["channels"].index(channel)}
    followup.status = "invited"
    followup.channel = channel
    followup.invited_at = now
    expire_at = now + dt.timedelta(seconds=plan["expire_after_s"])
    _queue_message(
        session, followup, step="invite", channel=channel, expires_at=expire_at, now=now, settings=settings, keys=keys
    )
    if plan.get("remind_after_s"):
        followup.next_step, followup.due_at = "remind", now + dt.timedelta(seconds=plan["remind_after_s"])
    else:
        followup.next_step, followup.due_at = "expire", expire_at
    FollowupRepository(session).record(followup.id, at=now, action="invited", detail=channel)


def _remind(session: Session, followup: Followup, *, now: dt.datetime, settings: Settings, keys: KeyProvider) -> None:
    if followup.invited_at is None or followup.channel is None:  # set by _invite; a reminder needs both
        followup.next_step, followup.due_at = None, None
        return
    expire_at = followup.invited_at + dt.timedelta(seconds=followup.plan["expire_after_s"])
    followup.next_step, followup.due_at = "expire", expire_at
    if followup.status != "invited" or expire_at <= now:
        return
    followup.status = "reminded"
    _queue_message(
        session,
        followup,
        step="remind",
        channel=followup.channel,
        expires_at=expire_at,
        now=now,
        settings=settings,
        keys=keys,
    )
    FollowupRepository(session).record(followup.id, at=now, action="reminded", detail=followup.channel)


def _expire(session: Session, followup: Followup, *, now: dt.datetime) -> None:
    followup.next_step = None
    followup.due_at = None
    if followup.status in ("invited", "reminded"):
        followup.status = "expired"
        followup.closed_at = now
        FollowupRepository(session).record(followup.id, at=now, action="expired")


def _queue_message(
    session: Session,
    followup: Followup,
    *,
    step: str,
    channel: str,
    expires_at: dt.datetime,
    now: dt.datetime,
    settings: Settings,
    keys: KeyProvider,
) -> None:
    customer = customers.get_by_id(session, followup.customer_id)
    version = surveys.get_version(session, followup.plan["survey_version_id"])
    if customer is None or version is None:
        _refuse(session, followup, status="failed", reason="unreachable", now=now)
        return
    token = surveys.create_invitation(
        session,
        followup_id=followup.id,
        customer_id=followup.customer_id,
        survey_version_id=version.id,
        channel=channel,
        expires_at=expires_at,
        now=now,
    )
    unsubscribe_url = None
    if channel == "email":
        unsubscribe_token = privacy.create_unsubscribe_link(
            session, followup.customer_id, purpose=policy.PURPOSE, channel=channel, now=now
        )
        unsubscribe_url = f"{settings.public_url}/u/{unsubscribe_token}"
    opened_title = LocalizedText.model_validate(version.title)
    content = render_message(
        step=step,
        locale=customer.locale,
        title=opened_title,
        questions=surveys.questions_of(version),
        survey_url=f"{settings.public_url}/s/{token}",
        unsubscribe_url=unsubscribe_url,
        valid_days=max(1, (expires_at - now).days),
    )
    dispatch.queue_message(
        session,
        followup_id=followup.id,
        customer_id=followup.customer_id,
        step=step,
        channel=channel,
        content=content,
        keys=keys,
        now=now,
    )


def handle_message_outcome(session: Session, payload: Mapping[str, Any], *, now: dt.datetime) -> None:
    """A message was refused at send time or failed for good: cascade to the next channel in the
    plan, or close the follow-up with the reason."""
    repo = FollowupRepository(session)
    followup = repo.get(int(payload["followup_id"]), lock=True)
    if followup is None or followup.status not in ("invited", "reminded"):
        return
    reason, outcome, channel = payload.get("reason"), payload["outcome"], payload["channel"]
    if payload["step"] != "invite":
        # The reminder never reached the customer: the follow-up is still only invited.
        if followup.status == "reminded":
            followup.status = "invited"
        repo.record(followup.id, at=now, action=f"reminder_{outcome}", reason=reason, detail=channel)
        return
    channels = followup.plan["channels"]
    position = channels.index(channel) if channel in channels else len(channels)
    if position + 1 < len(channels):
        followup.plan = {**followup.plan, "channel_index": position + 1}
        followup.status, followup.channel, followup.invited_at = "planned", None, None
        followup.next_step, followup.due_at = "invite", now
        repo.record(
            followup.id,
            at=now,
            action="cascaded",
            reason=reason,
            detail=f"{channel} {outcome}; trying {channels[position + 1]}",
        )
        return
    _refuse(session, followup, status="suppressed" if outcome == "suppressed" else "failed", reason=reason, now=now)


def record_rating(
    session: Session, token: str, answers: dict[str, Any], *, now: dt.datetime, keys: KeyProvider
) -> AnswerOutcome:
    """The one-click answer, with its reward and any detractor case, in the caller's transaction."""
    opened = surveys.open_invitation(session, token, now=now)
    repo = FollowupRepository(session)
    followup = repo.get(opened.invitation.followup_id, lock=True)
    if followup is None or followup.status not in OPEN_STATUSES:
        raise InvitationInvalid("This link is not valid any more.")
    response = surveys.record_rating(session, opened, answers=answers, now=now)
    followup.status = "responded"
    followup.responded_at = now
    followup.closed_at = now
    followup.next_step = None
    followup.due_at = None
    repo.record(followup.id, at=now, action="responded", detail=response.channel)
    external_id = customers.external_ids(session, [followup.customer_id]).get(followup.customer_id, "")
    points = int(followup.plan.get("reward_points") or 0)
    granted = 0
    if points > 0:
        entry = rewards.grant_points(
            session,
            followup.customer_id,
            points,
            idempotency_key=f"followup:{followup.id}:response",
            reason="followup_response",
            followup_id=followup.id,
            actor=SYSTEM,
            subject_id=external_id,
            now=now,
        )
        granted = points if entry is not None else 0
    case = cases.open_for_rating(
        session,
        customer_id=followup.customer_id,
        followup_id=followup.id,
        response_id=response.id,
        nps=response.nps,
        csat=response.csat,
        now=now,
    )
    return AnswerOutcome(
        response_id=response.id, followup_id=followup.id, reward_points=granted, case_ids=(case.id,) if case else ()
    )


def record_details(
    session: Session, token: str, answers: dict[str, Any], *, now: dt.datetime, keys: KeyProvider
) -> AnswerOutcome:
    """The optional questions after the rating; a comment raising a security concern opens a case."""
    opened = surveys.open_invitation(session, token, now=now)
    response, texts = surveys.record_details(session, opened, answers=answers, keys=keys, now=now)
    case = cases.open_for_comment(
        session,
        customer_id=response.customer_id,
        followup_id=response.followup_id,
        response_id=response.id,
        texts=texts.values(),
        now=now,
    )
    return AnswerOutcome(
        response_id=response.id, followup_id=response.followup_id, reward_points=0, case_ids=(case.id,) if case else ()
    )


def list_followups(
    session: Session, *, customer_id: int | None, status: str | None, limit: int, offset: int
) -> tuple[list[FollowupOut], int]:
    repo = FollowupRepository(session)
    rows, total = repo.list_followups(
        customer_id=customer_id, strategy_id=None, status=status, limit=limit, offset=offset
    )
    history = repo.history(row.id for row in rows)
    messages = dispatch.summaries_for_followups(session, [row.id for row in rows])
    external = customers.external_ids(session, {row.customer_id for row in rows})
    return [
        FollowupOut(
            id=row.id,
            strategy=row.plan.get("strategy_key", ""),
            customer_id=external.get(row.customer_id, ""),
            event_id=row.event_ref,
            event_type=row.event_type,
            status=row.status,
            reason=row.reason,
            channel=row.channel,
            next_step=row.next_step,
            due_at=row.due_at,
            planned_at=row.planned_at,
            invited_at=row.invited_at,
            responded_at=row.responded_at,
            closed_at=row.closed_at,
            history=[
                HistoryOut(at=h.at, action=h.action, reason=h.reason, detail=h.detail) for h in history.get(row.id, [])
            ],
            messages=messages.get(row.id, []),
        )
        for row in rows
    ], total


def invited_in_period(
    session: Session, *, strategy_id: int | None, since: dt.datetime | None, until: dt.datetime | None
) -> list[Followup]:
    return FollowupRepository(session).in_period(strategy_id=strategy_id, since=since, until=until)


def count_by_status(session: Session) -> dict[str, int]:
    return FollowupRepository(session).count_by("status")


def count_by_reason(session: Session) -> dict[str, int]:
    """Why follow-ups were refused or ended without an answer (no_consent, fatigue, duplicate, …)."""
    return FollowupRepository(session).count_by("reason")
