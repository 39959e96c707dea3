"""Messages and the send pipeline: queue → claim → prepare (policy again) → send → record.

Each step is its own short transaction, committed by the caller (`dispatch.tasks`), so no lock is
held while a provider is on the line.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from sqlalchemy.orm import Session

from followup.channels import capabilities
from followup.channels import service as inbox
from followup.channels.base import Delivery, ProviderTry, Receipt
from followup.channels.schemas import MessageContent
from followup.config import Settings
from followup.customers import service as customers
from followup.customers.contacts import ContactStatus
from followup.dispatch.models import InboundMessage, Message, MessageAttempt
from followup.dispatch.repository import MessageRepository
from followup.dispatch.schemas import AttemptOut, MessageSummary, MessageUndelivered, OutboxMessage
from followup.kernel import jobs
from followup.kernel.crypto import KeyProvider
from followup.kernel.errors import Conflict, NotFound
from followup.policy import service as policy
from followup.policy.schemas import Decision
from followup.privacy import page_links

UNDELIVERED_JOB = "dispatch.message_undelivered"
_CONTENT_PURPOSE = "message-content"
_MAX_BACKOFF = 3600.0
_jitter = random.SystemRandom()


class Claim(NamedTuple):
    """A message leased to this worker; `claim` is its attempt number when this worker took it."""

    message_id: int
    claim: int


class Unusable(NamedTuple):
    """The provider's word that the address is dead: what its contact point becomes."""

    contact_id: int | None
    status: ContactStatus


class Tried(NamedTuple):
    """When a try at the provider began and how long it took to answer."""

    started_at: dt.datetime
    latency_ms: int


# What the API calls a message's state, from its status: a provider's receipt will move an
# accepted message on to delivered or bounced.
_STATE_OF_STATUS = {
    "queued": "queued",
    "sending": "sending",
    "in_flight": "sending",
    "sent": "accepted",
    "failed": "failed",
    "suppressed": "failed",
    "unknown": "unknown",
}


def delivery_state(message: Message) -> str:
    """queued → sending → accepted → delivered | failed | bounced | unknown."""
    if message.status == "sent" and message.receipt is not None:
        return message.receipt  # delivered, failed or bounced
    return _STATE_OF_STATUS.get(message.status, message.status)


def _attempt(
    session: Session,
    message_id: int,
    channel: str,
    *,
    number: int,
    outcome: str,
    tried: Tried | None,
    now: dt.datetime,
    provider_ref: str | None = None,
    error_code: str | None = None,
    provider: str | None = None,
    earlier: Sequence[ProviderTry] = (),
) -> None:
    """Record one try (and, first, the providers a failover tried or skipped on the way to it);
    a try already recorded (the same claim settled twice) is kept as it was."""
    rows = _attempt_rows(
        message_id,
        number=number,
        outcome=outcome,
        tried=tried,
        now=now,
        provider_ref=provider_ref,
        error_code=error_code,
        provider=provider or channel,
        earlier=earlier,
    )
    MessageRepository(session).add_attempts(rows)


def _attempt_rows(
    message_id: int,
    *,
    number: int,
    outcome: str,
    tried: Tried | None,
    now: dt.datetime,
    provider: str,
    provider_ref: str | None = None,
    error_code: str | None = None,
    earlier: Sequence[ProviderTry] = (),
) -> list[dict[str, object]]:
    """The rows of a try and of the providers before it. Without `tried` (a lost try), it is dated
    when it was found lost, with no latency."""
    started_at = tried.started_at if tried else now
    rows: list[dict[str, object]] = [
        {
            "message_id": message_id,
            "number": number,
            "seq": seq,
            "provider": step.provider,
            "started_at": started_at,
            "latency_ms": step.latency_ms,
            "outcome": step.outcome,
            "provider_ref": None,
            "error_code": step.error_code[:64] if step.error_code else None,
        }
        for seq, step in enumerate(earlier)
    ]
    rows.append(
        {
            "message_id": message_id,
            "number": number,
            "seq": len(earlier),
            "provider": provider,
            "started_at": started_at,
            "latency_ms": tried.latency_ms if tried else None,
            "outcome": outcome,
            "provider_ref": provider_ref[:255] if provider_ref else None,
            "error_code": error_code[:64] if error_code else None,
        }
    )
    return rows


@dataclass(frozen=True)
class SendPlan:
    """What to send, and the claim under which to record the outcome.

    The claim is the message's attempt number when this worker took it. Every later write checks it,
    so a worker whose lease ran out and whose message another worker took over records nothing.
    """

    message_id: int
    claim: int
    channel: str
    delivery: Delivery


def idempotency_key(followup_id: int, step: str, channel: str) -> str:
    return f"followup-{followup_id}-{step}-{channel}"


def queue_message(
    session: Session,
    *,
    followup_id: int,
    customer_id: int,
    step: str,
    channel: str,
    content: MessageContent,
    keys: KeyProvider,
    now: dt.datetime,
    strategy_id: int | None = None,
) -> Message | None:
    """Queue one delivery; a second call for the same follow-up, step and channel is a no-op."""
    return _queue(
        session,
        key=idempotency_key(followup_id, step, channel),
        followup_id=followup_id,
        strategy_id=strategy_id,
        customer_id=customer_id,
        step=step,
        channel=channel,
        content=content,
        keys=keys,
        now=now,
    )


def queue_reply(
    session: Session,
    *,
    customer_id: int,
    followup_id: int | None,
    key: str,
    channel: str,
    content: MessageContent,
    keys: KeyProvider,
    now: dt.datetime,
) -> Message | None:
    """Queue a reply the customer asked for (an opt-out's confirmation, help, a thank-you), once
    per `key`. It is sent as it is, past quiet hours and consent: the customer just wrote to us."""
    return _queue(
        session,
        key=f"reply-{key}"[:100],
        followup_id=followup_id,
        strategy_id=None,
        customer_id=customer_id,
        step="reply",
        channel=channel,
        content=content.model_copy(update={"transactional": True}),
        keys=keys,
        now=now,
    )


def queue_service_message(
    session: Session,
    *,
    customer_id: int,
    key: str,
    step: str,
    channel: str,
    content: MessageContent,
    keys: KeyProvider,
    now: dt.datetime,
) -> Message | None:
    """Queue a message about the customer's own case (a reply, "did we solve it?"), once per
    `key`. It is checked when sent like a follow-up — quiet hours, and the `service` consent of its
    channel — but spends no feedback budget and belongs to no follow-up."""
    return _queue(
        session,
        key=f"service-{key}"[:100],
        followup_id=None,
        strategy_id=None,
        customer_id=customer_id,
        step=step,
        channel=channel,
        content=content.model_copy(update={"purpose": "service", "transactional": False}),
        keys=keys,
        now=now,
    )


def last_channel(session: Session, followup_id: int) -> str | None:
    """The channel that last reached the customer for this follow-up, if any did."""
    return MessageRepository(session).last_sent_channel(followup_id)


def _queue(
    session: Session,
    *,
    key: str,
    followup_id: int | None,
    strategy_id: int | None,
    customer_id: int,
    step: str,
    channel: str,
    content: MessageContent,
    keys: KeyProvider,
    now: dt.datetime,
) -> Message | None:
    """A message due now, its content sealed under the customer's key; None when `key` was queued
    before. It is written when the session flushes next."""
    repo = MessageRepository(session)
    if repo.key_taken(key):
        return None
    sealed = customers.seal_for_customer(
        session, customer_id, content.model_dump_json().encode(), keys=keys, now=now, purpose=_CONTENT_PURPOSE
    )
    message = Message(
        followup_id=followup_id,
        strategy_id=strategy_id,
        customer_id=customer_id,
        step=step,
        channel=channel,
        status="queued",
        idempotency_key=key,
        content_sealed=sealed,
        attempts=0,
        due_at=now,
        created_at=now,
    )
    repo.add(message)
    return message


def claim_due_messages(
    session: Session, *, now: dt.datetime, settings: Settings, idempotent_channels: Collection[str], limit: int = 100
) -> list[Claim]:
    """Lease due messages to this worker. First, settle messages dead workers left behind.

    A message whose lease ran out is claimed again, one attempt more; one that has used every
    attempt that way (a worker died, or hung, on it each time) fails instead of being claimed
    forever, and its follow-up moves on to the next channel.
    """
    repo = MessageRepository(session)
    for message in repo.stale_in_flight(now=now):
        _attempt(session, message.id, message.channel, number=message.attempts, outcome="lost", tried=None, now=now)
        if message.channel not in idempotent_channels:
            message.status, message.lease_until = "unknown", None
            message.last_error = "worker stopped after handing the message over; delivery not confirmed"
        elif message.attempts >= settings.send_max_attempts:
            message.last_error = f"no outcome recorded in {message.attempts} attempts"
            _undelivered(session, message, status="failed", reason="send_failed", now=now)
        else:
            # Safe to send again: the provider drops a second copy with the same key.
            message.status, message.lease_until = "queued", None
    for message in repo.abandoned_too_often(now=now, max_attempts=settings.send_max_attempts):
        _attempt(session, message.id, message.channel, number=message.attempts, outcome="lost", tried=None, now=now)
        message.last_error = f"no outcome recorded in {message.attempts} attempts: the worker's lease ran out each time"
        _undelivered(session, message, status="failed", reason="send_failed", now=now)
    session.flush()
    lease_until = now + dt.timedelta(seconds=settings.worker_lease_seconds)
    claims, abandoned = repo.claim_due(now=now, lease_until=lease_until, limit=limit)
    for (message_id, number), channel in abandoned.items():  # their worker stopped before any answer
        _attempt(session, message_id, channel, number=number, outcome="lost", tried=None, now=now)
    return [Claim(message_id, claim) for message_id, claim in claims]


def read_content(session: Session, message: Message, *, keys: KeyProvider) -> MessageContent | None:
    """The message's content; None once it is gone (its customer erased, or its retention past)."""
    if not message.content_sealed:
        return None
    plain = customers.open_for_customer(
        session, message.customer_id, message.content_sealed, keys=keys, purpose=_CONTENT_PURPOSE
    )
    return None if plain is None else MessageContent.model_validate_json(plain)


@dataclass
class Prepared:
    """What a batch of claims came to: plans to send, and the messages whose preparation broke (a
    bug or stored data that no longer reads), each with its exception."""

    plans: list[SendPlan]
    broken: list[tuple[Claim, Exception]]


def prepare_sends(
    session: Session, claims: Sequence[Claim], *, now: dt.datetime, settings: Settings, keys: KeyProvider
) -> Prepared:
    """`prepare_send` for a batch, with a few queries for all of it: the messages, the policy's
    reading of their customers, their customers and contact points. The messages the policy now
    refuses or defers are settled here; a message whose preparation breaks is left to the caller."""
    repo = MessageRepository(session)
    messages = repo.claimed_many([(claim.message_id, claim.claim) for claim in claims], statuses=("sending",))
    people = customers.load_for_messages(session, {message.customer_id for message in messages.values()}, keys=keys)
    prepared = Prepared([], [])
    contents: dict[int, MessageContent | None] = {}
    for claim in claims:
        message = messages.get(claim.message_id)
        if message is None:
            continue
        try:
            contents[message.id] = read_content(session, message, keys=keys)
        except Exception as exc:  # noqa: BLE001 - stored content that no longer reads breaks this message only
            prepared.broken.append((claim, exc))
            del messages[claim.message_id]
    gated = [message for message in messages.values() if _gated(contents[message.id])]
    decided: list[tuple[Message, Decision]] = []
    for purpose, at_any_hour in sorted({_gate(contents[message.id]) for message in gated}):
        asked = [message for message in gated if _gate(contents[message.id]) == (purpose, at_any_hour)]
        decisions = policy.check_channels(
            session,
            [(message.customer_id, [message.channel]) for message in asked],
            now=now,
            settings=settings,
            purpose=purpose,
            at_any_hour=at_any_hour,
        )
        decided += zip(asked, decisions, strict=True)
    for message, decision in decided:
        if not decision.allowed:
            _undelivered(session, message, status="suppressed", reason=decision.reason, now=now)
            del messages[message.id]
        elif decision.deferred and decision.send_at is not None:
            message.status, message.lease_until, message.due_at = "queued", None, decision.send_at
            message.reason = decision.deferred
            del messages[message.id]
    wanted = {}
    for message in messages.values():
        found = capabilities.lookup(message.channel)
        if found is not None and found.address is not None:
            wanted[message.id] = (message.customer_id, found.address)
    contacts = customers.usable_contacts(session, wanted.values(), keys=keys)
    for claim in claims:
        message = messages.get(claim.message_id)
        if message is None:
            continue
        customer, content = people.get(message.customer_id), contents[message.id]
        contact = contacts.get(wanted[message.id]) if message.id in wanted else None
        if customer is None or content is None or (message.id in wanted and contact is None):
            _undelivered(session, message, status="suppressed", reason="unreachable", now=now)
            continue
        resumed = message.attempts > 1 and repo.last_try_lost(message.id, message.attempts - 1)
        token = page_links.make_token(keys, message.customer_id, now=now)  # fresh: a retry gets a live link
        content = content.model_copy(update={"my_data_url": f"{settings.public_url}/p/{token}"})
        prepared.plans.append(
            SendPlan(
                message_id=message.id,
                claim=message.attempts,
                channel=message.channel,
                delivery=Delivery(
                    message_id=message.id,
                    idempotency_key=message.idempotency_key,
                    customer_id=message.customer_id,
                    address=contact.value if contact else None,
                    content=content,
                    followup_id=message.followup_id,
                    pinned_provider=message.provider,
                    resumed=resumed,
                    contact_id=contact.id if contact else None,
                    platform=contact.platform if contact else None,
                    locale=customer.locale,
                ),
            )
        )
    return prepared


def _gate(content: MessageContent | None) -> tuple[str, bool]:
    """What the policy is asked with: the message's purpose, and whether quiet hours hold it."""
    return (content.purpose, content.at_any_hour) if content is not None else (policy.PURPOSE, False)


def _gated(content: MessageContent | None) -> bool:
    """Whether the contact policy is asked again: always, but for a reply the customer asked for."""
    return content is None or not content.transactional


def mark_in_flight(
    session: Session,
    message_id: int,
    *,
    claim: int,
    now: dt.datetime,
    settings: Settings,
    provider: str | None = None,
) -> bool:
    """The point of no return for providers without idempotency keys: committed before the hand-over
    (with the provider about to have it, for a channel with several; after a failover, again).

    False when the claim was lost: the caller must then not hand the message over at all.
    """
    return MessageRepository(session).mark_in_flight(
        message_id, claim, lease_until=now + dt.timedelta(seconds=settings.worker_lease_seconds), provider=provider
    )


def pin_provider(session: Session, message_id: int, *, claim: int, provider: str) -> bool:
    """Record which provider is about to see a message with an idempotency key (a failover past the
    first): a later claim, after this worker stopped, tries that provider only. False when the
    claim was lost."""
    return MessageRepository(session).pin_provider(message_id, claim, provider)


class Sent(NamedTuple):
    """A provider accepted a message: what `record_sent_many` writes."""

    message_id: int
    claim: int
    receipt: Receipt
    tried: Tried | None
    at: dt.datetime


def record_sent_many(session: Session, sent: Sequence[Sent]) -> None:
    """Messages the providers accepted, in a few statements for all of them (the hot path: no
    message is loaded whole): each becomes `sent` with its try, and its follow-up's contact is
    recorded. A message another worker has taken over since is left to that worker."""
    if not sent:
        return
    repo = MessageRepository(session)
    held = repo.claims_held([(item.message_id, item.claim) for item in sent])
    tries: list[dict[str, object]] = []
    changes: list[dict[str, object]] = []
    contacted: list[tuple[int, str, dt.datetime]] = []
    for item in sent:
        if item.message_id not in held:
            continue
        followup_id, channel = held[item.message_id]
        receipt = item.receipt
        tries += _attempt_rows(
            item.message_id,
            number=item.claim,
            outcome="accepted",
            tried=item.tried,
            now=item.at,
            provider_ref=receipt.provider_ref,
            provider=receipt.provider or channel,
            earlier=receipt.tries,
        )
        changes.append(
            {
                "id": item.message_id,
                "sent_at": item.at,
                "provider_ref": receipt.provider_ref[:255],
                "provider": receipt.provider,
                "segments": receipt.segments,
            }
        )
        if followup_id is not None:
            contacted.append((followup_id, channel, item.at))
    repo.mark_sent(changes)
    if tries:
        repo.add_attempts(tries)
    policy.record_contacts(session, contacted)


def record_failure(
    session: Session,
    message_id: int,
    *,
    claim: int,
    error: str,
    error_code: str,
    permanent: bool,
    tried: Tried | None,
    now: dt.datetime,
    settings: Settings,
    provider: str | None = None,
    earlier: Sequence[ProviderTry] = (),
    unusable: Unusable | None = None,
    retry_after: float | None = None,
) -> None:
    """A refusal. Transient: queued again after a backoff (or the provider's Retry-After, when
    longer). Permanent, or out of attempts: undelivered. `unusable`: the provider said the address
    is dead, so the contact point is marked and the message is undelivered as unreachable."""
    message = MessageRepository(session).get_claimed(message_id, claim)
    if message is None or message.status == "unknown":
        return
    outcome = "permanent" if permanent else "transient"
    _attempt(
        session,
        message.id,
        message.channel,
        number=claim,
        outcome=outcome,
        tried=tried,
        now=now,
        error_code=error_code,
        provider=provider,
        earlier=earlier,
    )
    message.last_error = error[:2000]
    if unusable is not None:
        if unusable.contact_id is not None:
            customers.mark_contact(session, unusable.contact_id, unusable.status, reason=error_code, now=now)
        _undelivered(session, message, status="failed", reason="unreachable", now=now)
        return
    if permanent or message.attempts >= settings.send_max_attempts:
        _undelivered(session, message, status="failed", reason="send_failed", now=now)
        return
    delay = min(_MAX_BACKOFF, settings.retry_base_seconds * 2 ** max(message.attempts - 1, 0))
    # "Equal jitter": at least half the backoff, so retries spread out but never bunch up early.
    wait = delay / 2 + _jitter.uniform(0, delay / 2)
    message.provider = None  # every provider said no: the next claim may try them all again
    message.due_at = now + dt.timedelta(seconds=max(wait, min(retry_after or 0.0, _MAX_BACKOFF)))
    message.status, message.lease_until = "queued", None


INTERNAL_ERROR = "internal_error"


def record_internal_error(
    session: Session,
    message_id: int,
    *,
    claim: int,
    error_type: str,
    handed_over: bool,
    tried: Tried | None,
    now: dt.datetime,
) -> None:
    """A bug or bad stored data broke the send of this one message: it fails for good, with the
    reason internal_error, and its follow-up moves on to the next channel as after a permanent
    refusal. Retrying would only fail the same way.

    Only the exception's type is stored: its text may quote the message or the address. When the
    channel may already have delivered (after the hand-over, or after it answered), the message
    becomes `unknown` instead, and is neither resent nor cascaded.
    """
    message = MessageRepository(session).get_claimed(message_id, claim)
    if message is None or message.status == "unknown":
        return
    _attempt(
        session, message.id, message.channel, number=claim, outcome="error", tried=tried, now=now, error_code=error_type
    )
    message.last_error = f"{INTERNAL_ERROR}: {error_type}"
    if handed_over or message.status == "in_flight":
        message.status, message.lease_until = "unknown", None
        return
    _undelivered(session, message, status="failed", reason=INTERNAL_ERROR, now=now)


def record_unknown(
    session: Session,
    message_id: int,
    *,
    claim: int,
    error: str,
    tried: Tried | None,
    now: dt.datetime,
    provider: str | None = None,
    earlier: Sequence[ProviderTry] = (),
) -> None:
    """The provider may have the message: it is `unknown`, never sent again nor through another
    provider; a receipt naming it later settles it. `provider` is recorded so that a receipt can."""
    message = MessageRepository(session).get_claimed(message_id, claim)
    if message is None:
        return
    _attempt(
        session,
        message.id,
        message.channel,
        number=claim,
        outcome="unknown",
        tried=tried,
        now=now,
        error_code="delivery_unknown",
        provider=provider,
        earlier=earlier,
    )
    message.provider = provider
    message.status, message.lease_until, message.last_error = "unknown", None, error[:2000]


def _undelivered(
    session: Session,
    message: Message,
    *,
    status: Literal["failed", "suppressed"],
    reason: str | None,
    now: dt.datetime,
) -> None:
    message.status, message.reason, message.lease_until = status, reason, None
    if message.followup_id is None:  # a reply outside any follow-up: nothing to cascade
        return
    payload = MessageUndelivered(
        message_id=message.id,
        followup_id=message.followup_id,
        step=message.step,
        channel=message.channel,
        outcome=status,
        reason=reason,
    )
    jobs.enqueue(session, UNDELIVERED_JOB, payload.model_dump(), now=now)


class MessageNotSent(Conflict):
    code = "message_not_sent"


def mark_opened(session: Session, message_id: int, *, now: dt.datetime) -> Message:
    """The wallet's app reports the customer opened the message (a push, an inbox item); the first
    report counts. MessageNotFound, or MessageNotSent before the provider accepted it."""
    message = MessageRepository(session).by_id_for_update(message_id)
    if message is None:
        raise MessageNotFound(f"There is no message {message_id}.")
    if message.status != "sent":
        raise MessageNotSent(
            f"Message {message_id} has not been accepted by its provider (it is {message.status}); "
            "report an opening once it was delivered."
        )
    if message.opened_at is None:
        message.opened_at = now
    return message


def mark_inbox_read(session: Session, customer_id: int, item_id: int, *, now: dt.datetime) -> None:
    """The customer read an inbox item: the item is read, and the message it delivered opened."""
    key = inbox.mark_read(session, customer_id, item_id, now=now)
    message = MessageRepository(session).by_key(key)
    if message is not None and message.status == "sent" and message.opened_at is None:
        message.opened_at = now


def mark_clicked(session: Session, followup_id: int, *, channel: str, now: dt.datetime) -> None:
    """The customer followed the message's survey link (the first time counts)."""
    MessageRepository(session).mark_time(followup_id, channel, "clicked_at", now)


def mark_answered(session: Session, followup_id: int, *, channel: str, now: dt.datetime) -> None:
    """The customer answered through the message's link (its inbox items are withdrawn apart,
    in the answer's own transaction: the customer's next look at the inbox must not offer it)."""
    MessageRepository(session).mark_time(followup_id, channel, "answered_at", now)


def engaged(session: Session, followup_id: int, *, answered_only: bool) -> bool:
    """Whether the customer engaged with any message of the follow-up: opened or clicked it, or
    answered (only answered, with `answered_only`)."""
    return MessageRepository(session).engaged(followup_id, answered_only=answered_only)


def withdraw_from_inbox(session: Session, followup_id: int) -> None:
    """The follow-up was answered or expired: its inbox items have nothing left to ask."""
    keys = MessageRepository(session).keys_of(followup_id, channel=capabilities.INAPP)
    inbox.remove_from_inbox(session, keys)


def summaries_for_followups(session: Session, followup_ids: list[int]) -> dict[int, list[MessageSummary]]:
    repo = MessageRepository(session)
    out: dict[int, list[MessageSummary]] = {}
    messages = repo.for_followups(followup_ids)
    tries = repo.attempts_of([message.id for message in messages])
    for message in messages:
        if message.followup_id is None:
            continue
        out.setdefault(message.followup_id, []).append(
            MessageSummary(
                id=message.id,
                step=message.step,
                channel=message.channel,
                status=message.status,
                state=delivery_state(message),
                reason=message.reason,
                attempt_count=message.attempts,
                attempts=_attempts_out(tries.get(message.id, [])),
                due_at=message.due_at,
                sent_at=message.sent_at,
                accepted_at=message.sent_at,
                delivered_at=message.delivered_at,
                opened_at=message.opened_at,
                clicked_at=message.clicked_at,
                answered_at=message.answered_at,
                last_error=message.last_error,
            )
        )
    return out


class MessageNotFound(NotFound):
    code = "message_not_found"


def _attempts_out(rows: list[MessageAttempt]) -> list[AttemptOut]:
    return [
        AttemptOut(
            number=row.number,
            seq=row.seq,
            provider=row.provider,
            outcome=row.outcome,
            started_at=row.started_at,
            latency_ms=row.latency_ms,
            provider_ref=row.provider_ref,
            error_code=row.error_code,
        )
        for row in rows
    ]


def _describe_outbox(
    session: Session, rows: list[Message], *, keys: KeyProvider, with_attempts: bool = False
) -> list[OutboxMessage]:
    external = customers.external_ids(session, {row.customer_id for row in rows})
    tries = MessageRepository(session).attempts_of([row.id for row in rows]) if with_attempts else {}
    out = []
    for row in rows:
        customer = customers.get_by_id(session, row.customer_id)
        recipient = None
        found = capabilities.lookup(row.channel)
        if customer is not None and found is not None and found.address is not None:
            recipient = customers.masked_address(session, customer, found.address, keys=keys)
        out.append(
            OutboxMessage(
                id=row.id,
                followup_id=row.followup_id,
                customer_id=external.get(row.customer_id, ""),
                recipient=recipient,
                step=row.step,
                channel=row.channel,
                status=row.status,
                state=delivery_state(row),
                reason=row.reason,
                provider=row.provider,
                segments=row.segments,
                last_error=row.last_error,
                attempts=_attempts_out(tries.get(row.id, [])),
                created_at=row.created_at,
                sent_at=row.sent_at,
                delivered_at=row.delivered_at,
                opened_at=row.opened_at,
                clicked_at=row.clicked_at,
                answered_at=row.answered_at,
                receipt_at=row.receipt_at,
                # None once the customer's key was destroyed (erasure): the content is gone for good.
                content=read_content(session, row, keys=keys),
            )
        )
    return out


def list_outbox(
    session: Session, *, customer_id: int | None, limit: int, offset: int, keys: KeyProvider
) -> tuple[list[OutboxMessage], int]:
    rows, total = MessageRepository(session).list_messages(customer_id=customer_id, limit=limit, offset=offset)
    return _describe_outbox(session, rows, keys=keys), total


def access_outbox_message(session: Session, message_id: int, *, keys: KeyProvider) -> OutboxMessage:
    row = MessageRepository(session).get(message_id)
    if row is None:
        raise MessageNotFound(f"There is no message {message_id}.")
    return _describe_outbox(session, [row], keys=keys, with_attempts=True)[0]


# What customers send back (an SMS reply): kept once per provider's id.


def claim_inbound(
    session: Session, provider: str, provider_ref: str, *, now: dt.datetime, channel: str = capabilities.SMS
) -> InboundMessage | None:
    """The row of a message a customer sent, new; None when it was received before (a replayed
    webhook). Taken first, in one statement, so that two deliveries of one webhook racing each
    other act once: the second waits for the first and finds its row."""
    return MessageRepository(session).claim_inbound(
        {
            "channel": channel,
            "provider": provider,
            "provider_ref": provider_ref[:255],
            "kind": "received",
            "received_at": now,
        }
    )


def latest_followup_on(session: Session, customer_id: int, *, channel: str) -> int | None:
    """The follow-up of the newest message the customer was sent on this channel."""
    return MessageRepository(session).latest_followup_on(customer_id, channel)


def volume_by_provider(session: Session, *, since: dt.datetime) -> dict[tuple[str, str], dict[str, int]]:
    """(channel, provider) → outcome → tries since `since`: what each provider did today."""
    out: dict[tuple[str, str], dict[str, int]] = {}
    for channel, provider, outcome, count in MessageRepository(session).tries_since(since):
        out.setdefault((channel, provider), {})[outcome] = count
    return out


def funnel_rows(
    session: Session, *, since: dt.datetime | None, until: dt.datetime | None
) -> list[tuple[int | None, str, int, int, int, int, int]]:
    """Per (strategy id, channel), the invitations and reminders queued in [since, until) and how
    many of them the provider accepted, were delivered, opened or clicked, and answered."""
    return MessageRepository(session).funnel_rows(since=since, until=until)
