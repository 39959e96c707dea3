from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from followup.cases import service
from followup.cases.schemas import CaseOut, CasePriority, CaseStatus
from followup.customers import service as customers
from followup.kernel.http import ReadSession
from followup.kernel.pagination import Limit, Offset
from followup.kernel.schemas import Page
from followup.staff.auth import ApiActor

router = APIRouter(tags=["cases"])


@router.get("/cases", response_model=Page[CaseOut])
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
