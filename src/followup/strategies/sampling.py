"""What every planner copies from a strategy onto its follow-ups: sticky draws (where a customer
falls for the sample and the holdout, the same every time) and the message templates."""

from __future__ import annotations

import hashlib

from followup.strategies.schemas import StrategyCreate


def bucket(salt: str, strategy_key: str, customer_external_id: str) -> float:
    """A sticky number in [0, 1) per customer and strategy: the same customer always lands in the
    same place, so sampling and holdout never flip between events."""
    digest = hashlib.sha256(f"{salt}|{strategy_key}|{customer_external_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_holdout(spec: StrategyCreate, customer_external_id: str) -> bool:
    return bucket("holdout", spec.key, customer_external_id) * 100 < spec.holdout_percent


def is_sampled(spec: StrategyCreate, customer_external_id: str) -> bool:
    return bucket("sample", spec.key, customer_external_id) < spec.sample_rate


def message_templates(spec: StrategyCreate) -> tuple[tuple[str, str, str], ...] | None:
    """The strategy's (locale, subject, body) templates, in a form a plan can be cached by."""
    if not spec.message:
        return None
    return tuple((locale, text.subject, text.body) for locale, text in sorted(spec.message.items()))
