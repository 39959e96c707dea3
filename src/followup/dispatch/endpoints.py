"""What the wallet's app reports back about the messages its customers saw."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from followup.customers import service as customers
from followup.dispatch import service
from followup.dispatch.schemas import InboxItemRead, MessageOpened
from followup.kernel.http import Now, WriteSession
from followup.kernel.openapi import may_answer
from followup.staff.auth import ApiActor

router = APIRouter(tags=["messages"])

LARGEST_ID = 2**63 - 1  # ids are 64-bit in every table


@router.post("/messages/{message_id}/opened", response_model=MessageOpened, responses=may_answer(404, 409))
def message_opened(
    message_id: Annotated[int, Path(ge=1, le=LARGEST_ID)], session: WriteSession, actor: ApiActor, now: Now
) -> MessageOpened:
    """The customer opened the message in the app (a push, an inbox item): the first report sets
    `opened_at`, later ones change nothing. 409 `message_not_sent` before its provider accepted it."""
    message = service.mark_opened(session, message_id, now=now)
    assert message.opened_at is not None  # noqa: S101 - mark_opened sets it
    return MessageOpened(id=message.id, opened_at=message.opened_at)


@router.post("/customers/{customer_id}/inbox/{item_id}/read", response_model=InboxItemRead, responses=may_answer(404))
def inbox_item_read(
    customer_id: Annotated[str, Path(min_length=1, max_length=128)],
    item_id: Annotated[int, Path(ge=1, le=LARGEST_ID)],
    session: WriteSession,
    actor: ApiActor,
    now: Now,
) -> InboxItemRead:
    """The customer read an inbox item: it shows as read, and the message that delivered it as
    opened. 404 `inbox_item_not_found` when the customer has no such item."""
    customer = customers.access_customer(session, customer_id)
    service.mark_inbox_read(session, customer.id, item_id, now=now)
    return InboxItemRead(id=item_id, read=True)
