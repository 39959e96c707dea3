from __future__ import annotations

from typing import Any

from followup.customers import service
from followup.customers.models import Customer
from followup.customers.schemas import CustomerUpsert
from followup.kernel.actors import SYSTEM
from followup.runtime import Runtime


def make_customer(runtime: Runtime, customer_id: str = "c1", **overrides: Any) -> Customer:
    """A customer who can be reached by email and in-app and consented to both for feedback."""
    fields: dict[str, Any] = {
        "email": f"{customer_id}@example.com",
        "locale": "zh-CN",
        "time_zone": "Asia/Shanghai",
        "attributes": {"tier": "gold"},
        "consents": {"feedback": {"email": True, "inapp": True}},
    }
    fields.update(overrides)
    with runtime.session() as session:
        return service.upsert_customer(
            session,
            customer_id,
            CustomerUpsert.model_validate(fields),
            keys=runtime.keys,
            limits=runtime.settings.input_limits,
            actor=SYSTEM,
            now=runtime.clock.now(),
            built_in_notice_version="test",
        )
