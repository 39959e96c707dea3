"""Providers' word on what became of a message: delivered, failed, bounced.

A receipt names the message by the provider's id for it (what `send` returned), or, for a message
whose send never heard back (`unknown`), by our reference, which SMS providers are given in the
receipt's callback URL. A receipt for an `unknown` message settles it: the provider had it, so it
was sent. A later receipt never undoes an earlier final one, and a replayed one changes nothing.

A failure after acceptance moves the follow-up on to its next channel, as a refusal at send time
does. A dead address (an invalid number, a hard bounce) marks its contact point, so the policy
refuses that channel as unreachable until the wallet gives a new one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from followup.customers import service as customers
from followup.customers.contacts import ContactKind, ContactStatus
from followup.dispatch.models import Message
from followup.dispatch.repository import MessageRepository
from followup.dispatch.schemas import MessageUndelivered
from followup.dispatch.service import UNDELIVERED_JOB
from followup.kernel import jobs
from followup.kernel.actors import Actor
from followup.kernel.crypto import KeyProvider
from followup.policy import service as policy
from followup.privacy import service as privacy

# Providers' error codes in a failure receipt that mean the number itself is dead.
_DEAD_NUMBER = frozenset(
    {
        "invalid_number",  # the generic gateway protocol
        "30005",  # Twilio: unknown destination handset
        "30006",  # Twilio: landline or unreachable carrier
        "21211",  # Twilio: invalid 'To' number
        "MOBILE_NUMBER_ILLEGAL",  # Alibaba Cloud
        "MOBILE_NOT_ON_SERVICE",  # Alibaba Cloud: the number is out of service
        "isv.MOBILE_NUMBER_ILLEGAL",
    }
)


@dataclass(frozen=True)
class ReceiptResult:
    matched: bool
    changed: bool


def apply_receipt(
    session: Session,
    *,
    provider: str,
    provider_id: str,
    status: str,
    error: str | None,
    at: dt.datetime | None,
    reference: str | None,
    now: dt.datetime,
) -> ReceiptResult:
    """Apply one receipt (`status`: delivered or failed) to the message it names."""
    repo = MessageRepository(session)
    message = repo.by_provider_ref_for_update(provider_id[:255])
    if message is None and reference:
        message = repo.by_key_for_update(reference[:100])
    if message is None:
        return ReceiptResult(matched=False, changed=False)
    when = min(at, now) if at is not None else now
    changed = _settle_unknown(session, message, provider=provider, provider_id=provider_id, now=when)
    if message.receipt is not None or message.status != "sent":
        return ReceiptResult(matched=True, changed=changed)
    message.receipt, message.receipt_at = status, now
    if status == "delivered":
        message.delivered_at = when
        return ReceiptResult(matched=True, changed=True)
    message.last_error = f"receipt: {error or 'failed'}"[:2000]
    if error and error in _DEAD_NUMBER:
        _mark_dead(session, message, ContactStatus.INVALID, reason=error, now=now)
    _moved_on(session, message, reason="undelivered", now=now)
    return ReceiptResult(matched=True, changed=True)


def _settle_unknown(session: Session, message: Message, *, provider: str, provider_id: str, now: dt.datetime) -> bool:
    """A receipt for a message whose send never heard back: the provider had it."""
    if message.status != "unknown":
        return False
    message.status, message.sent_at = "sent", now
    message.provider, message.provider_ref = provider, provider_id[:255]
    if message.followup_id is not None:
        policy.record_contact(session, message.followup_id, channel=message.channel, now=now)
    return True


def _mark_dead(session: Session, message: Message, status: ContactStatus, *, reason: str, now: dt.datetime) -> None:
    """Mark the contact point the message went to: the newest valid one of its kind."""
    for point in customers.contact_points_of(session, message.customer_id, kind=_kind_of(message.channel)):
        if point.status == ContactStatus.VALID:
            customers.mark_contact(session, point.id, status, reason=reason, now=now)
            return


def _kind_of(channel: str) -> str:
    return ContactKind.EMAIL if channel == "email" else ContactKind.PHONE


def _moved_on(session: Session, message: Message, *, reason: str, now: dt.datetime) -> None:
    if message.followup_id is None:
        return
    payload = MessageUndelivered(
        message_id=message.id,
        followup_id=message.followup_id,
        step=message.step,
        channel=message.channel,
        outcome="failed",
        reason=reason,
    )
    jobs.enqueue(session, UNDELIVERED_JOB, payload.model_dump(), now=now)


def apply_bounce(
    session: Session,
    *,
    address: str,
    kind: str,
    message_ref: str | None,
    keys: KeyProvider,
    built_in_notice_version: str,
    now: dt.datetime,
) -> int:
    """An email bounce (`kind`: hard, soft, complaint). A hard bounce marks the address bounced
    wherever it is held and the message (named by its Message-ID or our reference) bounced; a
    complaint withdraws the customer's email consent; a soft bounce is only noted on the message.
    Returns how many contact points changed."""
    repo = MessageRepository(session)
    message = None
    if message_ref:
        message = repo.by_provider_ref_for_update(message_ref[:255]) or repo.by_key_for_update(message_ref[:100])
    marked = 0
    if kind == "hard":
        marked = customers.mark_contact_by_value(
            session, ContactKind.EMAIL, address, ContactStatus.BOUNCED, reason="hard_bounce", keys=keys, now=now
        )
        if message is not None and message.receipt is None and message.status == "sent":
            message.receipt, message.receipt_at = "bounced", now
            message.last_error = "receipt: hard bounce"
            _moved_on(session, message, reason="bounced", now=now)
    elif kind == "complaint":  # the customer marked it as spam: they want no more of it
        customer = customers.customer_by_contact(session, ContactKind.EMAIL, address, keys=keys)
        if customer is not None:
            privacy.record_consents(
                session,
                customer.id,
                {policy.PURPOSE: {"email": False}},
                subject_id=customer.external_id,
                source="unsubscribe",  # a spam complaint is the customer's unsubscribe
                built_in_notice_version=built_in_notice_version,
                actor=Actor(kind="customer", id=str(customer.id)),
                now=now,
            )
    elif message is not None and kind == "soft":
        message.last_error = "receipt: soft bounce"
    return marked
