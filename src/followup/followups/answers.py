"""Answers: the customer's rating closes the follow-up, grants its reward and opens any case;
the optional questions after it may open a case of their own.

Every way an answer comes in (the survey page's link, an SMS reply, an agent on a call) records
it through `record_answer`: the follow-up, who answered and how, the answers. The reward, the
case and the single use are the same whichever way it came.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from followup.cases import service as cases
from followup.customers import service as customers
from followup.dispatch import service as dispatch
from followup.followups.enums import OPEN_STATUSES, FollowupStatus
from followup.followups.outreach import queue_interview_confirmation
from followup.followups.repository import FollowupRepository
from followup.followups.schemas import AnswerOutcome, FollowupPlan
from followup.kernel.actors import SYSTEM
from followup.kernel.crypto import KeyProvider
from followup.rewards import service as rewards
from followup.surveys import service as surveys
from followup.surveys.service import InvitationInvalid
from followup.webhooks import service as webhooks


class AnswerSource(StrEnum):
    """Who answered, and how."""

    PAGE = "page"  # the customer, on the survey page of their link
    SMS_REPLY = "sms_reply"  # the customer, replying to an SMS invitation with a score
    AGENT = "agent"  # an agent, who asked the customer on a call


@dataclass(frozen=True)
class Answerer:
    source: AnswerSource
    channel: str | None = None  # the channel the answer came back through, when it matters


def record_rating(
    session: Session,
    token: str,
    answers: dict[str, Any],
    *,
    now: dt.datetime,
    keys: KeyProvider,
    slas: cases.Slas | None = None,
) -> AnswerOutcome:
    """The one-click answer on the survey page, through its link's token."""
    opened = surveys.open_invitation(session, token, now=now)
    return record_answer(
        session,
        opened.invitation.followup_id,
        answers,
        by=Answerer(AnswerSource.PAGE),
        now=now,
        opened=opened,
        slas=slas,
    )


def record_answer(
    session: Session,
    followup_id: int,
    answers: dict[str, Any],
    *,
    by: Answerer,
    now: dt.datetime,
    opened: surveys.OpenInvitation | None = None,
    slas: cases.Slas | None = None,
) -> AnswerOutcome:
    """The rating of a follow-up, with its reward and any detractor case (due by `slas`, the
    settings' case deadlines), in the caller's transaction; the follow-up's open invitation is
    found unless the caller opened it (a link). InvitationInvalid when the follow-up is answered,
    closed or expired."""
    if opened is None:
        opened = surveys.open_followup_invitation(session, followup_id, now=now, channel=by.channel)
    repo = FollowupRepository(session)
    followup = repo.get(opened.invitation.followup_id, lock=True)
    if followup is None or followup.status not in OPEN_STATUSES:
        raise InvitationInvalid("This link is not valid any more.")
    response = surveys.record_rating(session, opened, answers=answers, source=by.source, now=now)
    followup.status = FollowupStatus.RESPONDED
    followup.responded_at = now
    followup.closed_at = now
    followup.next_step = None
    followup.due_at = None
    repo.record(followup.id, at=now, action=FollowupStatus.RESPONDED, detail=response.channel)
    dispatch.mark_answered(session, followup.id, channel=opened.invitation.channel, now=now)
    customers.note_response(session, followup.customer_id, channel=response.channel, nps=response.nps, at=now)
    external_id = customers.external_ids(session, [followup.customer_id]).get(followup.customer_id, "")
    points = FollowupPlan.model_validate(followup.plan).reward_points
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
        slas=slas,
    )
    said = surveys.yes_no_answer(opened, response)  # "Was this you?": a "no" opens a security case
    if said == "no":
        case = cases.open_for_denial(
            session,
            customer_id=followup.customer_id,
            followup_id=followup.id,
            response_id=response.id,
            now=now,
            slas=slas,
        )
    webhooks.publish(
        session,
        "response.created",
        {
            "response_id": response.id,
            "followup_id": followup.id,
            "strategy_id": followup.strategy_id,
            "customer_id": external_id,
            "channel": response.channel,
            "source": by.source,
            "nps": response.nps,
            "csat": response.csat,
            "reward_points": granted,
            "case_id": case.id if case else None,
        },
        now=now,
    )
    return AnswerOutcome(
        response_id=response.id,
        followup_id=followup.id,
        reward_points=granted,
        case_ids=(case.id,) if case else (),
        said=said,
    )


def record_details(
    session: Session,
    token: str,
    answers: dict[str, Any],
    *,
    now: dt.datetime,
    keys: KeyProvider,
    slas: cases.Slas | None = None,
) -> AnswerOutcome:
    """The optional questions after the rating; a comment raising a security concern opens a case;
    a booked interview is noted in the follow-up's history and confirmed by email.

    surveys.SlotTaken when the interview slot chosen went to someone else: roll back."""
    opened = surveys.open_invitation(session, token, now=now)
    response, texts, interview_id = surveys.record_details(session, opened, answers=answers, keys=keys, now=now)
    confirmation_queued = False
    interview = surveys.describe_booking(session, interview_id) if interview_id is not None else None
    if interview is not None:
        repo = FollowupRepository(session)
        followup = repo.get(response.followup_id)
        if followup is not None:
            repo.record(followup.id, at=now, action="interview_booked", detail=interview.starts_at.isoformat())
            confirmation_queued = queue_interview_confirmation(session, followup, interview, now=now, keys=keys)
    case = cases.open_for_comment(
        session,
        customer_id=response.customer_id,
        followup_id=response.followup_id,
        response_id=response.id,
        texts=texts.values(),
        now=now,
        slas=slas,
    )
    return AnswerOutcome(
        response_id=response.id,
        followup_id=response.followup_id,
        reward_points=0,
        case_ids=(case.id,) if case else (),
        interview_id=interview_id,
        confirmation_queued=confirmation_queued,
    )
