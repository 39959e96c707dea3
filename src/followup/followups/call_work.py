"""Working the call queue: claiming the next call (skipping calls whose follow-up ended
meanwhile), the agent's script, and what each outcome does to the follow-up.

- `answered`: the agent's answers go through the one answer path (`answers.record_answer`, on
  channel `phone`, source `agent`): the same reward and the same cases as a page answer; the
  answers after the rating are recorded as the page's optional questions are.
- `no_answer`, `busy`: tried again at another time of day, up to the strategy's
  `max_call_attempts`; then the next channel of the strategy, or the follow-up ends (`no_answer`).
- `call_back`: due again when the customer asked (within 30 days); no attempt is spent.
- `wrong_number`: the phone contact point is marked invalid; the next channel, or the end.
- `refused`: the customer declined the survey; the follow-up ends.
- `do_not_call`: the customer's feedback consent on `phone` is withdrawn (source `agent_call`),
  and the follow-up ends.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

from sqlalchemy.orm import Session

from followup.calls import service as calls
from followup.calls.schemas import (
    CallHistoryItem,
    CallOut,
    CallOutcomeIn,
    CallRevealed,
    RecentFollowup,
    ScriptQuestion,
)
from followup.cases import service as cases
from followup.channels import capabilities
from followup.config import Settings
from followup.customers import service as customers
from followup.dispatch.schemas import MessageUndelivered
from followup.followups import timers
from followup.followups.answers import Answerer, AnswerSource, record_answer
from followup.followups.enums import AWAITING_ANSWER, Reason, Step
from followup.followups.repository import FollowupRepository
from followup.followups.schemas import FollowupPlan
from followup.kernel.actors import Actor
from followup.kernel.crypto import KeyProvider
from followup.kernel.errors import InvalidInput
from followup.policy import service as policy
from followup.privacy import service as privacy
from followup.surveys import service as surveys
from followup.surveys.schemas import RATING_SCALES, YES_NO, YES_NO_ANSWERS, LocalizedText, first_rating_question

GREETING = {
    "zh-CN": "您好，我是钱包的客户服务人员。想占用您一两分钟，了解一下您最近使用我们服务的感受，可以吗？",
    "en": "Hello, I'm calling from the wallet's customer care. Do you have a minute or two to tell us how your "
    "recent experience with us went?",
}
# A yes_no question's answers as the agent's script names them.
YES_NO_LABELS = {
    "zh-CN": {"yes": "是本人", "no": "不是本人"},
    "en": {"yes": "Yes, it was them", "no": "No, it was not them"},
}
RECENT = 5


def claim(session: Session, actor: Actor, *, settings: Settings, keys: KeyProvider, now: dt.datetime) -> CallOut | None:
    """The next call of the actor's queues, leased to them, with its script; None when none is due.
    A call whose follow-up ended meanwhile (answered on another channel, expired) is cancelled and
    the next one taken."""
    while True:
        task = calls.claim_next(session, actor, window=settings.call_window, now=now)
        if task is None:
            return None
        followup = FollowupRepository(session).get(task.followup_id)
        if followup is not None and followup.status in AWAITING_ANSWER:
            return describe(session, task, keys=keys, now=now)
        calls.finish(task, "cancelled", now=now)


def describe(session: Session, task: calls.CallRow, *, keys: KeyProvider, now: dt.datetime) -> CallOut:
    """The call as the agent works it: the script in the customer's language (greeting and the
    survey's questions), the masked number, and the customer's latest follow-ups."""
    customer = customers.get_by_id(session, task.customer_id)
    locale = customer.locale if customer and customer.locale in GREETING else "en"
    followup = FollowupRepository(session).get(task.followup_id)
    version = (
        surveys.get_version(session, FollowupPlan.model_validate(followup.plan).survey_version_id)
        if followup is not None
        else None
    )
    questions = surveys.questions_of(version) if version is not None else []
    title = LocalizedText.model_validate(version.title).get(locale) if version is not None else ""
    recent, _ = surveys_recent(session, task.customer_id)
    emails = calls.staff_emails(session, [task.agent_id] + [agent for _, _, agent in calls.history(session, task)])
    return CallOut(
        id=task.id,
        status=task.status,
        queue=task.queue,
        due_at=task.due_at,
        lease_until=task.lease_until if task.status == "claimed" else None,
        attempts=task.attempts,
        max_attempts=task.max_attempts,
        agent=emails.get(task.agent_id) if task.agent_id else None,
        customer_id=customer.external_id if customer else "",
        locale=locale,
        time_zone=customer.time_zone if customer else "UTC",
        number=calls.masked_number(session, task, keys=keys),
        greeting=GREETING[locale],
        survey_title=title,
        questions=[_script_question(question, locale) for question in questions if question.type != "interview"],
        recent=recent,
        history=[
            CallHistoryItem(at=at, outcome=outcome, agent=emails.get(agent) if agent else None)
            for at, outcome, agent in calls.history(session, task)
        ],
    )


def surveys_recent(session: Session, customer_id: int) -> tuple[list[RecentFollowup], int]:
    rows = FollowupRepository(session).latest_for_customer(customer_id, limit=RECENT)
    scores = surveys.scores_for_followups(session, [row.id for row in rows])
    return [
        RecentFollowup(
            id=row.id,
            strategy=FollowupPlan.model_validate(row.plan).strategy_key,
            status=row.status,
            channel=row.channel,
            planned_at=row.planned_at,
            nps=scores.get(row.id, (None, None))[0],
            csat=scores.get(row.id, (None, None))[1],
        )
        for row in rows
    ], len(rows)


def _script_question(question: Any, locale: str) -> ScriptQuestion:
    scale = RATING_SCALES.get(question.type)
    options = (
        [{"id": option.id, "label": option.label.get(locale)} for option in question.options]
        if question.type == "choice"
        else None
    )
    if question.type == YES_NO:  # the agent picks the customer's yes or no as they would a choice
        options = [{"id": said, "label": YES_NO_LABELS[locale][said]} for said in YES_NO_ANSWERS]
    return ScriptQuestion(
        id=question.id,
        type=question.type,
        prompt=question.prompt.get(locale),
        required=question.required,
        scale=scale,
        options=options,
    )


def reveal(
    session: Session,
    task: calls.CallRow,
    reason: str,
    *,
    actor: Actor,
    settings: Settings,
    keys: KeyProvider,
    now: dt.datetime,
) -> CallRevealed:
    number = calls.reveal(session, task, reason, actor=actor, keys=keys, now=now)
    template = settings.call_url_template
    url = template.replace("{number}", quote(number, safe="+")) if template else f"tel:{number}"
    return CallRevealed(number=number, call_url=url)


def record_outcome(
    session: Session,
    task: calls.CallRow,
    body: CallOutcomeIn,
    *,
    actor: Actor,
    settings: Settings,
    keys: KeyProvider,
    now: dt.datetime,
) -> CallOut:
    """What the agent says came of the call (see the module's docstring)."""
    calls.check_holder(task, actor, now=now)
    followup = FollowupRepository(session).get(task.followup_id, lock=True)
    outcome = body.outcome
    if outcome != "answered" and body.answers:
        raise InvalidInput("Answers go with the outcome answered only.", field="answers")
    if outcome == "call_back":
        if body.at is None or not now < body.at <= now + calls.CALL_BACK_LIMIT:
            raise InvalidInput("call_back needs `at`: a time after now and within 30 days.", field="at")
        calls.record(session, task, outcome, actor=actor, now=now, at=body.at.isoformat())
        calls.reschedule(task, body.at)
        return describe(session, task, keys=keys, now=now)
    if followup is None or followup.status not in AWAITING_ANSWER:
        calls.record(session, task, outcome, actor=actor, now=now)
        calls.finish(task, "cancelled", now=now)
        return describe(session, task, keys=keys, now=now)
    if outcome == "answered":
        _answered(session, task, body.answers or {}, settings=settings, keys=keys, now=now)
        calls.record(session, task, outcome, actor=actor, now=now)
        calls.finish(task, "done", now=now)
    elif outcome in ("no_answer", "busy"):
        task.attempts += 1
        calls.record(session, task, outcome, actor=actor, now=now, attempt=task.attempts)
        if task.attempts < task.max_attempts:
            zone = calls.time_zone_of(session, task.customer_id)
            calls.reschedule(task, calls.retry_time(now, time_zone=zone, window=settings.call_window))
        else:
            calls.finish(task, "failed", now=now)
            _move_on(session, task, Reason.NO_ANSWER, now=now)
    elif outcome == "wrong_number":
        calls.mark_wrong_number(session, task, actor=actor, keys=keys, now=now)
        calls.record(session, task, outcome, actor=actor, now=now)
        calls.finish(task, "failed", now=now)
        _move_on(session, task, Reason.WRONG_NUMBER, now=now)
    else:  # refused, do_not_call
        if outcome == "do_not_call":
            external = customers.external_ids(session, [task.customer_id]).get(task.customer_id, "")
            privacy.record_consents(
                session,
                task.customer_id,
                {policy.PURPOSE: {capabilities.PHONE: False}},
                subject_id=external,
                source="agent_call",
                built_in_notice_version=settings.privacy_notice_version,
                actor=actor,
                now=now,
            )
        calls.record(session, task, outcome, actor=actor, now=now)
        calls.finish(task, "done", now=now)
        reason = Reason.DO_NOT_CALL if outcome == "do_not_call" else Reason.CALL_REFUSED
        timers.end_declined(session, followup, reason=reason, now=now)
    session.flush()
    return describe(session, task, keys=keys, now=now)


def _answered(
    session: Session,
    task: calls.CallRow,
    answers: dict[str, Any],
    *,
    settings: Settings,
    keys: KeyProvider,
    now: dt.datetime,
) -> None:
    """The rating through the one answer path, then the other answers as the page's optional
    questions; a comment raising a security concern opens a security case."""
    opened = surveys.open_followup_invitation(session, task.followup_id, now=now, channel=capabilities.PHONE)
    rating = str(first_rating_question(opened.questions).id)
    if rating not in answers:
        raise InvalidInput(f"Give the rating question's answer ('{rating}') for an answered call.", field="answers")
    outcome = record_answer(
        session,
        task.followup_id,
        {rating: answers[rating]},
        by=Answerer(AnswerSource.AGENT, channel=capabilities.PHONE),
        now=now,
        opened=opened,
        slas=settings.case_sla,
    )
    rest = {key: value for key, value in answers.items() if key != rating}
    if not rest:
        return
    after = surveys.reopen_invitation(session, opened, now=now)
    response, texts, _ = surveys.record_details(session, after, answers=rest, keys=keys, now=now)
    cases.open_for_comment(
        session,
        customer_id=response.customer_id,
        followup_id=response.followup_id,
        response_id=outcome.response_id,
        texts=texts.values(),
        now=now,
        slas=settings.case_sla,
    )


def _move_on(session: Session, task: calls.CallRow, reason: Reason, *, now: dt.datetime) -> None:
    """The calls came to nothing: the strategy's next channel, or the follow-up's end."""
    timers.cascade_undelivered(
        session,
        MessageUndelivered(
            message_id=0,
            followup_id=task.followup_id,
            step=Step.INVITE,
            channel=capabilities.PHONE,
            outcome="failed",
            reason=reason,
        ),
        now=now,
    )
