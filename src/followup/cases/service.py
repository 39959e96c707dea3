"""Cases: feedback that needs a human, opened in the same transaction as the answer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy.orm import Session

from followup.cases.models import Case
from followup.cases.repository import CaseRepository, open_security_case_join_sql
from followup.cases.schemas import CaseOut
from followup.cases.security import raises_security_concern
from followup.customers import service as customers
from followup.kernel.actors import Actor
from followup.kernel.errors import Conflict, NotFound
from followup.privacy import service as privacy
from followup.webhooks import service as webhooks

SLA = {"security": dt.timedelta(hours=4), "high": dt.timedelta(hours=24), "normal": dt.timedelta(hours=72)}


def is_detractor(*, nps: int | None, csat: int | None) -> bool:
    return (nps is not None and nps <= 6) or (csat is not None and csat <= 2)


def open_for_rating(
    session: Session,
    *,
    customer_id: int,
    followup_id: int,
    response_id: int,
    nps: int | None,
    csat: int | None,
    now: dt.datetime,
) -> Case | None:
    """A detractor case for NPS ≤ 6 or CSAT ≤ 2; high priority for the angriest (NPS ≤ 3, CSAT 1)."""
    if not is_detractor(nps=nps, csat=csat):
        return None
    repo = CaseRepository(session)
    if repo.exists_for_response(response_id, "detractor"):
        return None
    priority = "high" if (nps is not None and nps <= 3) or csat == 1 else "normal"
    parts = [f"NPS {nps}" if nps is not None else "", f"CSAT {csat}" if csat is not None else ""]
    case = Case(
        customer_id=customer_id,
        followup_id=followup_id,
        response_id=response_id,
        kind="detractor",
        priority=priority,
        status="open",
        summary="Detractor: " + ", ".join(p for p in parts if p),
        opened_at=now,
        due_at=now + SLA[priority],
    )
    repo.add(case)
    session.flush()
    _announce(session, case, "case.opened", now=now)
    return case


def open_for_comment(
    session: Session,
    *,
    customer_id: int,
    followup_id: int | None,
    response_id: int | None,
    texts: Iterable[str],
    now: dt.datetime,
) -> Case | None:
    """A `security` case when any free text (a survey's answer, an SMS reply) raises a security
    concern; one per response."""
    if not any(raises_security_concern(text) for text in texts):
        return None
    repo = CaseRepository(session)
    if response_id is not None and repo.exists_for_response(response_id, "security"):
        return None
    # The summary never quotes the comment: it is personal data and stays sealed in the response.
    case = Case(
        customer_id=customer_id,
        followup_id=followup_id,
        response_id=response_id,
        kind="security",
        priority="security",
        status="open",
        summary="Security concern raised in a comment; contact the customer and check the account.",
        opened_at=now,
        due_at=now + SLA["security"],
    )
    repo.add(case)
    session.flush()
    _announce(session, case, "case.opened", now=now)
    _announce(session, case, "security.concern", now=now)
    return case


def _announce(session: Session, case: Case, event_type: str, *, now: dt.datetime) -> None:
    """Tell the wallet's systems (outbound webhooks) about the case: ids and state, never the
    comment behind it."""
    external_id = customers.external_ids(session, [case.customer_id]).get(case.customer_id, "")
    webhooks.publish(
        session,
        event_type,
        {
            "case_id": case.id,
            "kind": case.kind,
            "priority": case.priority,
            "status": case.status,
            "customer_id": external_id,
            "followup_id": case.followup_id,
            "response_id": case.response_id,
            "opened_at": case.opened_at,
            "due_at": case.due_at,
            "closed_at": case.closed_at,
        },
        now=now,
    )


def customers_with_open_security_case(session: Session, customer_ids: Iterable[int]) -> set[int]:
    return CaseRepository(session).customers_with_open_security_case(customer_ids)


def open_security_case_join(alias: str, customer: str) -> str:
    """A LEFT JOIN giving `alias.customer_id` when the customer (a column expression) has an open
    security case: what `customers_with_open_security_case` tells, for a planner in the database."""
    return open_security_case_join_sql(alias, customer)


class CaseNotFound(NotFound):
    code = "case_not_found"


class CaseClosed(Conflict):
    code = "case_closed"


def access_case(session: Session, case_id: int, *, lock: bool = False) -> Case:
    case = CaseRepository(session).get(case_id, lock=lock)
    if case is None:
        raise CaseNotFound(f"No case with id {case_id}.", field="case_id")
    return case


def close_case(session: Session, case: Case, *, resolution: str, actor: Actor, now: dt.datetime) -> Case:
    """Close a case with what was done. Closing a security case lets follow-ups reach the customer again."""
    if case.status == "closed":
        raise CaseClosed(f"Case {case.id} is already closed.", field="case_id")
    external_id = customers.external_ids(session, [case.customer_id]).get(case.customer_id, "")
    case.status = "closed"
    case.closed_at = now
    privacy.record_audit(
        session,
        actor=actor,
        subject_type="case",
        subject_id=str(case.id),
        event="case.closed",
        now=now,
        old={"status": "open"},
        new={"status": "closed", "resolution": resolution, "customer_id": external_id},
    )
    session.flush()
    _announce(session, case, "case.updated", now=now)
    return case


def describe_cases(session: Session, rows: list[Case]) -> list[CaseOut]:
    external = customers.external_ids(session, {row.customer_id for row in rows})
    return [
        CaseOut(
            id=row.id,
            customer_id=external.get(row.customer_id, ""),
            followup_id=row.followup_id,
            response_id=row.response_id,
            kind=row.kind,
            priority=row.priority,
            status=row.status,
            summary=row.summary,
            opened_at=row.opened_at,
            due_at=row.due_at,
            closed_at=row.closed_at,
        )
        for row in rows
    ]


def list_cases(
    session: Session, *, status: str | None, priority: str | None, customer_id: int | None, limit: int, offset: int
) -> tuple[list[CaseOut], int]:
    rows, total = CaseRepository(session).list_cases(
        status=status, priority=priority, customer_id=customer_id, limit=limit, offset=offset
    )
    return describe_cases(session, rows), total
