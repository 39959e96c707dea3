from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from followup.customers import service as customers
from followup.followups import service
from followup.followups.enums import FollowupStatus
from followup.followups.schemas import FollowupOut
from followup.kernel.http import Keys, ReadSession
from followup.kernel.openapi import may_answer
from followup.kernel.pagination import Limit, Offset
from followup.kernel.schemas import Page
from followup.staff import roles
from followup.staff.auth import ApiActor

router = APIRouter(tags=["followups"])


@router.get("/followups", response_model=Page[FollowupOut], responses=may_answer(404))
def list_followups(
    session: ReadSession,
    actor: ApiActor,
    keys: Keys,
    customer_id: Annotated[str | None, Query(max_length=128)] = None,
    status: FollowupStatus | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[FollowupOut]:
    internal = customers.access_customer(session, customer_id).id if customer_id else None
    items, total = service.list_followups(session, customer_id=internal, status=status, limit=limit, offset=offset)
    shown = roles.pseudonymise(items, actor.role, keys.derive_key(roles.PSEUDONYM_KEY_LABEL))
    return Page[FollowupOut](items=shown, total=total)
