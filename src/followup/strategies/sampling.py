"""What every planner copies from a strategy onto its follow-ups: sticky draws (where a customer
falls for the sample, the holdout and the variants, the same every time), the survey version and
the message templates."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from followup.followups.schemas import PlanItem
from followup.strategies.models import Strategy
from followup.strategies.schemas import StrategyCreate, Variant
from followup.surveys import service as surveys


def bucket(salt: str, strategy_key: str, customer_external_id: str) -> float:
    """A sticky number in [0, 1) per customer and strategy: the same customer always lands in the
    same place, so sampling and holdout never flip between events. sha256 of
    "salt|strategy_key|customer", its first 8 bytes as a big-endian integer over 2^64."""
    return buckets(salt, strategy_key, [customer_external_id])[0]


def buckets(salt: str, strategy_key: str, customer_external_ids: Iterable[str]) -> list[float]:
    """`bucket` of many customers at once, in their order: a wave draws tens of thousands."""
    sha256, from_bytes, prefix, scale = hashlib.sha256, int.from_bytes, f"{salt}|{strategy_key}|", 2**64
    return [
        from_bytes(sha256((prefix + external_id).encode()).digest()[:8], "big") / scale
        for external_id in customer_external_ids
    ]


def in_holdout(spec: StrategyCreate, customer_external_id: str) -> bool:
    return spec.holdout_percent > 0 and bucket("holdout", spec.key, customer_external_id) * 100 < spec.holdout_percent


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


def plan_item(
    strategy: Strategy,
    spec: StrategyCreate,
    versions: dict[str | None, int],
    *,
    customer_id: int,
    external_id: str,
    send_at: dt.datetime,
    run_key: str | None,
    recontact_days: int,
    preset_reason: str | None,
    event: tuple[int, str, str, dict[str, Any] | None] | None = None,
    time_zone: str | None = None,
) -> PlanItem:
    """One customer's follow-up as every planner asks for it: the strategy's channels, survey,
    reward and timing, the customer's variant and words, and, for an event, the event (id, type,
    reference, and what a template may read of it)."""
    variant, version_id, message = asked(spec, versions, external_id)
    event_id, event_type, event_ref, event_context = event if event is not None else (None, None, None, None)
    return PlanItem(
        strategy_id=strategy.id,
        strategy_key=spec.key,
        customer_id=customer_id,
        event_id=event_id,
        event_type=event_type,
        event_ref=event_ref,
        send_at=send_at,
        channels=spec.channel_list,
        waits=spec.channel_waits,
        auto_channel=spec.auto_channel,
        recontact_days=recontact_days,
        survey_version_id=version_id,
        reward_points=spec.reward.points if spec.reward else 0,
        remind_after=spec.remind_after,
        expire_after=spec.expire_after,
        preset_reason=preset_reason,
        run_key=run_key,
        sender_name=spec.owner.name if spec.owner else None,
        reply_to=spec.owner.email if spec.owner else None,
        message=message,
        event_context=event_context if message else None,
        variant=variant,
        strategy_version=strategy.version,
        time_zone=time_zone,
        call_queue=spec.call_queue,
        max_call_attempts=spec.max_call_attempts,
        security_check=spec.security_check,
    )
