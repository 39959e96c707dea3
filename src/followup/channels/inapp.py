"""The in-app inbox channel. Idempotent: a retried delivery with the same key adds nothing."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy.orm import Session

from followup.channels import service
from followup.channels.base import Delivery, Receipt
from followup.channels.capabilities import BUILT_IN, INAPP
from followup.kernel.crypto import KeyProvider
from followup.kernel.time import Clock


class InAppChannel:
    name = INAPP
    capabilities = BUILT_IN[INAPP]

    def __init__(
        self, session_scope: Callable[[], AbstractContextManager[Session]], *, keys: KeyProvider, clock: Clock
    ) -> None:
        self._session_scope = session_scope
        self._keys = keys
        self._clock = clock

    def send(self, delivery: Delivery, *, handoff: Callable[[], None]) -> Receipt:
        with self._session_scope() as session:
            item_id = service.deliver_to_inbox(
                session,
                customer_id=delivery.customer_id,
                idempotency_key=delivery.idempotency_key,
                content=delivery.content,
                keys=self._keys,
                now=self._clock.now(),
            )
        return Receipt(provider_ref=f"inbox:{item_id}")
