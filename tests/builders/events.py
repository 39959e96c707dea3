from __future__ import annotations

import datetime as dt
from typing import Any


def transfer(
    event_id: str = "e1",
    customer_id: str = "c1",
    *,
    amount: int = 600000,
    occurred_at: dt.datetime | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    when = occurred_at or dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    event: dict[str, Any] = {
        "event_id": event_id,
        "type": "transfer.succeeded",
        "customer_id": customer_id,
        "occurred_at": when.isoformat(),
        "amount": amount,
        "currency": "CNY",
        "attributes": {"to": "merchant"},
    }
    event.update(overrides)
    return event
