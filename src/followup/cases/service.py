"""Cases: feedback that needs a human, opened in the same transaction as the answer, and worked to
the end — assigned, noted, answered, resolved, re-surveyed, closed or reopened — against the
deadlines of its priority, each step on the case's timeline.

A case moves open → assigned → waiting (on the customer) → resolved → closed; a customer's "no"
to "did we solve it?" (or an agent) reopens it. An agent works the cases of their queues alone: a
case of another queue is "not found" to them (`access_case_for`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from followup.cases.models import Case, CaseEvent
from followup.cases.repository import CaseRepository, open_security_case_join_sql
from followup.cases.schemas import CaseDetail, CaseEventOut, CaseOut, ResolutionCode
from followup.cases.security import raises_security_concern
from followup.config import Settings, parse_case_slas
from followup.customers import service as customers
from followup.kernel.actors import SYSTEM, Actor
from followup.kernel.crypto import KeyProvider, hash_token, new_token
from followup.kernel.errors import Conflict, InvalidInput, NotFound
from followup.privacy import service as privacy
from followup.privacy.scrubbing import PAYMENT_AND_IDENTITY, scrub
from followup.staff import roles
from followup.staff import service as staff
from followup.webhooks import service as webhooks

Slas = Mapping[str, tuple[dt.timedelta, dt.timedelta]]
CaseRow = Case  # the stored case, for the layers above that work it (`followups.casework`)
DEFAULT_SLAS: Slas = parse_case_slas(str(Settings.model_fields["case_slas"].default))
# Which queue works each kind of case.
QUEUE_OF_KIND = {"security": "security", "complaint": "complaint", "detractor": "detractor"}
STATUSES = ("open", "assigned", "waiting", "resolved", "closed", "reopened")
# Still to be worked: every status but these.
DONE = ("resolved", "closed")
NOTE_MAX = 4000
TEXT_PURPOSE = "case-text"  # what notes, replies and resolutions are sealed under


def is_detractor(*, nps: int | None, csat: int | None) -> bool:
    return (nps is not None and nps <= 6) or (csat is not None and csat <= 2)


def _opened_row(
    *,
    customer_id: int,
    followup_id: int | None,
    response_id: int | None,
    kind: str,
    priority: str,
    summary: str,
    slas: Slas | None,
    now: dt.datetime,
) -> dict[str, Any]:
    """A new case's columns: open in its kind's queue, due by its priority's deadlines."""
    first, resolution = (slas or DEFAULT_SLAS)[priority]
    return {
        "customer_id": customer_id,
        "followup_id": followup_id,
        "response_id": response_id,
        "kind": kind,
        "queue": QUEUE_OF_KIND[kind],
        "priority": priority,
        "status": "open",
        "summary": summary,
        "opened_at": now,
        "first_response_due_at": now + first,
        "due_at": now + resolution,
        "reopened_count": 0,
    }


def _open(session: Session, **row: Any) -> Case:
    """A case, its timeline's first line, its assignee and its announcement, at once."""
    case = Case(**_opened_row(**row))
    CaseRepository(session).add(case)
    session.flush()
    _settle(session, case, now=case.opened_at)
    return case


def _settle(session: Session, case: Case, *, now: dt.datetime) -> None:
    detail = {"queue": case.queue, "priority": case.priority}
    _record(session, case, "opened", actor=SYSTEM, now=case.opened_at, detail=detail)
    _assign_next(session, case, now=now)
    assignee = staff.staff_emails(session).get(case.assignee_id) if case.assignee_id else None
    _audit(
        session,
        case,
        "case.opened",
        actor=SYSTEM,
        now=now,
        kind=case.kind,
        queue=case.queue,
        priority=case.priority,
        assignee=assignee,
    )
    _announce(session, case, "case.opened", now=now)


def settle_opened(session: Session, case_id: int, *, now: dt.datetime) -> None:
    """The rest of opening a case whose row an answer wrote: the timeline's first line, the
    round-robin assignee and `case.opened`. Nothing when the case has gone meanwhile or already
    has its first line."""
    repo = CaseRepository(session)
    case = repo.get(case_id, lock=True)
    if case is None or repo.has_events(case_id):
        return
    _settle(session, case, now=now)


def open_for_rating(
    session: Session,
    *,
    customer_id: int,
    followup_id: int,
    response_id: int,
    nps: int | None,
    csat: int | None,
    now: dt.datetime,
    slas: Slas | None = None,
) -> int | None:
    """A detractor case for NPS ≤ 6 or CSAT ≤ 2 (high priority for the angriest, NPS ≤ 3 or
    CSAT 1), for a response the caller has just written; its id.

    Only the case's row is written, through the connection: the answer's transaction holds the
    write lock every other answer waits for. The caller has `settle_opened` run later for the
    timeline, the assignee and `case.opened`."""
    if not is_detractor(nps=nps, csat=csat):
        return None
    priority = "high" if (nps is not None and nps <= 3) or csat == 1 else "normal"
    parts = [f"NPS {nps}" if nps is not None else "", f"CSAT {csat}" if csat is not None else ""]
    row = _opened_row(
        customer_id=customer_id,
        followup_id=followup_id,
        response_id=response_id,
        kind="detractor",
        priority=priority,
        summary="Detractor: " + ", ".join(p for p in parts if p),
        slas=slas,
        now=now,
    )
    return CaseRepository(session).add_row(**row)


def open_for_comment(
    session: Session,
    *,
    customer_id: int,
    followup_id: int | None,
    response_id: int | None,
    texts: Iterable[str],
    now: dt.datetime,
    slas: Slas | None = None,
) -> Case | None:
    """A `security` case when any free text (a survey's answer, an SMS reply) raises a security
    concern; one per response."""
    if not any(raises_security_concern(text) for text in texts):
        return None
    return open_security_case(
        session,
        customer_id=customer_id,
        followup_id=followup_id,
        response_id=response_id,
        summary="Security concern raised in a comment; contact the customer and check the account.",
        slas=slas,
        now=now,
    )


def open_for_denial(
    session: Session,
    *,
    customer_id: int,
    followup_id: int,
    response_id: int,
    now: dt.datetime,
    slas: Slas | None = None,
) -> Case | None:
    """A `security` case for a "no" to a yes_no question ("Was this you?"): the customer says what
    they were asked about was not them, so the risk team hears of it at once (`security.concern`)."""
    return open_security_case(
        session,
        customer_id=customer_id,
        followup_id=followup_id,
        response_id=response_id,
        summary='The customer answered "not me" to a security check; help them freeze the account and check it.',
        slas=slas,
        now=now,
    )


def open_security_case(
    session: Session,
    *,
    customer_id: int,
    followup_id: int | None,
    response_id: int | None,
    summary: str,
    now: dt.datetime,
    slas: Slas | None = None,
) -> Case | None:
    """A security case, announced at once (`security.concern`) to the risk team. The summary never
    quotes the customer: their words are personal data and stay sealed in the response."""
    if response_id is not None and CaseRepository(session).exists_for_response(response_id, "security"):
        return None
    case = _open(
        session,
        customer_id=customer_id,
        followup_id=followup_id,
        response_id=response_id,
        kind="security",
        priority="security",
        summary=summary,
        slas=slas,
        now=now,
    )
    _announce(session, case, "security.concern", now=now)
    return case


def _assign_next(session: Session, case: Case, *, now: dt.datetime) -> None:
    """Round robin over the agents of the case's queue: the one after whoever got the queue's last
    assigned case. A queue without agents leaves the case open for someone to take."""
    agents = staff.queue_members(session, case.queue, role=roles.AGENT)
    if not agents:
        return
    last = CaseRepository(session).last_assignee(case.queue, before=case.id)
    following = [agent for agent in agents if last is not None and agent.id > last]
    chosen = following[0] if following else agents[0]
    case.assignee_id = chosen.id
    case.status = "assigned"
    _record(session, case, "assigned", actor=SYSTEM, now=now, detail={"assignee": chosen.email, "how": "round robin"})


def _announce(session: Session, case: Case, event_type: str, *, now: dt.datetime) -> None:
    """Tell the wallet's systems (outbound webhooks) about the case: ids and state, never the
    comment behind it, a note or a reply."""
    external_id = customers.external_ids(session, [case.customer_id]).get(case.customer_id, "")
    assignee = staff.staff_emails(session).get(case.assignee_id) if case.assignee_id else None
    webhooks.publish(
        session,
        event_type,
        {
            "case_id": case.id,
            "kind": case.kind,
            "queue": case.queue,
            "priority": case.priority,
            "status": case.status,
            "assignee": assignee,
            "customer_id": external_id,
            "followup_id": case.followup_id,
            "response_id": case.response_id,
            "opened_at": case.opened_at,
            "first_response_due_at": case.first_response_due_at,
            "due_at": case.due_at,
            "breach": case.breach,
            "resolution_code": case.resolution_code,
            "resolved_at": case.resolved_at,
            "closed_at": case.closed_at,
        },
        now=now,
    )


def _record(
    session: Session,
    case: Case,
    kind: str,
    *,
    actor: Actor,
    now: dt.datetime,
    detail: Mapping[str, Any] | None = None,
    text: str | None = None,
    keys: KeyProvider | None = None,
) -> CaseEvent:
    sealed = None
    if text is not None and keys is not None:
        sealed = customers.seal_for_customer(
            session, case.customer_id, text.encode(), keys=keys, now=now, purpose=TEXT_PURPOSE
        )
    event = CaseEvent(
        case_id=case.id,
        at=now,
        actor=str(actor),
        kind=kind,
        detail=dict(detail) if detail else None,
        text_sealed=sealed,
    )
    CaseRepository(session).add_event(event)
    return event


def customers_with_open_security_case(session: Session, customer_ids: Iterable[int]) -> set[int]:
    """Customers whose security case is not closed yet: feedback follow-ups wait for them."""
    return CaseRepository(session).customers_with_open_security_case(customer_ids)


def open_security_case_join(alias: str, customer: str) -> str:
    """A LEFT JOIN giving `alias.customer_id` when the customer (a column expression) has a security
    case not closed yet: what `customers_with_open_security_case` tells, for a planner in the database."""
    return open_security_case_join_sql(alias, customer)


class CaseNotFound(NotFound):
    code = "case_not_found"


class CaseClosed(Conflict):
    code = "case_closed"


class CaseStateConflict(Conflict):
    code = "case_state"


def access_case(session: Session, case_id: int, *, lock: bool = False) -> Case:
    case = CaseRepository(session).get(case_id, lock=lock)
    if case is None:
        raise CaseNotFound(f"No case with id {case_id}.", field="case_id")
    return case


def _works_queue(actor: Actor, queue: str) -> bool:
    """Agents work the queues they belong to; every other role the table lets in works them all."""
    return actor.role != roles.AGENT or queue in actor.queues


def access_case_for(session: Session, case_id: int, actor: Actor, *, lock: bool = False) -> Case:
    """The case, if this actor works its queue; the same "not found" as a missing case otherwise."""
    case = CaseRepository(session).get(case_id, lock=lock)
    if case is None or not _works_queue(actor, case.queue):
        raise CaseNotFound(f"No case with id {case_id}.", field="case_id")
    return case


def _audit(
    session: Session,
    case: Case,
    event: str,
    *,
    actor: Actor,
    now: dt.datetime,
    old: Mapping[str, Any] | None = None,
    **new: Any,
) -> None:
    """A case's change in the audit log: ids, states and codes; never a note's, reply's or
    resolution's words (those are sealed on the timeline; the line says "sealed")."""
    privacy.record_audit(
        session,
        actor=actor,
        subject_type="case",
        subject_id=str(case.id),
        event=event,
        now=now,
        old=old,
        new={"status": case.status, **new},
    )


def customer_in_queues(session: Session, customer_id: int, queues: Iterable[str]) -> bool:
    """Whether the customer has a case in any of these queues (an agent's way to them)."""
    return CaseRepository(session).customer_in_queues(customer_id, list(queues))


def assign(session: Session, case: Case, assignee: str | None, *, actor: Actor, now: dt.datetime) -> Case:
    """Give the case to a staff member (by email) who works its queue, or to no one (`None`)."""
    if case.status == "closed":
        raise CaseClosed(f"Case {case.id} is closed; reopen it first.", field="case_id")
    email = None
    old = {
        "status": case.status,
        "assignee": staff.staff_emails(session).get(case.assignee_id) if case.assignee_id else None,
    }
    if assignee is None:
        case.assignee_id = None
        if case.status == "assigned":
            case.status = "open"
    else:
        member = staff.find_staff_by_email(session, assignee)
        if member is None or member.disabled_at is not None:
            raise InvalidInput(f"No enabled staff member has the email {assignee[:254]!r}.", field="assignee")
        if member.role == roles.AGENT and case.queue not in member.queues.split():
            raise InvalidInput(
                f"{member.email} does not work the '{case.queue}' queue; add the queue to their account first.",
                field="assignee",
            )
        if member.role not in (roles.AGENT, roles.ADMIN):
            raise InvalidInput(f"{member.email} is an {member.role}; cases go to agents or admins.", field="assignee")
        case.assignee_id, email = member.id, member.email
        if case.status in ("open", "reopened"):
            case.status = "assigned"
    _record(session, case, "assigned", actor=actor, now=now, detail={"assignee": email, "how": "by hand"})
    _audit(session, case, "case.assigned", actor=actor, now=now, old=old, assignee=email)
    session.flush()
    _announce(session, case, "case.updated", now=now)
    return case


def _check_text(text: str, *, field: str) -> str:
    cleaned = text.strip()
    if not cleaned:
        raise InvalidInput("Write something: the text is empty.", field=field)
    if len(cleaned) > NOTE_MAX:
        raise InvalidInput(f"Keep it under {NOTE_MAX:,} characters.", field=field)
    return cleaned


def add_note(
    session: Session,
    case: Case,
    text: str,
    *,
    actor: Actor,
    keys: KeyProvider,
    now: dt.datetime,
    slas: Slas | None = None,
) -> CaseEventOut:
    """An internal note: staff alone read it, scrubbed and sealed under the customer's key. A note
    that raises a security concern on a case of another kind opens a security case at once."""
    cleaned = scrub(_check_text(text, field="text"))
    note = _record(session, case, "note", actor=actor, now=now, text=cleaned, keys=keys)
    session.flush()
    _audit(session, case, "case.noted", actor=actor, now=now, note_id=note.id, text="sealed")
    if case.kind != "security" and raises_security_concern(cleaned):
        open_security_case(
            session,
            customer_id=case.customer_id,
            followup_id=case.followup_id,
            response_id=None,
            summary=f"Security concern raised in a note on case {case.id}; check the account.",
            now=now,
            slas=slas,
        )
    session.flush()
    return CaseEventOut(at=now, actor=str(actor), kind="note", detail={}, text=cleaned)


def record_reply(
    session: Session,
    case: Case,
    text: str,
    *,
    channel: str,
    message_id: int | None,
    actor: Actor,
    keys: KeyProvider,
    now: dt.datetime,
) -> None:
    """A reply the customer is sent about their case: the first one answers the first-response
    deadline, and the case then waits on the customer. Its card, code and ID numbers are
    scrubbed; phone numbers and emails stay, since a reply's are most often our own."""
    if case.status == "closed":
        raise CaseClosed(f"Case {case.id} is closed; reopen it to write to the customer.", field="case_id")
    reply = _record(
        session,
        case,
        "reply",
        actor=actor,
        now=now,
        text=scrub(text, kinds=PAYMENT_AND_IDENTITY),
        keys=keys,
        detail={"channel": channel, "message_id": message_id},
    )
    session.flush()
    old_status = case.status
    if case.first_response_at is None:
        case.first_response_at = now
    if case.status in ("open", "assigned", "reopened"):
        case.status = "waiting"
    privacy.record_audit(
        session,
        actor=actor,
        subject_type="case",
        subject_id=str(case.id),
        event="case.replied",
        now=now,
        old={"status": old_status},
        new={
            "status": case.status,
            "reply_id": reply.id,
            "text": "sealed",
            "channel": channel,
            "message_id": message_id,
        },
    )
    session.flush()
    _announce(session, case, "case.updated", now=now)


RESOLUTION_CODES: tuple[str, ...] = ("fixed", "explained", "refunded", "duplicate", "no_action")


def resolve(
    session: Session,
    case: Case,
    *,
    code: ResolutionCode,
    root_cause: str,
    action: str,
    actor: Actor,
    keys: KeyProvider,
    now: dt.datetime,
) -> str:
    """Mark the case resolved with what was done; the token of its "did we solve it?" link, for the
    caller to send the customer."""
    if case.status in DONE:
        raise CaseStateConflict(f"Case {case.id} is already {case.status}.", field="case_id")
    old = {"status": case.status}
    text = json.dumps({"root_cause": scrub(root_cause.strip()), "action": scrub(action.strip())}, ensure_ascii=False)
    case.status, case.resolved_at, case.resolution_code = "resolved", now, code
    token = new_token()
    case.resurvey_token_hash, case.resurvey_solved, case.resurvey_csat = hash_token(token), None, None
    _record(session, case, "resolved", actor=actor, now=now, detail={"code": code}, text=text, keys=keys)
    _audit(session, case, "case.resolved", actor=actor, now=now, old=old, code=code, resolution="sealed")
    session.flush()
    _announce(session, case, "case.updated", now=now)
    _announce(session, case, "case.resolved", now=now)
    return token


# What the customer's answer to "did we solve it?" does, in our own words (never sealed).
CUSTOMER_REOPENS = "the customer says it is not solved"
CUSTOMER_CLOSES = "The customer says it is solved."


def reopen(
    session: Session,
    case: Case,
    *,
    actor: Actor,
    now: dt.datetime,
    why: str = "by hand",
    keys: KeyProvider | None = None,
) -> Case:
    """Work the case again: after a resolution the customer found wanting, or one closed too soon.
    A reason staff typed is sealed on the timeline (with `keys`); the audit line says only that it
    is there."""
    if case.status not in DONE:
        raise CaseStateConflict(f"Case {case.id} is {case.status}, not resolved or closed.", field="case_id")
    old = {"status": case.status}
    case.status = "assigned" if case.assignee_id else "reopened"
    case.resolved_at = case.closed_at = None
    case.resurvey_token_hash = None
    case.reopened_count += 1
    case.breach = None
    typed = why not in ("by hand", CUSTOMER_REOPENS) and keys is not None
    shown = "sealed" if typed else why
    _record(
        session, case, "reopened", actor=actor, now=now, detail={"why": shown}, text=why if typed else None, keys=keys
    )
    _audit(session, case, "case.reopened", actor=actor, now=now, old=old, why=shown)
    session.flush()
    _announce(session, case, "case.updated", now=now)
    return case


def seal_reopen_reasons(session: Session, *, keys: KeyProvider, now: dt.datetime) -> int:
    """Seal the reopening reasons staff typed before reasons were sealed; how many. Migration 0020
    took them out of the audit log but could not seal them on the timeline (sealing needs the
    master key, which a migration does not have), so `followup db upgrade` runs this after it.
    Running it again finds nothing."""
    sealed = 0
    for event, customer_id in CaseRepository(session).reopenings_unsealed():
        why = (event.detail or {}).get("why")
        if not isinstance(why, str) or why in ("sealed", "by hand", CUSTOMER_REOPENS):
            continue
        event.text_sealed = customers.seal_for_customer(
            session, customer_id, why.encode(), keys=keys, now=now, purpose=TEXT_PURPOSE
        )
        event.detail = {**(event.detail or {}), "why": "sealed"}
        sealed += 1
    session.flush()
    return sealed


def close_case(
    session: Session,
    case: Case,
    *,
    resolution: str,
    actor: Actor,
    now: dt.datetime,
    keys: KeyProvider | None = None,
) -> Case:
    """Close a case with what was done. Closing a security case lets follow-ups reach the customer
    again. The resolution's words are sealed on the timeline; the audit line says only "sealed"."""
    if case.status == "closed":
        raise CaseClosed(f"Case {case.id} is already closed.", field="case_id")
    resolution = scrub(resolution)  # sealed on the timeline
    if keys is None and resolution != CUSTOMER_CLOSES:
        raise ValueError("a resolution staff wrote is sealed: close_case needs the keys")
    external_id = customers.external_ids(session, [case.customer_id]).get(case.customer_id, "")
    old = case.status
    case.status = "closed"
    case.closed_at = now
    privacy.record_audit(
        session,
        actor=actor,
        subject_type="case",
        subject_id=str(case.id),
        event="case.closed",
        now=now,
        old={"status": old},
        new={
            "status": "closed",
            "resolution": "sealed" if keys is not None else resolution,
            "customer_id": external_id,
        },
    )
    _record(session, case, "closed", actor=actor, now=now, text=resolution if keys is not None else None, keys=keys)
    session.flush()
    _announce(session, case, "case.updated", now=now)
    return case


class ResurveyInvalid(NotFound):
    code = "resurvey_link_invalid"


def open_resurvey(session: Session, token: str) -> Case:
    """The case behind a "did we solve it?" link; ResurveyInvalid for an unknown or spent one."""
    case = CaseRepository(session).by_resurvey_token(hash_token(token)) if 0 < len(token) <= 100 else None
    if case is None:
        raise ResurveyInvalid("This link is not valid any more.")
    return case


def answer_resurvey(session: Session, case: Case, *, solved: bool, now: dt.datetime) -> None:
    """The customer's yes or no: yes closes the case, no reopens it. Once: a second answer changes nothing."""
    if case.resurvey_solved is not None:
        return
    customer = _customer_actor(session, case)
    case.resurvey_solved = solved
    _record(session, case, "resurvey_answered", actor=customer, now=now, detail={"solved": solved})
    if solved:
        # The link stays open for the rating that follows the "yes".
        if case.status != "closed":
            close_case(session, case, resolution=CUSTOMER_CLOSES, actor=customer, now=now)
    else:
        reopen(session, case, actor=customer, now=now, why=CUSTOMER_REOPENS)
        case.resurvey_token_hash = None


def _customer_actor(session: Session, case: Case) -> Actor:
    """The customer, named by the wallet's id as everywhere else in the audit log."""
    return Actor(kind="customer", id=str(case.customer_id))


def rate_resolution(session: Session, case: Case, csat: int, *, now: dt.datetime) -> None:
    """The CSAT (1–5) after a "yes"; the link is spent afterwards."""
    if not 1 <= csat <= 5:
        raise InvalidInput("A rating is a whole number from 1 to 5.", field="csat")
    case.resurvey_csat = csat
    case.resurvey_token_hash = None
    _record(
        session,
        case,
        "resurvey_rated",
        actor=Actor(kind="customer", id=str(case.customer_id)),
        now=now,
        detail={"csat": csat},
    )
    session.flush()


@dataclass(frozen=True)
class Breach:
    """A deadline a case missed, and who must hear of it."""

    case_id: int
    queue: str
    priority: str
    breach: str
    due_at: dt.datetime
    supervisors: tuple[str, ...]


def escalate_breaches(session: Session, *, now: dt.datetime, limit: int = 200) -> list[Breach]:
    """Mark every case past a deadline it has not met, once per deadline, announce it
    (`case.updated` with `breach`), and return the breaches for the supervisors' email."""
    found: list[Breach] = []
    for case in CaseRepository(session).breaching(now=now, limit=limit):
        missed_first = case.first_response_at is None and case.first_response_due_at is not None
        missed_first = missed_first and case.first_response_due_at <= now and case.breach is None  # type: ignore[operator]
        which = "first_response" if missed_first else "resolution"
        due = case.first_response_due_at if which == "first_response" else case.due_at
        case.breach, case.breached_at = which, now
        _record(session, case, "breached", actor=SYSTEM, now=now, detail={"deadline": which})
        _audit(session, case, "case.escalated", actor=SYSTEM, now=now, breach=which)
        supervisors = tuple(member.email for member in staff.queue_supervisors(session, case.queue))
        session.flush()
        _announce(session, case, "case.updated", now=now)
        found.append(Breach(case.id, case.queue, case.priority, which, due or case.due_at, supervisors))
    return found


def _overdue(case: Case, now: dt.datetime) -> bool:
    if case.status in DONE:
        return False
    first_late = case.first_response_at is None and case.first_response_due_at is not None
    return case.due_at <= now or (first_late and case.first_response_due_at <= now)  # type: ignore[operator]


def describe_cases(session: Session, rows: Sequence[Case], *, now: dt.datetime | None = None) -> list[CaseOut]:
    external = customers.external_ids(session, {row.customer_id for row in rows})
    emails = staff.staff_emails(session) if any(row.assignee_id for row in rows) else {}
    at = now or dt.datetime.now(dt.UTC)
    return [
        CaseOut(
            id=row.id,
            customer_id=external.get(row.customer_id, ""),
            followup_id=row.followup_id,
            response_id=row.response_id,
            kind=row.kind,
            queue=row.queue,
            priority=row.priority,
            status=row.status,
            summary=row.summary,
            assignee=emails.get(row.assignee_id) if row.assignee_id else None,
            opened_at=row.opened_at,
            first_response_due_at=row.first_response_due_at,
            first_response_at=row.first_response_at,
            due_at=row.due_at,
            overdue=_overdue(row, at),
            breach=row.breach,
            resolved_at=row.resolved_at,
            resolution_code=row.resolution_code,
            resurvey_solved=row.resurvey_solved,
            resurvey_csat=row.resurvey_csat,
            closed_at=row.closed_at,
        )
        for row in rows
    ]


def describe_case(session: Session, case: Case, *, keys: KeyProvider, now: dt.datetime) -> CaseDetail:
    """The case with its timeline, notes and replies opened for the reader."""
    (out,) = describe_cases(session, [case], now=now)
    events = []
    for row in CaseRepository(session).events(case.id):
        text = None
        if row.text_sealed is not None:
            plain = customers.open_for_customer(
                session, case.customer_id, row.text_sealed, keys=keys, purpose=TEXT_PURPOSE
            )
            text = _readable(row.kind, plain.decode()) if plain is not None else "(erased)"
        events.append(CaseEventOut(at=row.at, actor=row.actor, kind=row.kind, detail=row.detail or {}, text=text))
    return CaseDetail(**out.model_dump(), timeline=events)


def _readable(kind: str, text: str) -> str:
    """A resolution's sealed cause and action, as a person reads them."""
    if kind != "resolved":
        return text
    try:
        parts = json.loads(text)
    except ValueError:
        return text
    return f"Root cause: {parts.get('root_cause', '')}\nWhat was done: {parts.get('action', '')}"


@dataclass(frozen=True)
class CaseFilter:
    status: str | None = None
    priority: str | None = None
    queue: str | None = None
    assignee: str | None = None  # an email, or "none" for unassigned
    overdue: bool = False
    customer_id: int | None = None


def list_cases(
    session: Session,
    *,
    status: str | None,
    priority: str | None,
    customer_id: int | None,
    limit: int,
    offset: int,
    actor: Actor | None = None,
    queue: str | None = None,
    assignee: str | None = None,
    overdue: bool = False,
    now: dt.datetime | None = None,
) -> tuple[list[CaseOut], int]:
    """A page of cases, newest first. `status` may be `active` (anything not resolved or closed).
    An agent sees the cases of their queues alone."""
    at = now or dt.datetime.now(dt.UTC)
    queues = list(actor.queues) if actor is not None and actor.role == roles.AGENT else None
    assignee_id: int | None = None
    unassigned = assignee == "none"
    if assignee and not unassigned:
        member = staff.find_staff_by_email(session, assignee)
        if member is None:
            return [], 0
        assignee_id = member.id
    rows, total = CaseRepository(session).list_cases(
        status=status,
        priority=priority,
        customer_id=customer_id,
        queue=queue,
        queues=queues,
        assignee_id=assignee_id,
        unassigned=unassigned,
        overdue_at=at if overdue else None,
        limit=limit,
        offset=offset,
    )
    return describe_cases(session, rows, now=at), total


CSV_LIMIT = 50_000
CSV_COLUMNS = (
    "id",
    "kind",
    "queue",
    "priority",
    "status",
    "assignee",
    "customer_id",
    "summary",
    "opened_at",
    "first_response_due_at",
    "first_response_at",
    "due_at",
    "overdue",
    "breach",
    "resolved_at",
    "resolution_code",
    "resurvey_solved",
    "resurvey_csat",
    "closed_at",
)


def cases_csv(
    session: Session,
    *,
    actor: Actor,
    status: str | None,
    priority: str | None,
    queue: str | None,
    assignee: str | None,
    overdue: bool,
    now: dt.datetime,
) -> str:
    """The cases a list shows, all of them (up to CSV_LIMIT), as CSV: no note, reply or comment."""
    rows, _ = list_cases(
        session,
        status=status,
        priority=priority,
        customer_id=None,
        limit=CSV_LIMIT,
        offset=0,
        actor=actor,
        queue=queue,
        assignee=assignee,
        overdue=overdue,
        now=now,
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        data = row.model_dump(mode="json")
        writer.writerow([_csv_cell(data.get(column)) for column in CSV_COLUMNS])
    return out.getvalue()


def _csv_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text: a leading =, +, - or @ would be read as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def queue_board(session: Session, *, now: dt.datetime) -> dict[str, dict[str, int]]:
    """Per queue: cases active, unassigned, overdue and breached — the supervisor's view."""
    return CaseRepository(session).queue_board(now=now)
