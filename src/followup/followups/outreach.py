"""Outreach: the message a follow-up step sends, composed and queued for dispatch."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from followup.calls import service as calls
from followup.channels import capabilities
from followup.channels.capabilities import OptOut
from followup.channels.schemas import MessageContent
from followup.config import Settings
from followup.customers import service as customers
from followup.customers.contacts import ContactKind
from followup.dispatch import service as dispatch
from followup.followups.content import (
    PersonalTextFailed,
    personal_text,
    render_interview_confirmation,
    render_message,
    template_context,
)
from followup.followups.enums import Step
from followup.followups.models import Followup
from followup.followups.schemas import FollowupPlan
from followup.kernel.crypto import KeyProvider
from followup.kernel.logging import get_logger
from followup.policy import service as policy
from followup.privacy import service as privacy
from followup.surveys import service as surveys
from followup.surveys.schemas import BookedInterview, LocalizedText

log = get_logger(__name__)

# The message step of an interview's confirmation: one per follow-up (a survey offers one interview).
INTERVIEW_STEP = "interview"


def queue_message(
    session: Session,
    followup: Followup,
    plan: FollowupPlan,
    *,
    step: Step,
    channel: str,
    expires_at: dt.datetime,
    now: dt.datetime,
    settings: Settings,
    keys: KeyProvider,
) -> bool:
    """Open an invitation, compose the step's message and queue it; False when the customer or
    the survey version is gone and there is nothing to send. On the `phone` channel the step is a
    call in the strategy's queue instead, due inside the customer's calling hours (a call has no
    reminder: its own retries stand for one)."""
    customer = customers.get_by_id(session, followup.customer_id)
    version = surveys.get_version(session, plan.survey_version_id)
    if customer is None or version is None:
        return False
    if channel == capabilities.PHONE and step != Step.INVITE:
        return True
    token = surveys.create_invitation(
        session,
        followup_id=followup.id,
        customer_id=followup.customer_id,
        survey_version_id=version.id,
        channel=channel,
        expires_at=expires_at,
        now=now,
    )
    if channel == capabilities.PHONE:
        calls.create_task(
            session,
            followup_id=followup.id,
            customer_id=followup.customer_id,
            queue=plan.call_queue,
            max_attempts=plan.max_call_attempts,
            time_zone=customer.time_zone,
            window=settings.call_window,
            now=now,
        )
        return True
    unsubscribe_url = None
    found = capabilities.lookup(channel)
    if found is not None and found.opt_out is OptOut.LINK:
        unsubscribe_token = privacy.create_unsubscribe_link(
            session, followup.customer_id, purpose=plan.purpose, channel=channel, now=now
        )
        unsubscribe_url = f"{settings.public_url}/u/{unsubscribe_token}"
    title = LocalizedText.model_validate(version.title)
    content = render_message(
        step=step,
        locale=customer.locale,
        title=title,
        questions=surveys.questions_of(version),
        survey_url=f"{settings.public_url}/s/{token}",
        unsubscribe_url=unsubscribe_url,
        valid_days=max(1, (expires_at - now).days),
    )
    if plan.message:
        content = _personal(session, followup, plan, content, title=title, now=now)
    if plan.sender_name or plan.reply_to:
        content = content.model_copy(update={"sender_name": plan.sender_name, "reply_to": plan.reply_to})
    content = content.model_copy(
        update={"link_expires_at": expires_at, "purpose": plan.purpose, "at_any_hour": plan.security_check}
    )
    dispatch.queue_message(
        session,
        followup_id=followup.id,
        strategy_id=followup.strategy_id,
        customer_id=followup.customer_id,
        step=step,
        channel=channel,
        content=content,
        keys=keys,
        now=now,
    )
    return True


def _personal(
    session: Session,
    followup: Followup,
    plan: FollowupPlan,
    content: MessageContent,
    *,
    title: LocalizedText,
    now: dt.datetime,
) -> MessageContent:
    """The message in the strategy's own words; the survey's when the template does not fit this
    customer's data (logged without the data)."""
    assert plan.message is not None  # noqa: S101 - called only for a plan with templates
    snapshot = customers.snapshots(session, [followup.customer_id], stats_at=now).get(followup.customer_id)
    if snapshot is None:
        return content
    context = template_context(snapshot, event=plan.event, survey={"title": title.get(snapshot.locale)})
    try:
        subject, body = personal_text(plan.message, locale=snapshot.locale, context=context)
    except PersonalTextFailed as exc:
        # The cause's kind only: its text may quote the customer's data.
        cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else "empty"
        log.warning("template_failed", strategy=plan.strategy_key, followup_id=followup.id, error=cause)
        return content
    return content.model_copy(update={"subject": subject, "body": body, "short_body": None})


def queue_interview_confirmation(
    session: Session, followup: Followup, interview: BookedInterview, *, now: dt.datetime, keys: KeyProvider
) -> bool:
    """Queue the email confirming a booked interview, with its calendar invitation; False when the
    customer has no email address or has not consented to feedback email (the page then does not
    promise one).

    It goes through dispatch like every message, so it is retried, recorded in the outbox, and
    passes the contact policy again at send time (consent; quiet hours hold it until morning).
    """
    customer = customers.get_by_id(session, followup.customer_id)
    if customer is None or not customers.holds_contact(customer, ContactKind.EMAIL):
        return False
    consents = privacy.consents_for(session, [customer.id], purpose=policy.PURPOSE).get(customer.id, {})
    if not consents.get(capabilities.EMAIL):
        return False
    plan = FollowupPlan.model_validate(followup.plan)
    content = render_interview_confirmation(interview, locale=customer.locale).model_copy(
        update={"sender_name": plan.sender_name, "reply_to": plan.reply_to}
    )
    message = dispatch.queue_message(
        session,
        followup_id=followup.id,
        strategy_id=followup.strategy_id,
        customer_id=followup.customer_id,
        step=INTERVIEW_STEP,
        channel=capabilities.EMAIL,
        content=content,
        keys=keys,
        now=now,
    )
    return message is not None
