"""What every planner copies from a strategy onto its follow-ups: sticky draws (where a customer
falls for the sample, the holdout and the variants, the same every time), the survey version and
the message templates."""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from sqlalchemy.orm import Session

from followup.strategies.schemas import StrategyCreate, Variant
from followup.surveys import service as surveys


def bucket(salt: str, strategy_key: str, customer_external_id: str) -> float:
    """A sticky number in [0, 1) per customer and strategy: the same customer always lands in the
    same place, so sampling and holdout never flip between events."""
    digest = hashlib.sha256(f"{salt}|{strategy_key}|{customer_external_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_holdout(spec: StrategyCreate, customer_external_id: str) -> bool:
    return bucket("holdout", spec.key, customer_external_id) * 100 < spec.holdout_percent


def is_sampled(spec: StrategyCreate, customer_external_id: str) -> bool:
    return bucket("sample", spec.key, customer_external_id) < spec.sample_rate


def pick_variant(spec: StrategyCreate, customer_external_id: str) -> Variant | None:
    """The customer's variant, the same every time: `bucket("variant", key, customer)` times the sum
    of the weights falls in one variant's stretch, the variants laid end to end in their order."""
    if not spec.variants:
        return None
    point = bucket("variant", spec.key, customer_external_id) * sum(variant.weight for variant in spec.variants)
    for variant in spec.variants:
        if point < variant.weight:
            return variant
        point -= variant.weight
    return spec.variants[-1]  # rounding at the very end of the last stretch


def message_templates(spec: StrategyCreate, variant: Variant | None = None) -> tuple[tuple[str, str, str], ...] | None:
    """The (locale, subject, body) templates the customer's message uses (the variant's, else the
    strategy's), in a form a plan can be cached by."""
    message = variant.message if variant is not None and variant.message else spec.message
    if not message:
        return None
    return tuple((locale, text.subject, text.body) for locale, text in sorted(message.items()))


class Asked(NamedTuple):
    """What one customer is sent: their variant (None without variants), survey version, words."""

    variant: str | None
    survey_version_id: int
    message: tuple[tuple[str, str, str], ...] | None


def survey_versions(session: Session, spec: StrategyCreate) -> dict[str | None, int] | None:
    """The current version of the survey the strategy (None) and each variant (its key) ask; None
    when one of those surveys is gone."""
    out: dict[str | None, int] = {}
    for key, survey_key in [(None, spec.survey)] + [(v.key, v.survey or spec.survey) for v in spec.variants or []]:
        survey = surveys.get_survey(session, survey_key)
        if survey is None:
            return None
        out[key] = surveys.current_version(session, survey).id
    return out


def asked(spec: StrategyCreate, versions: dict[str | None, int], customer_external_id: str) -> Asked:
    variant = pick_variant(spec, customer_external_id)
    key = variant.key if variant is not None else None
    return Asked(key, versions[key], message_templates(spec, variant))
