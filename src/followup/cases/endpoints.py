from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from followup.cases import service
from followup.cases.schemas import CaseClose, CaseOut, CasePriority, CaseStatus
from followup.customers import service as customers
from followup.kernel.http import Now, ReadSession, WriteSession
from followup.kernel.openapi import may_answer
from followup.kernel.pagination import Limit, Offset
from followup.kernel.schemas import Page
from followup.staff.auth import ApiActor

router = APIRouter(tags=["cases"])


@router.get("/cases", response_model=Page[CaseOut], responses=may_answer(404))
def list_cases(
    session: ReadSession,
    actor: ApiActor,
    status: CaseStatus | None = None,
    priority: CasePriority | None = None,
    customer_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[CaseOut]:
    internal = customers.access_customer(session, customer_id).id if customer_id else None
    items, total = service.list_cases(
        session, status=status, priority=priority, customer_id=internal, limit=limit, offset=offset
    )
    return Page[CaseOut](items=items, total=total)


@router.post("/cases/{case_id}/close", response_model=CaseOut, responses=may_answer(404, 409))
def close_case(
    case_id: Annotated[int, Path(ge=1, le=2**62)], body: CaseClose, session: WriteSession, actor: ApiActor, now: Now
) -> CaseOut:
    case = service.close_case(
        session, service.access_case(session, case_id, lock=True), resolution=body.resolution, actor=actor, now=now
    )
    return service.describe_cases(session, [case])[0]
