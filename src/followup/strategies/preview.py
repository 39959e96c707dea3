"""Preview before going live: what a strategy would do, without writing anything.

The preview runs the real planner — trigger, audience, sampling, variants, the contact policy —
inside a savepoint that is then rolled back, so its `would_contact` is what a real run plans on the
same data and clock, by construction rather than by a second implementation that could drift:

- an event strategy replays the stored events of the last `days` days as one batch at now (none
  counts as stale: they are old by design);
- a periodic strategy plans its next wave, with the audience as it is now;
- a proactive strategy plans its current period whole: every member whose slot is still to come
  in it, as well as those due now.

An unsaved strategy is created inside the savepoint, so it is validated exactly as a save would.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from sqlalchemy.orm import Session

from followup.config import Settings
from followup.customers import service as customers
from followup.followups import service as followups
from followup.followups.schemas import PlanStats
from followup.kernel.actors import Actor
from followup.kernel.crypto import KeyProvider
from followup.strategies import proactive, schedule, waves
from followup.strategies.models import Strategy
from followup.strategies.schemas import PreviewDay, StrategyCreate, StrategyPreview
from followup.strategies.service import create_strategy
from followup.strategies.triggers import EventFact, EventHistory, plan_followups_for_events

SAMPLE_SIZE = 20


def preview_new(
    session: Session,
    data: StrategyCreate,
    *,
    days: int,
    available_channels: Collection[str],
    actor: Actor,
    now: dt.datetime,
    settings: Settings,
    keys: KeyProvider,
    history: EventHistory,
) -> StrategyPreview:
    savepoint = session.begin_nested()
    try:
        strategy = create_strategy(
            session, data, available_channels=available_channels, limits=settings.input_limits, actor=actor, now=now
        )
        matched, stats = _plan(session, strategy, data, days=days, now=now, settings=settings, history=history)
    finally:
        savepoint.rollback()
    return _answer(session, matched, stats, keys=keys)


def preview_saved(
    session: Session,
    strategy: Strategy,
    *,
    days: int,
    now: dt.datetime,
    settings: Settings,
    keys: KeyProvider,
    history: EventHistory,
) -> StrategyPreview:
    spec = StrategyCreate.model_validate(strategy.definition)
    savepoint = session.begin_nested()
    try:
        matched, stats = _plan(session, strategy, spec, days=days, now=now, settings=settings, history=history)
    finally:
        savepoint.rollback()
    return _answer(session, matched, stats, keys=keys)


def _plan(
    session: Session,
    strategy: Strategy,
    spec: StrategyCreate,
    *,
    days: int,
    now: dt.datetime,
    settings: Settings,
    history: EventHistory,
) -> tuple[int, PlanStats]:
    if spec.kind == "event":
        types = spec.trigger.event_types if spec.trigger else []
        facts = [EventFact(*row) for row in history.recent(types, since=now - dt.timedelta(days=days), until=now)]
        stats = plan_followups_for_events(
            session, facts, now=now, settings=settings, history=history, only=[strategy], replay=True
        )
        return stats.planned + stats.suppressed + stats.duplicates, stats
    if spec.kind == "periodic":
        assert spec.schedule is not None  # noqa: S101 - a periodic strategy always has its schedule
        fired_at = strategy.next_run_at or schedule.next_firing(spec.schedule.cron, spec.schedule.time_zone, now)
        drawn = waves.draw_wave(session, strategy, spec, fired_at=fired_at, now=now, settings=settings)
        if drawn is None:
            return 0, PlanStats()
        items = drawn.items(strategy, spec)
        return drawn.audience, followups.plan_followups(session, items, now=now, settings=settings)
    assert spec.cadence is not None  # noqa: S101 - a proactive strategy always has its cadence
    period = proactive.period_at(strategy.created_at, spec.cadence, now)
    swept = proactive.draw_sweep(session, strategy, spec, now=now, settings=settings, period=period, until=period.end)
    if swept is None:
        return 0, PlanStats()
    return swept.audience, followups.plan_followups(session, swept.items, now=now, settings=settings)


def _answer(session: Session, matched: int, stats: PlanStats, *, keys: KeyProvider) -> StrategyPreview:
    """Read after the rollback: the customers are still there, the follow-ups never were."""
    return StrategyPreview(
        matched=matched,
        would_contact=stats.planned,
        refused=dict(sorted(stats.reasons.items())),
        by_channel=dict(sorted(stats.channels.items())),
        by_day=[PreviewDay(date=day, count=count) for day, count in sorted(stats.days.items())],
        sample=customers.samples(session, stats.planned_customers[:SAMPLE_SIZE], keys=keys),
    )
