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
from followup.channels.capabilities import INAPP
from followup.customers import service as customers
from followup.dispatch import service as dispatch
from followup.followups.enums import FollowupStatus
from followup.followups.outreach import queue_interview_confirmation
from followup.followups.repository import FollowupRepository
from followup.followups.schemas import AnswerOutcome, AnswerRecorded, FollowupPlan
from followup.kernel import jobs
from followup.kernel.actors import SYSTEM
from followup.kernel.crypto import KeyProvider
from followup.rewards import service as rewards
from followup.surveys import service as surveys
from followup.surveys.service import InvitationInvalid
from followup.webhooks import service as webhooks

ANSWERED_JOB = "followup.answered"


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
    opened: surveys.OpenInvitation | None = None,
) -> AnswerOutcome:
    """The one-click answer on the survey page, through its link's token (already `opened` by a
    caller that needed the invitation first)."""
    if opened is None:
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
    closed or expired.

    The transaction holds what the customer's next page stands on: the answer, the follow-up's
    end, the reward and the case's row. The rest waits in the outbox for the worker
    (`finish_answer`), so an answer keeps the write lock, which every other answer queues for,
    as briefly as it can."""
    if opened is None:
        opened = surveys.open_followup_invitation(session, followup_id, now=now, channel=by.channel)
    followup = FollowupRepository(session).close_answered(opened.invitation.followup_id, now)
    if followup is None:
        raise InvitationInvalid("This link is not valid any more.")
    response = surveys.record_rating(session, opened, answers=answers, source=by.source, now=now)
    plan = FollowupPlan.model_validate(followup.plan)
    if INAPP in plan.channels:  # the customer's next look at the inbox must not offer it
        dispatch.withdraw_from_inbox(session, followup.id)
    points = plan.reward_points
    granted = 0
    if points > 0:
        found = customers.locale_and_external_id(session, followup.customer_id)
        entry = rewards.grant_points(
            session,
            followup.customer_id,
            points,
            idempotency_key=_reward_key(followup.id),
            reason="followup_response",
            followup_id=followup.id,
            actor=SYSTEM,
            subject_id=found[1] if found else "",
            now=now,
            announce=False,
        )
        granted = points if entry is not None else 0
    case_id = cases.open_for_rating(
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
        # At once, with its timeline, assignee and `security.concern`: the risk team hears now.
        denial = cases.open_for_denial(
            session,
            customer_id=followup.customer_id,
            followup_id=followup.id,
            response_id=response.id,
            now=now,
            slas=slas,
        )
        case_id = denial.id if denial else case_id
    recorded = AnswerRecorded(
        followup_id=followup.id,
        response_id=response.id,
        customer_id=followup.customer_id,
        strategy_id=followup.strategy_id,
        invitation_channel=opened.invitation.channel,
        channel=response.channel,
        source=by.source,
        nps=response.nps,
        csat=response.csat,
        reward_points=granted,
        case_id=case_id,
        at=now,
    )
    jobs.enqueue(session, ANSWERED_JOB, recorded.model_dump(mode="json"), now=now)
    return AnswerOutcome(
        response_id=response.id,
        followup_id=followup.id,
        reward_points=granted,
        case_ids=(case_id,) if case_id else (),
        said=said,
    )


def _reward_key(followup_id: int) -> str:
    return f"followup:{followup_id}:response"


def finish_answer(session: Session, recorded: AnswerRecorded) -> None:
    """What an answer left to the worker, dated when the customer answered: the follow-up's
    history line, the answered message, the customer's channel statistics, the case's timeline
    and assignee, and the `case.opened`, `reward.granted` and `response.created` webhooks."""
    at = recorded.at
    history = FollowupRepository(session)
    history.record(recorded.followup_id, at=at, action=FollowupStatus.RESPONDED, detail=recorded.channel)
    dispatch.mark_answered(session, recorded.followup_id, channel=recorded.invitation_channel, now=at)
    customers.note_response(session, recorded.customer_id, channel=recorded.channel, nps=recorded.nps, at=at)
    if recorded.case_id is not None:
        cases.settle_opened(session, recorded.case_id, now=at)
    external_id = customers.external_ids(session, [recorded.customer_id]).get(recorded.customer_id, "")
    if recorded.reward_points > 0:
        rewards.announce_grant(session, _reward_key(recorded.followup_id), subject_id=external_id, now=at)
    webhooks.publish(
        session,
        "response.created",
        {
            "response_id": recorded.response_id,
            "followup_id": recorded.followup_id,
            "strategy_id": recorded.strategy_id,
            "customer_id": external_id,
            "channel": recorded.channel,
            "source": recorded.source,
            "nps": recorded.nps,
            "csat": recorded.csat,
            "reward_points": recorded.reward_points,
            "case_id": recorded.case_id,
        },
        now=at,
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
