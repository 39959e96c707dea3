"""Strategies: when to follow up, with whom, and the event-driven planner."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from followup.config import InputLimits, Settings
from followup.customers import service as customers
from followup.followups import service as followups
from followup.followups.schemas import PlanItem, PlanStats
from followup.kernel.actors import Actor
from followup.kernel.errors import Conflict, InvalidInput, NotFound
from followup.kernel.logging import get_logger
from followup.kernel.text import text_problem
from followup.policy import service as policy
from followup.policy.enums import RefusalReason
from followup.privacy import service as privacy
from followup.rules.tree import (
    Predicate,
    compile_rule,
    fields_used,
)
from followup.strategies import schedule, segments
from followup.strategies.models import Strategy
from followup.strategies.repository import StrategyRepository, WaveRepository
from followup.strategies.schemas import StrategyCreate, StrategyOut, StrategyUpdate, WaveOut
from followup.surveys import service as surveys

log = get_logger(__name__)


class StrategyNotFound(NotFound):
    code = "strategy_not_found"


class StrategyExists(Conflict):
    code = "strategy_exists"


class EventFact(NamedTuple):
    """What the planner needs of a newly stored event (a tuple: one is built per stored event)."""

    id: int
    event_id: str
    type: str
    customer_id: int
    occurred_at: dt.datetime
    amount: int | None
    currency: str | None
    attributes: dict[str, Any]


@dataclass(frozen=True)
class CompiledStrategy:
    row: Strategy
    spec: StrategyCreate
    predicate: Predicate
    event_types: frozenset[str]
    survey_version_id: int
    uses_stats: bool


def bucket(salt: str, strategy_key: str, customer_external_id: str) -> float:
    """A sticky number in [0, 1) per customer and strategy: the same customer always lands in the
    same place, so sampling and holdout never flip between events."""
    digest = hashlib.sha256(f"{salt}|{strategy_key}|{customer_external_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_holdout(spec: StrategyCreate, customer_external_id: str) -> bool:
    return bucket("holdout", spec.key, customer_external_id) * 100 < spec.holdout_percent


def is_sampled(spec: StrategyCreate, customer_external_id: str) -> bool:
    return bucket("sample", spec.key, customer_external_id) < spec.sample_rate


def check_strategy_limits(data: StrategyCreate, *, limits: InputLimits) -> None:
    """Refuse a strategy over the size limits (422 limit_exceeded), with a control character in
    its name (422 invalid_character), naming a stat that does not exist (422 unknown_field) or a
    field its rules cannot read (422 invalid_field). Only on write: a stored strategy is read as it is."""
    if data.name is not None:
        problem = text_problem(data.name, max_chars=limits.max_title_chars)
        if problem is not None:
            code, sentence = problem
            raise InvalidInput(f"name: {sentence}.", code=code, field="name")
    if data.audience is not None:
        # An event strategy's audience may read the event; the others find theirs in the database.
        found_in_database = data.kind != "event"
        segments.check_rule(
            data.audience,
            field="audience",
            limits=limits,
            only="customer" if found_in_database else None,
            whose=f"a {data.kind} strategy's audience",
        )


def create_strategy(
    session: Session,
    data: StrategyCreate,
    *,
    available_channels: Collection[str],
    limits: InputLimits,
    actor: Actor,
    now: dt.datetime,
) -> Strategy:
    check_strategy_limits(data, limits=limits)
    if data.audience is not None:
        segments.resolve(data.audience, segments.stored_lookup(session), field="audience")
    if data.kind == "proactive":
        raise InvalidInput(
            "'proactive' strategies are not available yet; use kind 'event' or 'periodic'.",
            code="kind_not_supported",
            field="kind",
        )
    next_run_at = first_wave(data, now=now)
    missing = [channel for channel in data.channels if channel not in available_channels]
    if missing:
        raise InvalidInput(
            f"channel '{missing[0]}' is not configured here; available: {', '.join(sorted(available_channels))}.",
            code="channel_not_available",
            field="channels",
        )
    repo = StrategyRepository(session)
    if repo.by_key(data.key) is not None:
        raise StrategyExists(f"A strategy with key '{data.key}' already exists.", field="key")
    survey = surveys.get_survey(session, data.survey)
    if survey is None:
        raise InvalidInput(
            f"No survey with key '{data.survey}'; create the survey first.", code="survey_not_found", field="survey"
        )
    strategy = Strategy(
        key=data.key,
        kind=data.kind,
        status=data.status,
        survey_id=survey.id,
        definition=data.model_dump(mode="json", by_alias=True),
        version=1,
        next_run_at=next_run_at,
        created_at=now,
        updated_at=now,
    )
    repo.add(strategy)
    session.flush()
    privacy.record_audit(
        session,
        actor=actor,
        subject_type="strategy",
        subject_id=data.key,
        event="strategy.created",
        now=now,
        new={"status": data.status},
    )
    return strategy


def access_strategy(session: Session, key: str) -> Strategy:
    strategy = StrategyRepository(session).by_key(key)
    if strategy is None:
        raise StrategyNotFound(f"No strategy with key '{key}'.", field="strategy")
    return strategy


def update_strategy(
    session: Session, strategy: Strategy, data: StrategyUpdate, *, actor: Actor, now: dt.datetime
) -> Strategy:
    old = strategy.status
    if data.status != old:
        strategy.status = data.status
        if data.status == "active":
            # Resumed: the next wave is the next firing from now; waves missed while paused are not sent.
            strategy.next_run_at = first_wave(StrategyCreate.model_validate(strategy.definition), now=now)
        strategy.definition = {**strategy.definition, "status": data.status}
        strategy.version += 1
        strategy.updated_at = now
        privacy.record_audit(
            session,
            actor=actor,
            subject_type="strategy",
            subject_id=strategy.key,
            event="strategy.status_changed",
            now=now,
            old={"status": old},
            new={"status": data.status},
        )
    session.flush()
    return strategy


def first_wave(data: StrategyCreate, *, now: dt.datetime) -> dt.datetime | None:
    """A periodic strategy's first wave: the schedule's next firing after now (never at once).
    422 when its waves would come closer than an hour, or overlap because `spread` is as long as
    the time between them."""
    if data.schedule is None:
        return None
    cron, zone = data.schedule.cron, data.schedule.time_zone
    shortest = schedule.shortest_interval(cron, zone, now)
    if shortest < schedule.MIN_INTERVAL:
        raise InvalidInput(
            f"schedule.cron: '{cron}' fires every {_duration(shortest)}; waves must be at least an hour apart.",
            field="schedule.cron",
        )
    if data.spread >= shortest:
        raise InvalidInput(
            f"spread: {_duration(data.spread)} is not shorter than the {_duration(shortest)} between two waves; "
            "a wave must be sent before the next one fires.",
            field="spread",
        )
    return schedule.next_firing(cron, zone, now)


def _duration(value: dt.timedelta) -> str:
    hours = value.total_seconds() / 3600
    return f"{hours:g} hours" if hours < 48 else f"{hours / 24:g} days"


def describe_strategy(strategy: Strategy) -> StrategyOut:
    return StrategyOut.model_validate(
        {
            **strategy.definition,
            "id": strategy.id,
            "version": strategy.version,
            "next_run_at": strategy.next_run_at if strategy.status == "active" else None,
            "created_at": strategy.created_at,
            "updated_at": strategy.updated_at,
        }
    )


def list_strategies(session: Session, *, limit: int, offset: int) -> tuple[list[StrategyOut], int]:
    rows, total = StrategyRepository(session).list_strategies(limit=limit, offset=offset)
    return [describe_strategy(row) for row in rows], total


def strategy_keys(session: Session, ids: set[int]) -> dict[int, str]:
    return StrategyRepository(session).keys(ids)


def _compile_active(session: Session) -> list[CompiledStrategy]:
    compiled = []
    lookup = segments.stored_lookup(session)
    for row in StrategyRepository(session).active_by_kind("event"):
        spec = StrategyCreate.model_validate(row.definition)
        survey = surveys.get_survey(session, spec.survey)
        if survey is None:
            continue
        if spec.audience is not None:
            try:
                spec = spec.model_copy(update={"audience": segments.resolve(spec.audience, lookup, field="audience")})
            except InvalidInput:
                # Refused when saved, so only a database edited by hand gets here: skip the strategy.
                log.warning("strategy skipped: its audience names a segment that cannot be resolved", strategy=row.key)
                continue
        compiled.append(
            CompiledStrategy(
                row=row,
                spec=spec,
                predicate=compile_rule(spec.audience),
                event_types=frozenset(spec.trigger.event_types if spec.trigger else ()),
                survey_version_id=surveys.current_version(session, survey).id,
                uses_stats=spec.audience is not None
                and any(name.startswith("customer.stats.") for name in fields_used(spec.audience)),
            )
        )
    return compiled


def plan_followups_for_events(
    session: Session, events: Sequence[EventFact], *, now: dt.datetime, settings: Settings
) -> PlanStats:
    """Evaluate every active event strategy against a batch of new events and plan follow-ups."""
    strategies = _compile_active(session)
    if not strategies or not events:
        return PlanStats()
    by_type: dict[str, list[CompiledStrategy]] = {}
    for strategy in strategies:
        for event_type in strategy.event_types:
            by_type.setdefault(event_type, []).append(strategy)
    triggered = [event for event in events if event.type in by_type]
    if not triggered:
        return PlanStats()
    # Activity stats cost three reads per batch: only when some strategy's audience reads them.
    needs_stats = any(strategy.uses_stats for strategy in strategies)
    snapshot_of = customers.snapshots(
        session, {event.customer_id for event in triggered}, stats_at=now if needs_stats else None
    )
    customer_context = {cid: snap.rule_context() for cid, snap in snapshot_of.items()}
    items: list[PlanItem] = []
    for event in triggered:
        context = {
            "event": {
                "type": event.type,
                "event_id": event.event_id,
                "amount": event.amount,
                "currency": event.currency,
                "attributes": event.attributes,
            },
            "customer": customer_context[event.customer_id],
        }
        external_id = snapshot_of[event.customer_id].external_id
        for strategy in by_type[event.type]:
            if not strategy.predicate(context):
                continue
            spec = strategy.spec
            preset = None
            if policy.in_global_holdout(external_id, settings.global_holdout_percent):
                preset = RefusalReason.GLOBAL_HOLDOUT
            elif in_holdout(spec, external_id):
                preset = RefusalReason.HOLDOUT
            elif not is_sampled(spec, external_id):
                preset = RefusalReason.NOT_SAMPLED
            items.append(
                PlanItem(
                    strategy_id=strategy.row.id,
                    strategy_key=spec.key,
                    customer_id=event.customer_id,
                    event_id=event.id,
                    event_type=event.type,
                    event_ref=event.event_id,
                    send_at=max(now, event.occurred_at + spec.delay),
                    channels=tuple(spec.channels),
                    recontact_days=spec.recontact_days,
                    survey_version_id=strategy.survey_version_id,
                    reward_points=spec.reward.points if spec.reward else 0,
                    remind_after=spec.remind_after,
                    expire_after=spec.expire_after,
                    preset_reason=preset,
                )
            )
    return followups.plan_followups(session, items, now=now, settings=settings, snapshots=snapshot_of)


def list_waves(session: Session, strategy: Strategy, *, limit: int, offset: int) -> tuple[list[WaveOut], int]:
    rows, total = WaveRepository(session).list_waves(strategy.id, limit=limit, offset=offset)
    return [WaveOut.model_validate(row, from_attributes=True) for row in rows], total
