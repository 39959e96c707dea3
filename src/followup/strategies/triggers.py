"""The event-driven planner: each batch of stored events against the active event strategies.

For one strategy and one event, in order:
1. the trigger: the event's type is one of `event_types` and `match` (a rule over `event.*`)
   accepts it; with `first_time`, it is also the customer's first such event among all stored
   (before this batch, however long ago; within the batch, the earliest `occurred_at`);
2. the audience, over the event and the customer;
3. what is recorded instead of a contact: the global holdout, a stale event (older than
   `max_event_age` when it arrived: a backfill), the strategy's holdout and sample;
4. `debounce`: of a customer's burst, only the last event keeps its follow-up, sent `debounce`
   after it; an earlier one, in this batch or still waiting from an earlier batch, is suppressed
   (`debounced`) and gives its contact back;
5. the contact policy, in bulk, for the rest (`followups.plan_followups`).
Events the trigger or the audience leaves out leave no trace; everything after that is a
follow-up, planned or suppressed with its reason, so `GET /followups` explains every match.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from sqlalchemy.orm import Session

from followup.config import Settings
from followup.customers import service as customers
from followup.followups import service as followups
from followup.followups.schemas import PlanItem, PlanStats
from followup.kernel.errors import InvalidInput
from followup.kernel.logging import get_logger
from followup.policy import service as policy
from followup.policy.enums import RefusalReason
from followup.rules.tree import Node, Predicate, compile_rule, fields_used
from followup.strategies import segments
from followup.strategies.models import Strategy
from followup.strategies.repository import StrategyRepository
from followup.strategies.sampling import in_holdout, is_sampled, plan_item, survey_versions
from followup.strategies.schemas import StrategyCreate

log = get_logger(__name__)

# The run key of a first-time follow-up: one per strategy and customer, ever, whichever event.
FIRST_TIME_RUN_KEY = "first-time"
# An (occurred_at, id) order before every event's.
_BEFORE_ALL = (dt.datetime.min.replace(tzinfo=dt.UTC), 0)


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


class EventHistory(Protocol):
    """What the planner reads of the events stored before the batch (the events domain answers)."""

    def customers_with_match(
        self, customer_ids: Collection[int], types: Collection[str], match: Node | None, *, excluding: Collection[int]
    ) -> set[int]: ...

    def occurred_at(self, ids: Collection[int]) -> dict[int, dt.datetime]: ...

    def recent(self, types: Collection[str], *, since: dt.datetime, until: dt.datetime) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True)
class CompiledStrategy:
    row: Strategy
    spec: StrategyCreate
    predicate: Predicate
    match: Predicate | None
    event_types: frozenset[str]
    survey_versions: dict[str | None, int]
    uses_stats: bool
    speaks: bool  # it or one of its variants has message templates


def compile_active(session: Session, rows: Sequence[Strategy] | None = None) -> list[CompiledStrategy]:
    """The active event strategies (or the `rows` given, as a preview does), ready to plan."""
    compiled = []
    lookup = segments.stored_lookup(session)
    for row in StrategyRepository(session).active_by_kind("event") if rows is None else rows:
        spec = StrategyCreate.model_validate(row.definition)
        versions = survey_versions(session, spec)
        if versions is None:
            continue
        if spec.audience is not None:
            try:
                spec = spec.model_copy(update={"audience": segments.resolve(spec.audience, lookup, field="audience")})
            except InvalidInput:
                # Refused when saved, so only a database edited by hand gets here: skip the strategy.
                log.warning("strategy skipped: its audience names a segment that cannot be resolved", strategy=row.key)
                continue
        match = spec.trigger.match if spec.trigger else None
        compiled.append(
            CompiledStrategy(
                row=row,
                spec=spec,
                predicate=compile_rule(spec.audience),
                match=compile_rule(match) if match is not None else None,
                event_types=frozenset(spec.trigger.event_types if spec.trigger else ()),
                survey_versions=versions,
                uses_stats=spec.audience is not None
                and any(name.startswith("customer.stats.") for name in fields_used(spec.audience)),
                speaks=bool(spec.message) or any(variant.message for variant in spec.variants or []),
            )
        )
    return compiled


def _event_context(event: EventFact) -> dict[str, Any]:
    return {
        "type": event.type,
        "event_id": event.event_id,
        "amount": event.amount,
        "currency": event.currency,
        "attributes": event.attributes,
    }


def _template_event(event: EventFact) -> dict[str, Any]:
    """The event as a message template reads it (built only for a strategy with templates)."""
    return _event_context(event) | {"occurred_at": event.occurred_at.isoformat()}


def _order(event: EventFact) -> tuple[dt.datetime, int]:
    return (event.occurred_at, event.id)


def _triggered(
    strategies: Sequence[CompiledStrategy], events: Sequence[EventFact], history: EventHistory
) -> list[tuple[CompiledStrategy, list[EventFact]]]:
    """Per strategy, the batch's events its trigger accepts (type, match, first time)."""
    by_type: dict[str, list[CompiledStrategy]] = defaultdict(list)
    for strategy in strategies:
        for event_type in strategy.event_types:
            by_type[event_type].append(strategy)
    hits: dict[int, list[EventFact]] = defaultdict(list)
    for event in events:
        listening = by_type.get(event.type)
        if not listening:
            continue
        context: dict[str, Any] | None = None  # built only for a strategy with a match
        for strategy in listening:
            if strategy.match is not None:
                context = context or {"event": _event_context(event)}
                if not strategy.match(context):
                    continue
            hits[strategy.row.id].append(event)
    batch_ids = [event.id for event in events]
    out = []
    for strategy in strategies:
        matched = hits.get(strategy.row.id)
        if not matched:
            continue
        trigger = strategy.spec.trigger
        if trigger is not None and trigger.first_time:
            earliest: dict[int, EventFact] = {}
            for event in matched:
                current = earliest.get(event.customer_id)
                if current is None or _order(event) < _order(current):
                    earliest[event.customer_id] = event
            done_before = history.customers_with_match(
                earliest.keys(), strategy.event_types, trigger.match, excluding=batch_ids
            )
            matched = [event for cid, event in earliest.items() if cid not in done_before]
        if matched:
            out.append((strategy, matched))
    return out


def plan_followups_for_events(
    session: Session,
    events: Sequence[EventFact],
    *,
    now: dt.datetime,
    settings: Settings,
    history: EventHistory,
    only: Sequence[Strategy] | None = None,
    replay: bool = False,
) -> PlanStats:
    """Evaluate every active event strategy (or `only` these) against a batch of new events and
    plan follow-ups. With `replay` (a preview of stored events), no event counts as stale."""
    if not events:
        return PlanStats()
    strategies = compile_active(session, only)
    if not strategies:
        return PlanStats()
    triggered = _triggered(strategies, events, history)
    if not triggered:
        return PlanStats()
    # Activity stats cost three reads per batch: only when some strategy's audience reads them.
    needs_stats = any(strategy.uses_stats for strategy, _ in triggered)
    snapshot_of = customers.snapshots(
        session,
        {event.customer_id for _, matched in triggered for event in matched},
        stats_at=now if needs_stats else None,
    )
    customer_context = {cid: snap.rule_context() for cid, snap in snapshot_of.items()}
    items: list[PlanItem] = []
    for strategy, matched in triggered:
        spec = strategy.spec
        first_time = spec.trigger is not None and spec.trigger.first_time
        wait = spec.delay + (spec.debounce or dt.timedelta(0))
        mine: list[tuple[PlanItem, EventFact]] = []
        for event in matched:
            context = {"event": _event_context(event), "customer": customer_context[event.customer_id]}
            if not strategy.predicate(context):
                continue
            external_id = snapshot_of[event.customer_id].external_id
            preset = None
            if policy.in_global_holdout(external_id, settings.global_holdout_percent):
                preset = RefusalReason.GLOBAL_HOLDOUT
            elif not replay and now - event.occurred_at > spec.max_event_age:
                preset = RefusalReason.STALE_EVENT
            elif in_holdout(spec, external_id):
                preset = RefusalReason.HOLDOUT
            elif not is_sampled(spec, external_id):
                preset = RefusalReason.NOT_SAMPLED
            item = plan_item(
                strategy.row,
                spec,
                strategy.survey_versions,
                customer_id=event.customer_id,
                external_id=external_id,
                send_at=max(now, event.occurred_at + wait),
                run_key=FIRST_TIME_RUN_KEY if first_time else None,
                recontact_days=spec.recontact_days,
                preset_reason=preset,
                event=(event.id, event.type, event.event_id, _template_event(event) if strategy.speaks else None),
            )
            mine.append((item, event))
        if spec.debounce is not None:
            items.extend(_debounced(session, strategy, mine, now=now, history=history))
        else:
            items.extend(item for item, _ in mine)
    return followups.plan_followups(session, items, now=now, settings=settings, snapshots=snapshot_of)


def _debounced(
    session: Session,
    strategy: CompiledStrategy,
    mine: list[tuple[PlanItem, EventFact]],
    *,
    now: dt.datetime,
    history: EventHistory,
) -> list[PlanItem]:
    """A burst keeps its last event: per customer, the latest of the batch's events, unless one
    still waiting from an earlier batch happened later; the others are suppressed `debounced`
    (those still waiting end now, before the policy counts their contacts)."""
    last: dict[int, tuple[dt.datetime, int]] = {}
    for _, event in mine:
        if _order(event) > last.get(event.customer_id, _BEFORE_ALL):
            last[event.customer_id] = _order(event)
    waiting = followups.awaiting_invite(session, strategy.row.id, last.keys())
    happened = history.occurred_at({event_id for _, _, event_id in waiting if event_id is not None})
    waiting_last: dict[int, tuple[dt.datetime, int]] = {}
    for _, customer_id, event_id in waiting:
        if event_id is not None and event_id in happened:
            order = (happened[event_id], event_id)
            waiting_last[customer_id] = max(order, waiting_last.get(customer_id, order))
    superseded: list[int] = []
    out = []
    for item, event in mine:
        is_last = _order(event) == last[event.customer_id]
        later_waiting = waiting_last.get(event.customer_id, _BEFORE_ALL)
        if is_last and _order(event) > later_waiting:
            if item.preset_reason is None:
                superseded.extend(fid for fid, cid, _ in waiting if cid == event.customer_id)
            out.append(item)
        else:
            out.append(item._replace(preset_reason=item.preset_reason or RefusalReason.DEBOUNCED))
    followups.supersede(session, superseded, reason=RefusalReason.DEBOUNCED, now=now)
    return out
