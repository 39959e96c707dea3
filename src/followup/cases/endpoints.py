"""The case API: list and read cases, assign them, write internal notes, reopen and close them.
Replying to the customer and resolving (which asks the customer "did we solve it?") send
messages, so they live with the follow-ups (`followups.case_endpoints`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from followup.cases import service
from followup.cases.schemas import (
    CaseAssign,
    CaseClose,
    CaseDetail,
    CaseEventOut,
    CaseNote,
    CaseOut,
    CasePriority,
    CaseReopen,
    CaseStatusFilter,
)
from followup.customers import service as customers
from followup.kernel.http import AppSettings, Keys, Now, ReadSession, WriteSession
from followup.kernel.openapi import may_answer
from followup.kernel.pagination import Limit, Offset
from followup.kernel.schemas import Page
from followup.staff.auth import ApiActor

router = APIRouter(tags=["cases"])
CaseId = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/cases", response_model=Page[CaseOut], responses=may_answer(404))
def list_cases(
    session: ReadSession,
    actor: ApiActor,
    now: Now,
    status: Annotated[
        CaseStatusFilter | None, Query(description="one status, or `active` for every case not resolved or closed")
    ] = None,
    priority: CasePriority | None = None,
    queue: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z][a-z0-9_-]{0,31}$")] = None,
    assignee: Annotated[
        str | None, Query(max_length=254, description="an assignee's email, or `none` for unassigned cases")
    ] = None,
    overdue: Annotated[bool, Query(description="only cases past a deadline and still being worked")] = False,
    customer_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[CaseOut]:
    internal = customers.access_customer(session, customer_id).id if customer_id else None
    items, total = service.list_cases(
        session,
        status=status,
        priority=priority,
        customer_id=internal,
        limit=limit,
        offset=offset,
        actor=actor,
        queue=queue,
        assignee=assignee,
        overdue=overdue,
        now=now,
    )
    return Page[CaseOut](items=items, total=total)


@router.get("/cases/{case_id}", response_model=CaseDetail, responses=may_answer(404))
def get_case(case_id: CaseId, session: ReadSession, actor: ApiActor, keys: Keys, now: Now) -> CaseDetail:
    return service.describe_case(session, service.access_case_for(session, case_id, actor), keys=keys, now=now)


@router.post("/cases/{case_id}/assign", response_model=CaseOut, responses=may_answer(404, 409, 422))
def assign_case(case_id: CaseId, body: CaseAssign, session: WriteSession, actor: ApiActor, now: Now) -> CaseOut:
    case = service.access_case_for(session, case_id, actor, lock=True)
    service.assign(session, case, body.assignee, actor=actor, now=now)
    return service.describe_cases(session, [case], now=now)[0]


@router.post("/cases/{case_id}/notes", response_model=CaseEventOut, status_code=201, responses=may_answer(404, 422))
def add_note(
    case_id: CaseId,
    body: CaseNote,
    *,
    session: WriteSession,
    actor: ApiActor,
    keys: Keys,
    now: Now,
    settings: AppSettings,
) -> CaseEventOut:
    case = service.access_case_for(session, case_id, actor, lock=True)
    return service.add_note(session, case, body.text, actor=actor, keys=keys, now=now, slas=settings.case_sla)


@router.post("/cases/{case_id}/reopen", response_model=CaseOut, responses=may_answer(404, 409))
def reopen_case(
    case_id: CaseId, body: CaseReopen, session: WriteSession, actor: ApiActor, keys: Keys, now: Now
) -> CaseOut:
    case = service.access_case_for(session, case_id, actor, lock=True)
    service.reopen(session, case, actor=actor, now=now, why=body.reason, keys=keys)
    return service.describe_cases(session, [case], now=now)[0]


@router.post("/cases/{case_id}/close", response_model=CaseOut, responses=may_answer(404, 409))
def close_case(
    case_id: CaseId, body: CaseClose, session: WriteSession, actor: ApiActor, keys: Keys, now: Now
) -> CaseOut:
    case = service.close_case(
        session,
        service.access_case_for(session, case_id, actor, lock=True),
        resolution=body.resolution,
        actor=actor,
        now=now,
        keys=keys,
    )
    return service.describe_cases(session, [case], now=now)[0]
