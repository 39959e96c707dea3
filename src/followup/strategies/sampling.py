"""Sticky draws: where a customer falls for a strategy's sample and holdout, the same every time."""

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
