"""Periodic strategies: each firing of the schedule is a wave.

A wave finds its audience in the database at that moment, leaves out the customers inside this
strategy's cooldown, draws a sample that is fixed by (strategy, wave, customer), keeps at most
`max_per_wave` of it and plans their follow-ups spread evenly over `spread`, through the same
planner and contact policy as every other follow-up. The worker claims a due wave by moving the
strategy's `next_run_at` on with a guarded UPDATE in the wave's own transaction, so two workers
never plan one wave; the run key `wave:<firing>` and the unique (strategy, firing) wave row guard
it twice more.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from followup.config import Settings
from followup.customers import service as customers
from followup.followups import service as followups
from followup.followups.schemas import PlanItem, PlanStats
from followup.kernel.crypto import KeyProvider
from followup.kernel.logging import get_logger
from followup.policy import service as policy
from followup.policy.enums import RefusalReason
from followup.strategies import schedule, segments
from followup.strategies.models import Strategy, Wave
from followup.strategies.repository import StrategyRepository, WaveRepository
from followup.strategies.sampling import buckets, in_holdout, plan_item, survey_versions
from followup.strategies.schemas import StrategyCreate

log = get_logger(__name__)


@dataclass(frozen=True)
class WavePlan:
    """Who a wave reaches, before the contact policy: what a real wave plans and a preview shows."""

    audience: int
    in_cooldown: int
    sampled: int
    capped: int
    run_key: str
    versions: dict[str | None, int]
    picks: list[tuple[int, str, dt.datetime, str, str | None]]  # id, external id, send at, zone, preset

    def items(self, strategy: Strategy, spec: StrategyCreate) -> list[PlanItem]:
        """The wave as the planner's items, one per customer."""
        return [self.item(strategy, spec, pick) for pick in self.picks]

    def item(
        self, strategy: Strategy, spec: StrategyCreate, pick: tuple[int, str, dt.datetime, str, str | None]
    ) -> PlanItem:
        cid, external_id, send_at, zone, preset = pick
        return plan_item(
            strategy,
            spec,
            self.versions,
            customer_id=cid,
            external_id=external_id,
            send_at=send_at,
            run_key=self.run_key,
            recontact_days=spec.cooldown_days,
            preset_reason=preset,
            time_zone=zone,
        )


def wave_key(fired_at: dt.datetime) -> str:
    return fired_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")


def _preset(spec: StrategyCreate, external_id: str, settings: Settings) -> RefusalReason | None:
    if policy.in_global_holdout(external_id, settings.global_holdout_percent):
        return RefusalReason.GLOBAL_HOLDOUT
    return RefusalReason.HOLDOUT if in_holdout(spec, external_id) else None


def draw_wave(
    session: Session,
    strategy: Strategy,
    spec: StrategyCreate,
    *,
    fired_at: dt.datetime,
    now: dt.datetime,
    settings: Settings,
) -> WavePlan | None:
    """The wave's follow-ups to plan, or None when the strategy's survey is gone."""
    versions = survey_versions(session, spec)
    if versions is None:
        return None
    audience = None
    if spec.audience is not None:
        audience = segments.resolve(spec.audience, segments.stored_lookup(session), field="audience")
    members = customers.audience_members(session, audience, now=now)
    cooling: set[int] = set()
    if spec.cooldown_days:
        cooling = followups.customers_in_cooldown(
            session, strategy.id, since=now - dt.timedelta(days=spec.cooldown_days)
        )
    key = wave_key(fired_at)
    salt = f"{spec.key}|{key}"
    drawn = [member for member in members if member[0] not in cooling] if cooling else members
    draws = sorted(
        (draw, cid, external_id, zone)
        for draw, (cid, external_id, zone) in zip(
            buckets("wave", salt, [external_id for _, external_id, _ in drawn]), drawn, strict=True
        )
    )
    sampled = bisect.bisect_left(draws, (spec.sample_rate,))  # the draws are sorted by their bucket
    chosen = draws[: min(sampled, spec.max_per_wave)]
    step = spec.spread / len(chosen) if chosen else dt.timedelta(0)
    holdouts = settings.global_holdout_percent > 0 or spec.holdout_percent > 0
    picks: list[tuple[int, str, dt.datetime, str, str | None]] = []
    send_at = now
    for _, cid, external_id, zone in chosen:
        picks.append((cid, external_id, send_at, zone, _preset(spec, external_id, settings) if holdouts else None))
        send_at += step  # the instants now + step × index: a timedelta counts whole microseconds
    return WavePlan(
        audience=len(members),
        in_cooldown=len(members) - len(drawn),
        sampled=sampled,
        capped=sampled - len(chosen),
        run_key=f"wave:{key}",
        versions=versions,
        picks=picks,
    )


def plan_drawn(
    session: Session, strategy: Strategy, spec: StrategyCreate, drawn: WavePlan, *, now: dt.datetime, settings: Settings
) -> PlanStats:
    """Plan a drawn wave: in the database when all its follow-ups share one plan, else one by one
    (the personal channel chooses per customer, variants differ in words and survey)."""
    if spec.auto_channel or spec.variants or not drawn.picks:
        return followups.plan_followups(session, drawn.items(strategy, spec), now=now, settings=settings)
    template = drawn.item(strategy, spec, drawn.picks[0])._replace(preset_reason=None)
    picks = [(cid, send_at, zone, preset) for cid, _, send_at, zone, preset in drawn.picks]
    return followups.plan_followups_in_bulk(session, template, picks, now=now, settings=settings)


def plan_wave(
    session: Session, strategy: Strategy, *, fired_at: dt.datetime, missed: int, now: dt.datetime, settings: Settings
) -> Wave | None:
    """Plan one wave's follow-ups and record the wave; None when it was planned before."""
    waves = WaveRepository(session)
    if waves.get(strategy.id, fired_at) is not None:
        return None
    spec = StrategyCreate.model_validate(strategy.definition)
    drawn = draw_wave(session, strategy, spec, fired_at=fired_at, now=now, settings=settings)
    wave = Wave(
        strategy_id=strategy.id,
        strategy_version=strategy.version,
        fired_at=fired_at,
        run_at=now,
        missed=missed,
        audience=0,
        in_cooldown=0,
        sampled=0,
        capped=0,
        planned=0,
        suppressed=0,
    )
    if drawn is not None:
        stats = plan_drawn(session, strategy, spec, drawn, now=now, settings=settings)
        wave.audience, wave.in_cooldown, wave.sampled, wave.capped = (
            drawn.audience,
            drawn.in_cooldown,
            drawn.sampled,
            drawn.capped,
        )
        wave.planned, wave.suppressed = stats.planned, stats.suppressed
    waves.add(wave)
    session.flush()
    log.info(
        "wave_planned",
        strategy=strategy.key,
        fired_at=fired_at.isoformat(),
        missed=missed,
        audience=wave.audience,
        planned=wave.planned,
    )
    return wave


def run_due_waves(
    session: Session,
    *,
    now: dt.datetime,
    settings: Settings,
    keys: KeyProvider,
    limit: int = 200,
    one_by_one: bool = False,
) -> int:
    """Plan every periodic wave that has come due; returns how many were claimed.

    Each strategy's `next_run_at` moves to the schedule's next firing after now as the wave is
    claimed: a worker that was down plans the latest missed firing once, not each one it missed.
    With `one_by_one`, each wave runs in a savepoint of its own, and one that breaks is skipped
    (logged) instead of holding back the others.
    """
    repo = StrategyRepository(session)
    claimed = 0
    for strategy in repo.due_by_kind("periodic", now, limit=limit):
        spec = StrategyCreate.model_validate(strategy.definition)
        due = strategy.next_run_at
        if spec.schedule is None or due is None:
            continue
        fired_at, missed = schedule.due_firing(spec.schedule.cron, spec.schedule.time_zone, due, now)
        following = schedule.next_firing(spec.schedule.cron, spec.schedule.time_zone, fired_at)
        if not repo.move_next_run(strategy.id, expected=due, to=following):
            continue  # another worker claimed it first
        claimed += 1
        if not one_by_one:
            plan_wave(session, strategy, fired_at=fired_at, missed=missed, now=now, settings=settings)
            continue
        try:
            with session.begin_nested():
                plan_wave(session, strategy, fired_at=fired_at, missed=missed, now=now, settings=settings)
        except (OperationalError, InterfaceError):
            raise  # the database, not this wave, is at fault
        except Exception as exc:  # noqa: BLE001 - one strategy's wave must never stop the others
            log.error("wave_crashed", strategy=strategy.key, fired_at=fired_at.isoformat(), error=type(exc).__name__)
    session.flush()
    return claimed
