from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from followup.customers import contact_points, service
from followup.customers.schemas import ContactPointOut, CustomerOut, CustomerUpsert, DeviceIn
from followup.kernel.http import AppSettings, ChannelNames, Keys, Now, ReadSession, WriteSession
from followup.kernel.openapi import may_answer
from followup.kernel.pagination import Limit, Offset
from followup.kernel.schemas import Page
from followup.privacy import service as privacy
from followup.privacy.schemas import ConsentHistoryItem
from followup.staff.auth import ApiActor

router = APIRouter(tags=["customers"])
CustomerId = Annotated[str, Path(min_length=1, max_length=128)]
DeviceId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]


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
        built_in_notice_version=settings.privacy_notice_version,
        channels=channels,
    )
    return service.describe_customer(session, customer, keys=keys, now=now)


@router.get("/customers/{customer_id}", response_model=CustomerOut, responses=may_answer(404))
def get_customer(customer_id: CustomerId, session: ReadSession, actor: ApiActor, keys: Keys, now: Now) -> CustomerOut:
    customer = service.access_customer(session, customer_id)
    return service.describe_customer(session, customer, keys=keys, now=now)


@router.get(
    "/customers/{customer_id}/consents/history", response_model=Page[ConsentHistoryItem], responses=may_answer(404)
)
def get_consent_history(
    customer_id: CustomerId, session: ReadSession, actor: ApiActor, limit: Limit = 50, offset: Offset = 0
) -> Page[ConsentHistoryItem]:
    """Every consent the customer gave or withdrew, newest first: how, by whom, under which notice."""
    customer = service.access_customer(session, customer_id)
    items, total = privacy.consent_history(session, customer.id, limit=limit, offset=offset)
    return Page[ConsentHistoryItem](items=items, total=total)


@router.put(
    "/customers/{customer_id}/devices/{device_id}",
    response_model=ContactPointOut,
    status_code=200,
    responses={201: {"model": ContactPointOut, "description": "The device was registered"}, **may_answer(404)},
)
def put_device(
    customer_id: CustomerId,
    device_id: DeviceId,
    body: DeviceIn,
    response: Response,
    session: WriteSession,
    actor: ApiActor,
    keys: Keys,
    now: Now,
) -> ContactPointOut:
    """Register an app installation's push token (or replace it); 201 when the device is new. A
    device whose token a platform reported unregistered is valid again once given a new token."""
    customer = service.access_customer(session, customer_id)
    _, created = contact_points.set_device(
        session, customer, device_id, platform=body.platform, token=body.token, keys=keys, now=now
    )
    service.record_contact_change(session, customer, actor=actor, change={"device": "set"}, now=now)
    response.status_code = 201 if created else 200
    return next(
        point
        for point in contact_points.describe_contacts(session, customer.id, keys=keys)
        if point.device_id == device_id
    )


@router.delete("/customers/{customer_id}/devices/{device_id}", status_code=204, responses=may_answer(404))
def delete_device(
    customer_id: CustomerId, device_id: DeviceId, session: WriteSession, actor: ApiActor, now: Now
) -> Response:
    """Forget an app installation (the customer signed out, or removed the app)."""
    customer = service.access_customer(session, customer_id)
    contact_points.remove_device(session, customer, device_id)
    service.record_contact_change(session, customer, actor=actor, change={"device": "removed"}, now=now)
    return Response(status_code=204)
