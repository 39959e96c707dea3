from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from followup.channels import service
from followup.channels.schemas import InboxItemOut
from followup.customers import service as customers
from followup.kernel.http import AppSettings, Keys, Now, ReadSession
from followup.kernel.openapi import may_answer
from followup.kernel.pagination import Limit
from followup.privacy import page_links
from followup.staff.auth import ApiActor

router = APIRouter(tags=["inbox"])


@router.get("/customers/{customer_id}/inbox", response_model=list[InboxItemOut], responses=may_answer(404))
def list_inbox(
    customer_id: Annotated[str, Path(min_length=1, max_length=128)],
    session: ReadSession,
    actor: ApiActor,
    keys: Keys,
    settings: AppSettings,
    now: Now,
    limit: Limit = 50,
) -> list[InboxItemOut]:
    customer = customers.access_customer(session, customer_id)
    privacy_url = f"{settings.public_url}/privacy?lang={customer.locale}"
    my_data_url = f"{settings.public_url}/p/{page_links.make_token(keys, customer.id, now=now)}"
    return service.list_inbox(
        session, customer.id, keys=keys, privacy_url=privacy_url, my_data_url=my_data_url, limit=limit
    )
