"""What a customer sends back by SMS: an opt-out, a request for help, a score, a comment.

Each inbound message is kept once per provider's id, so a replayed webhook finds its row and
changes nothing. The sender is found by their number's blind index. Then, by what the text reads
as (`channels.sms.replies`):

- STOP, 退订, TD… withdraw SMS consent for every purpose at once, confirmed by one SMS when it
  changed anything; START, 订阅 give feedback consent back (only when sent explicitly);
  HELP, 帮助 answer with the help text.
- A score answers the customer's newest SMS invitation still waiting for a rating, through the
  same path as the survey page (`answers.record_answer`): the reward, any case, the single use.
  A thank-you SMS follows, with a link to the optional questions when the survey has them.
- When that invitation asks a yes_no question ("Was this you?"), 1 / Y / YES / 是 answer yes and
  2 / NO / 否 / 不是我 answer no (`replies.read_yes_no`; "N" stays an opt-out). A "no" opens a
  security case in the same transaction, and the reply carries the wallet's freeze instructions.
- Anything else, and what follows a score ("10 thanks"), is a comment on the follow-up of their
  newest SMS, sealed under their key, and checked for a security concern.

Replies are queued as messages (`dispatch.queue_reply`), so they are retried and recorded like
every message, and sent past quiet hours and consent: the customer just wrote to us.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from followup.cases import service as cases
from followup.channels import capabilities
from followup.channels.providers import InboundSms
from followup.channels.schemas import MessageContent
from followup.channels.sms.replies import MAX_REPLY_CHARS, Comment, Keyword, Score, YesNo, read_reply, read_yes_no
from followup.config import Settings
from followup.customers import service as customers
from followup.customers.contacts import ContactKind
from followup.dispatch import service as dispatch
from followup.followups.answers import Answerer, AnswerSource, record_answer
from followup.kernel.actors import Actor
from followup.kernel.crypto import KeyProvider
from followup.kernel.text import plain_text
from followup.privacy import service as privacy
from followup.privacy.enums import GIVEN_BY_DEFAULT
from followup.privacy.scrubbing import scrub
from followup.surveys import service as surveys
from followup.surveys.service import AnswerInvalid, InvitationInvalid

_COMMENT_PURPOSE = "inbound-comment"

_TEXTS = {
    "zh-CN": {
        "stopped": "您已退订短信回访，将不再收到此类短信。回复订阅可重新开启。",
        "started": "您已重新开启短信回访。回复退订可随时退订。",
        "help": "这是钱包的服务回访短信。回复0-10的数字为我们评分；回复退订停止接收。",
        "thanks": "感谢您的评分！",
        "thanks_more": "感谢您的评分！愿意再回答几个问题吗？",
        "confirmed": "感谢您的确认！",
        "denied": "我们已通知安全团队，会尽快联系您。",
    },
    "en": {
        "stopped": "You will get no more follow-up texts from us. Reply START to get them again.",
        "started": "Follow-up texts are back on. Reply STOP to opt out at any time.",
        "help": "These are your wallet's follow-up texts. Reply with a number 0-10 to rate us; reply STOP to opt out.",
        "thanks": "Thank you for your rating!",
        "thanks_more": "Thank you for your rating! Would you answer a few more questions?",
        "confirmed": "Thank you for confirming!",
        "denied": "We have alerted our security team; they will contact you soon.",
    },
}


@dataclass(frozen=True)
class InboundOutcome:
    """What one inbound message did: its kind, whether it was new (a replay is not)."""

    kind: str
    new: bool
    followup_id: int | None = None


def receive_sms(
    session: Session,
    provider: str,
    inbound: InboundSms,
    *,
    settings: Settings,
    keys: KeyProvider,
    now: dt.datetime,
) -> InboundOutcome:
    """Act on one SMS a customer sent, once per provider's id, in the caller's transaction."""
    row = dispatch.claim_inbound(session, provider, inbound.provider_id, now=now)
    if row is None:
        return InboundOutcome(kind="replay", new=False)
    customer = customers.customer_by_contact(session, ContactKind.PHONE, inbound.sender, keys=keys)
    if customer is None:
        row.kind = "unknown_sender"
        return InboundOutcome(kind="unknown_sender", new=True)
    row.customer_id = customer.id
    reply = read_reply(plain_text(inbound.text))
    key = f"{provider}-{inbound.provider_id}"
    if isinstance(reply, Keyword):
        row.kind = reply.kind
        _keyword(session, customer, reply, key=key, settings=settings, keys=keys, now=now)
        return InboundOutcome(kind=reply.kind, new=True)
    said = read_yes_no(plain_text(inbound.text))
    if said is not None:
        followup_id = _score(session, customer, None, said, key=key, settings=settings, keys=keys, now=now)
        if followup_id is not None:
            row.kind, row.followup_id = "yes_no", followup_id
            return InboundOutcome(kind="yes_no", new=True, followup_id=followup_id)
    if isinstance(reply, Score):
        followup_id = _score(session, customer, reply, None, key=key, settings=settings, keys=keys, now=now)
        if followup_id is not None:
            row.kind, row.score, row.followup_id = "score", reply.value, followup_id
            if reply.rest:
                row.text_sealed = _comment(
                    session, customer, followup_id, reply.rest, now=now, keys=keys, settings=settings
                )
            return InboundOutcome(kind="score", new=True, followup_id=followup_id)
        reply = Comment(
            plain_text(inbound.text)[:MAX_REPLY_CHARS]
        )  # no open invitation, or not a score on its scale: keep the words
    row.kind = "comment"
    row.followup_id = dispatch.latest_followup_on(session, customer.id, channel=capabilities.SMS)
    row.text_sealed = _comment(session, customer, row.followup_id, reply.text, now=now, keys=keys, settings=settings)
    return InboundOutcome(kind="comment", new=True, followup_id=row.followup_id)


def _texts(customer: customers.CustomerRow) -> dict[str, str]:
    return _TEXTS.get(customer.locale, _TEXTS["en"])


def _reply(
    session: Session,
    customer: customers.CustomerRow,
    text: str,
    *,
    key: str,
    keys: KeyProvider,
    now: dt.datetime,
    followup_id: int | None = None,
    link: str = "",
) -> None:
    content = MessageContent(
        locale=customer.locale, subject="", greeting="", body=text, link=link, link_label="", transactional=True
    )
    dispatch.queue_reply(
        session,
        customer_id=customer.id,
        followup_id=followup_id,
        key=key,
        channel=capabilities.SMS,
        content=content,
        keys=keys,
        now=now,
    )


def _keyword(
    session: Session,
    customer: customers.CustomerRow,
    reply: Keyword,
    *,
    key: str,
    settings: Settings,
    keys: KeyProvider,
    now: dt.datetime,
) -> None:
    texts = _texts(customer)
    if reply.kind == "help":
        _reply(session, customer, texts["help"], key=key, keys=keys, now=now)
        return
    if reply.kind == "stop":
        # Every purpose stops, those given by default (replies about a case) among them.
        purposes = set(privacy.get_consents(session, customer.id)) | {"feedback"} | GIVEN_BY_DEFAULT
        changes = {purpose: {capabilities.SMS: False} for purpose in sorted(purposes)}
    else:
        changes = {"feedback": {capabilities.SMS: True}}
    changed = privacy.record_consents(
        session,
        customer.id,
        changes,
        subject_id=customer.external_id,
        source="sms_keyword",
        built_in_notice_version=settings.privacy_notice_version,
        actor=Actor(kind="customer", id=str(customer.id)),
        now=now,
    )
    if changed:  # confirmed once: a second STOP changes nothing and is not answered again
        _reply(session, customer, texts["stopped" if reply.kind == "stop" else "started"], key=key, keys=keys, now=now)


def _score(
    session: Session,
    customer: customers.CustomerRow,
    reply: Score | None,
    said: YesNo | None,
    *,
    key: str,
    settings: Settings,
    keys: KeyProvider,
    now: dt.datetime,
) -> int | None:
    """Record the score (or, on a yes_no question, the yes or no) on the customer's open SMS
    invitation; the follow-up it answered, or None when there is none to answer or the reply does
    not answer its question (nothing recorded)."""
    invitation = surveys.awaiting_rating(session, customer.id, channel=capabilities.SMS, now=now)
    if invitation is None:
        return None
    opened = surveys.open_followup_invitation(session, invitation.followup_id, now=now, channel=capabilities.SMS)
    question = surveys.rating_question_id(opened)
    value: int | str | None = said if surveys.is_yes_no(opened) else (reply.value if reply is not None else None)
    if value is None:
        return None
    try:
        with session.begin_nested():
            outcome = record_answer(
                session,
                invitation.followup_id,
                {question: value},
                by=Answerer(AnswerSource.SMS_REPLY, channel=capabilities.SMS),
                now=now,
                opened=opened,
                slas=settings.case_sla,
            )
    except (AnswerInvalid, InvitationInvalid):
        return None
    texts = _texts(customer)
    link = ""
    if len(opened.questions) > 1:
        link = f"{settings.public_url}/s/{surveys.reissue_link(session, opened.invitation)}"
    thanks = texts["thanks_more" if link else "thanks"]
    if outcome.said == "no":
        separator = "" if customer.locale == "zh-CN" else " "
        thanks = texts["denied"] + separator + settings.freeze_instructions(customer.locale)
    elif outcome.said == "yes":
        thanks = texts["confirmed"]
    _reply(
        session,
        customer,
        thanks,
        key=key,
        keys=keys,
        now=now,
        followup_id=invitation.followup_id,
        link=link,
    )
    return invitation.followup_id


def _comment(
    session: Session,
    customer: customers.CustomerRow,
    followup_id: int | None,
    text: str,
    *,
    now: dt.datetime,
    keys: KeyProvider,
    settings: Settings,
) -> bytes:
    """The words, scrubbed, sealed under the customer's key, to keep on the follow-up; a security
    concern opens a case at once."""
    text = scrub(text)
    cases.open_for_comment(
        session,
        customer_id=customer.id,
        followup_id=followup_id,
        response_id=None,
        texts=[text],
        now=now,
        slas=settings.case_sla,
    )
    return customers.seal_for_customer(
        session, customer.id, text.encode(), keys=keys, now=now, purpose=_COMMENT_PURPOSE
    )


def read_comment(session: Session, customer_id: int, sealed: bytes, *, keys: KeyProvider) -> str | None:
    plain = customers.open_for_customer(session, customer_id, sealed, keys=keys, purpose=_COMMENT_PURPOSE)
    return None if plain is None else plain.decode()
