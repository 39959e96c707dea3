"""Working a case where it reaches the customer: a reply on their channel, and "did we solve it?"
after a resolution. The case itself (states, timeline, deadlines) is the cases domain's; this
module adds the messages, which sit in a layer above it.

Both go out as `service` messages: quiet hours hold, the customer's `service` consent per channel
is asked (given unless withdrawn), and the feedback fatigue budget is not spent.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from followup.cases import service as cases
from followup.cases.schemas import CaseDetail, CaseResolve
from followup.channels import capabilities
from followup.channels.schemas import MessageContent
from followup.config import Settings
from followup.customers import service as customers
from followup.dispatch import service as dispatch
from followup.kernel.actors import Actor
from followup.kernel.crypto import KeyProvider
from followup.kernel.errors import Conflict
from followup.privacy import service as privacy
from followup.privacy.scrubbing import PAYMENT_AND_IDENTITY, scrub

# The channels a reply may take, in the order tried when the case came from no message.
REPLY_CHANNELS = (capabilities.EMAIL, capabilities.SMS, capabilities.INAPP)

_TEXT = {
    "zh-CN": {
        "reply_subject": "关于您的反馈（编号 {case}）",
        "greeting": "您好，",
        "resurvey_subject": "问题解决了吗？",
        "resurvey_body": "我们已处理您反馈的问题（编号 {case}）。问题解决了吗？点击下方链接告诉我们。",
        "resurvey_short": "我们已处理您反馈的问题，问题解决了吗？",
        "resurvey_label": "告诉我们",
        "footer": "这是关于您本人反馈的服务消息。",
    },
    "en": {
        "reply_subject": "About your feedback (case {case})",
        "greeting": "Hello,",
        "resurvey_subject": "Did we solve it?",
        "resurvey_body": "We have worked on what you told us (case {case}). Did we solve it? One click tells us.",
        "resurvey_short": "We have worked on what you told us. Did we solve it?",
        "resurvey_label": "Tell us",
        "footer": "This is a service message about your own feedback.",
    },
}


class NoChannel(Conflict):
    code = "no_channel"


def _channel_for(session: Session, case: cases.CaseRow) -> str:
    """The channel that reached the customer for the case's follow-up, or else the first of email,
    SMS and the in-app inbox they can be reached on."""
    snapshot = customers.snapshots(session, [case.customer_id]).get(case.customer_id)
    if snapshot is None:
        raise NoChannel("The customer of this case no longer exists.", field="case_id")
    tried = dispatch.last_channel(session, case.followup_id) if case.followup_id else None
    for channel in ([tried] if tried else []) + list(REPLY_CHANNELS):
        found = capabilities.lookup(channel)
        if found is not None and (found.address is None or snapshot.has_contact(found.address)):
            return channel
    raise NoChannel("The customer cannot be reached on email, SMS or the in-app inbox.", field="case_id")


def _locale(session: Session, case: cases.CaseRow) -> str:
    customer = customers.get_by_id(session, case.customer_id)
    locale = customer.locale if customer else "en"
    return locale if locale in _TEXT else "en"


def _unsubscribe(
    session: Session, case: cases.CaseRow, channel: str, *, settings: Settings, now: dt.datetime
) -> str | None:
    if channel != capabilities.EMAIL:
        return None
    token = privacy.create_unsubscribe_link(session, case.customer_id, purpose="service", channel=channel, now=now)
    return f"{settings.public_url}/u/{token}"


def reply(
    session: Session,
    case: cases.CaseRow,
    text: str,
    *,
    actor: Actor,
    settings: Settings,
    keys: KeyProvider,
    now: dt.datetime,
) -> CaseDetail:
    """Send the customer `text` about their case on their channel, and put it on the timeline.

    A card, security code or ID number an agent pasted is scrubbed before it is sent or kept; a
    phone number or email stays, as the customer must read our hotline and address."""
    text = scrub(text, kinds=PAYMENT_AND_IDENTITY)
    if case.status == "closed":
        raise cases.CaseClosed(f"Case {case.id} is closed; reopen it to write to the customer.", field="case_id")
    channel = _channel_for(session, case)
    locale = _locale(session, case)
    words = _TEXT[locale]
    count = sum(1 for event in cases.describe_case(session, case, keys=keys, now=now).timeline if event.kind == "reply")
    message = dispatch.queue_service_message(
        session,
        customer_id=case.customer_id,
        key=f"case-{case.id}-reply-{count + 1}",
        step="case_reply",
        channel=channel,
        content=MessageContent(
            locale=locale,
            subject=words["reply_subject"].format(case=case.id),
            greeting=words["greeting"],
            body=text,
            short_body=text,
            link="",
            link_label="",
            unsubscribe_url=_unsubscribe(session, case, channel, settings=settings, now=now),
            footer=words["footer"],
        ),
        keys=keys,
        now=now,
    )
    session.flush()
    cases.record_reply(
        session,
        case,
        text,
        channel=channel,
        message_id=message.id if message else None,
        actor=actor,
        keys=keys,
        now=now,
    )
    return cases.describe_case(session, case, keys=keys, now=now)


def resolve(
    session: Session,
    case: cases.CaseRow,
    body: CaseResolve,
    *,
    actor: Actor,
    settings: Settings,
    keys: KeyProvider,
    now: dt.datetime,
) -> CaseDetail:
    """Resolve the case and ask the customer, on their channel, whether it is solved: "yes" closes
    the case and asks a CSAT, "no" reopens it. A customer who cannot be reached is not asked."""
    token = cases.resolve(
        session,
        case,
        code=body.code,
        root_cause=body.root_cause,
        action=body.action,
        actor=actor,
        keys=keys,
        now=now,
    )
    try:
        channel = _channel_for(session, case)
    except NoChannel:
        return cases.describe_case(session, case, keys=keys, now=now)
    locale = _locale(session, case)
    words = _TEXT[locale]
    dispatch.queue_service_message(
        session,
        customer_id=case.customer_id,
        key=f"case-{case.id}-resurvey-{case.reopened_count}",
        step="case_resurvey",
        channel=channel,
        content=MessageContent(
            locale=locale,
            subject=words["resurvey_subject"],
            greeting=words["greeting"],
            body=words["resurvey_body"].format(case=case.id),
            short_body=words["resurvey_short"],
            question=words["resurvey_subject"],
            link=f"{settings.public_url}/c/{token}",
            link_label=words["resurvey_label"],
            unsubscribe_url=_unsubscribe(session, case, channel, settings=settings, now=now),
            footer=words["footer"],
        ),
        keys=keys,
        now=now,
    )
    session.flush()
    return cases.describe_case(session, case, keys=keys, now=now)
