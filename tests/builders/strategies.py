from __future__ import annotations

from typing import Any

from followup.kernel.actors import SYSTEM
from followup.runtime import Runtime
from followup.strategies import service
from followup.strategies.models import Strategy
from followup.strategies.schemas import StrategyCreate


def strategy_body(key: str = "after-large-transfer", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": key,
        "kind": "event",
        "trigger": {"event_types": ["transfer.succeeded"]},
        "audience": {
            "all": [
                {"field": "event.amount", "op": "gte", "value": 500000},
                {"not": {"field": "customer.attributes.tier", "op": "eq", "value": "staff"}},
            ]
        },
        "sample_rate": 1.0,
        "holdout_percent": 0,
        "delay": "PT30M",
        "channels": ["email", "inapp"],
        "survey": "payment-csat",
        "reward": {"points": 10},
        "remind_after": "P2D",
        "expire_after": "P7D",
        "recontact_days": 30,
    }
    body.update(overrides)
    return body


def make_strategy(runtime: Runtime, key: str = "after-large-transfer", **overrides: Any) -> Strategy:
    with runtime.session() as session:
        return service.create_strategy(
            session,
            StrategyCreate.model_validate(strategy_body(key, **overrides)),
            available_channels=set(runtime.channels),
            limits=runtime.settings.input_limits,
            actor=SYSTEM,
            now=runtime.clock.now(),
        )
