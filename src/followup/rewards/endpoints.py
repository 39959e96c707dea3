from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from followup.customers import service as customers
from followup.kernel.http import ReadSession
from followup.kernel.openapi import may_answer
from followup.rewards import service
from followup.rewards.schemas import RewardsOut
from followup.staff.auth import ApiActor

router = APIRouter(tags=["rewards"])


@router.get("/customers/{customer_id}/rewards", response_model=RewardsOut, responses=may_answer(404))
def get_rewards(
    customer_id: Annotated[str, Path(min_length=1, max_length=128)], session: ReadSession, actor: ApiActor
) -> RewardsOut:
    customer = customers.access_customer(session, customer_id)
    return service.describe_rewards(session, customer.id, subject_id=customer.external_id)
