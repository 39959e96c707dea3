"""The call queue: a follow-up's phone step as a call task, due inside the customer's calling
hours, claimed by one agent of its queue at a time for a lease of 15 minutes.

This domain keeps the tasks, their leases and the outcomes agents record; what an outcome does to
the follow-up (an answer, the next channel, the end) is the follow-ups' (`followups.call_work`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from followup.calls.models import CallOutcome, CallTask
from followup.calls.repository import CallRepository
from followup.customers import service as customers
from followup.customers.contacts import ContactKind, ContactStatus
from followup.kernel.actors import Actor
from followup.kernel.crypto import KeyProvider
from followup.kernel.errors import Conflict, NotFound
from followup.privacy import service as privacy
from followup.privacy.scrubbing import scrub
from followup.staff import roles
from followup.staff import service as staff

LEASE = dt.timedelta(minutes=15)
# A call not answered is tried again this much later, so the next try falls at another time of day.
RETRY_SHIFT = dt.timedelta(hours=3)
CALL_BACK_LIMIT = dt.timedelta(days=30)
# Calls due longer ago than this show as overdue to the supervisor.
OVERDUE = dt.timedelta(hours=1)
Window = tuple[dt.time, dt.time, frozenset[int]]
CallRow = CallTask  # the stored task, for the layers above that work it


class CallNotFound(NotFound):
    code = "call_not_found"


class CallNotClaimed(Conflict):
    code = "call_not_claimed"


class LeaseExpired(Conflict):
    code = "lease_expired"


class NoQueue(Conflict):
    code = "no_call_queue"


class NoNumber(Conflict):
    code = "no_phone_number"


def next_call_time(at: dt.datetime, *, time_zone: str, window: Window) -> dt.datetime:
    """`at` when it falls inside the calling hours and days in the customer's time zone; else the
    first minute of the next window."""
    start, end, days = window
    zone = ZoneInfo(time_zone)
    local = at.astimezone(zone)
    for offset in range(8):
        day = local.date() + dt.timedelta(days=offset)
        if day.weekday() not in days:
            continue
        opens = dt.datetime.combine(day, start, tzinfo=zone)
        closes = dt.datetime.combine(day, end, tzinfo=zone)
        if offset == 0 and opens <= local < closes:
            return at
        if local < opens:
            return opens.astimezone(dt.UTC)
    return at  # no calling day at all cannot be configured (parse_call_days); kept total


def retry_time(at: dt.datetime, *, time_zone: str, window: Window) -> dt.datetime:
    """When a call not answered is tried again: three hours later, so at another time of day; past
    the day's end, in the next window at the tried time moved by half the window (a morning miss
    is tried in the afternoon, an afternoon miss in the morning)."""
    shifted = at + RETRY_SHIFT
    start, end, days = window
    local = shifted.astimezone(ZoneInfo(time_zone))
    if start <= local.time() < end and local.weekday() in days:
        return shifted
    opens = next_call_time(shifted, time_zone=time_zone, window=window)
    tried = at.astimezone(ZoneInfo(time_zone))
    # The next window, at the tried hour shifted by the window's half, so a morning miss is tried
    # in the afternoon and an afternoon miss in the morning.
    span = dt.datetime.combine(dt.date.min, end) - dt.datetime.combine(dt.date.min, start)
    into = (dt.datetime.combine(dt.date.min, tried.time()) - dt.datetime.combine(dt.date.min, start) + span / 2) % span
    return opens + into


def create_task(
    session: Session,
    *,
    followup_id: int,
    customer_id: int,
    queue: str,
    max_attempts: int,
    time_zone: str,
    window: Window,
    now: dt.datetime,
) -> CallTask:
    task = CallTask(
        followup_id=followup_id,
        customer_id=customer_id,
        queue=queue,
        status="due",
        due_at=next_call_time(now, time_zone=time_zone, window=window),
        attempts=0,
        max_attempts=max_attempts,
        created_at=now,
    )
    CallRepository(session).add(task)
    return task


def _queues_of(actor: Actor) -> tuple[str, ...]:
    if actor.staff_id is None:
        raise CallNotClaimed("Calls are claimed by a staff member: use a key issued for one (--staff EMAIL).")
    if not actor.queues:
        raise NoQueue(
            "You belong to no call queue: an admin adds one (`followup staff invite --queue calls`, or "
            "PATCH /api/v1/staff/{id} with queues).",
            field="queue",
        )
    return actor.queues


def claim_next(session: Session, actor: Actor, *, window: Window, now: dt.datetime, limit: int = 50) -> CallTask | None:
    """The next due call of the actor's queues, leased to them for 15 minutes; None when there is
    none. Calls are locked one at a time (a batch locked at once would hide the rest of it from
    the other agents claiming now). A call that is due but falls outside its customer's calling
    hours now (due late in the evening, claimed after the end) is moved to its next window; at
    most `limit` are moved in one claim."""
    queues = _queues_of(actor)
    repo = CallRepository(session)
    for _ in range(limit):
        candidates = repo.claimable(queues, now=now, limit=1)
        if not candidates:
            return None
        task = candidates[0]
        customer = customers.get_by_id(session, task.customer_id)
        opens = next_call_time(now, time_zone=customer.time_zone if customer else "UTC", window=window)
        if opens > now:
            task.status, task.agent_id, task.lease_until, task.due_at = "due", None, None, opens
            session.flush()
            continue
        task.status, task.agent_id, task.lease_until = "claimed", actor.staff_id, now + LEASE
        session.flush()
        return task
    return None


def access_task(session: Session, task_id: int, actor: Actor, *, lock: bool = False) -> CallTask:
    """The call, if the actor works its queue; the same "not found" as a missing call otherwise."""
    task = CallRepository(session).get(task_id, lock=lock)
    if task is None or (actor.role == roles.AGENT and task.queue not in actor.queues):
        raise CallNotFound(f"No call with id {task_id}.", field="call_id")
    return task


def check_holder(task: CallTask, actor: Actor, *, now: dt.datetime) -> None:
    """Only the agent holding the call's lease may reveal its number or record its outcome."""
    if task.status != "claimed" or task.agent_id is None or task.agent_id != actor.staff_id:
        raise CallNotClaimed(
            f"Call {task.id} is not claimed by you; claim it (POST /api/v1/calls/claim) first.", field="call_id"
        )
    if task.lease_until is None or task.lease_until <= now:
        raise LeaseExpired(
            f"Your 15 minutes on call {task.id} ran out and it went back to the queue; claim it again.",
            field="call_id",
        )


def masked_number(session: Session, task: CallTask, *, keys: KeyProvider) -> str | None:
    customer = customers.get_by_id(session, task.customer_id)
    return None if customer is None else customers.masked_address(session, customer, ContactKind.PHONE, keys=keys)


def reveal(session: Session, task: CallTask, reason: str, *, actor: Actor, keys: KeyProvider, now: dt.datetime) -> str:
    """The customer's number in clear, for the agent holding the call; written to the audit log
    with the reason, scrubbed (an agent may copy the number into it)."""
    check_holder(task, actor, now=now)
    customer = customers.get_by_id(session, task.customer_id)
    number = None if customer is None else customers.contact_address(session, customer, ContactKind.PHONE, keys=keys)
    if customer is None or number is None:
        raise NoNumber("The customer has no usable phone number any more.", field="call_id")
    privacy.record_audit(
        session,
        actor=actor,
        subject_type="customer",
        subject_id=str(customer.id),
        event="contact.revealed",
        now=now,
        new={"kind": "phone", "call_id": task.id, "reason": scrub(reason.strip())},
    )
    return number


def record(session: Session, task: CallTask, outcome: str, *, actor: Actor, now: dt.datetime, **detail: object) -> None:
    task.outcome = outcome
    CallRepository(session).add(
        CallOutcome(task_id=task.id, agent_id=actor.staff_id, outcome=outcome, at=now, detail=dict(detail) or None)
    )


def finish(task: CallTask, status: str, *, now: dt.datetime) -> None:
    task.status, task.closed_at, task.lease_until = status, now, None


def reschedule(task: CallTask, at: dt.datetime) -> None:
    task.status, task.due_at, task.lease_until, task.agent_id = "due", at, None, None


def mark_wrong_number(session: Session, task: CallTask, *, actor: Actor, keys: KeyProvider, now: dt.datetime) -> None:
    """The phone contact point the call used is not the customer's: marked invalid, so no channel
    uses it again; the change is audited."""
    found = customers.usable_contact(session, task.customer_id, ContactKind.PHONE, keys=keys)
    if found is None:
        return
    customers.mark_contact(
        session,
        found.id,
        ContactStatus.INVALID,
        reason="wrong_number",
        now=now,
        actor=actor,
        detail={"call_id": task.id},
    )


def time_zone_of(session: Session, customer_id: int) -> str:
    customer = customers.get_by_id(session, customer_id)
    return customer.time_zone if customer else "UTC"


def cancel_for_followup(session: Session, followup_id: int, *, now: dt.datetime) -> int:
    """The follow-up ended (answered elsewhere, expired): its calls are not made."""
    return CallRepository(session).cancel_for_followup(followup_id, now=now)


def customer_in_queues(session: Session, customer_id: int, queues: Iterable[str]) -> bool:
    """Whether the customer has a call in any of these queues (an agent's way to them)."""
    return CallRepository(session).customer_in_queues(customer_id, list(queues))


def history(session: Session, task: CallTask) -> list[tuple[dt.datetime, str, int | None]]:
    return [(row.at, row.outcome, row.agent_id) for row in CallRepository(session).outcomes(task.id)]


def staff_emails(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    return {k: v for k, v in staff.staff_emails(session).items() if k in wanted} if wanted else {}


def board(session: Session, *, now: dt.datetime, day_start: dt.datetime) -> dict[str, object]:
    """The supervisor's view: per queue, calls due, overdue, claimed and later; per agent, calls
    held now and outcomes since `day_start`; outcomes of the day in all."""
    repo = CallRepository(session)
    queues = repo.queue_counts(now=now, overdue_before=now - OVERDUE)
    outcomes = repo.outcomes_since(day_start)
    held = repo.claimed_by()
    emails = staff_emails(session, [agent for agent, _, _ in outcomes] + list(held))
    agents: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for agent, outcome, count in outcomes:
        name = emails.get(agent, "(removed)") if agent is not None else "(removed)"
        agents.setdefault(name, {})[outcome] = agents.setdefault(name, {}).get(outcome, 0) + count
        totals[outcome] = totals.get(outcome, 0) + count
    for agent, count in held.items():
        agents.setdefault(emails.get(agent, "(removed)"), {})["claimed now"] = count
    return {"queues": queues, "agents": dict(sorted(agents.items())), "outcomes": totals}
