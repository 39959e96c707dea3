from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from followup.customers import service
from followup.customers.schemas import CustomerOut, CustomerUpsert
from followup.kernel.http import AppSettings, ChannelNames, Keys, Now, ReadSession, WriteSession
from followup.kernel.openapi import may_answer
from followup.staff.auth import ApiActor

router = APIRouter(tags=["customers"])
CustomerId = Annotated[str, Path(min_length=1, max_length=128)]


@router.put("/customers/{customer_id}", response_model=CustomerOut)
def upsert_customer(
    customer_id: CustomerId,
    body: CustomerUpsert,
    session: WriteSession,
    actor: ApiActor,
    keys: Keys,
    now: Now,
    settings: AppSettings,
    channels: ChannelNames,
) -> CustomerOut:
    customer = service.upsert_customer(
        session,
        customer_id,
        body,
        keys=keys,
        limits=settings.input_limits,
        actor=actor,
        now=now,
        notice_version=settings.privacy_notice_version,
        channels=channels,
    )
    return service.describe_customer(session, customer, keys=keys, now=now)


@router.get("/customers/{customer_id}", response_model=CustomerOut, responses=may_answer(404))
def get_customer(customer_id: CustomerId, session: ReadSession, actor: ApiActor, keys: Keys, now: Now) -> CustomerOut:
    customer = service.access_customer(session, customer_id)
    return service.describe_customer(session, customer, keys=keys, now=now)
