"""Proactive strategies: everyone in an audience, once per cadence period, spread across it.

Periods are counted from the strategy's creation: period n is [created_at + n·cadence, created_at +
(n+1)·cadence). Each customer has a slot in the period, `bucket("proactive", key, customer) ·
cadence` after its start, the same in every period, so one period's follow-ups spread evenly over
it and a customer is asked at the same point of each period (one cadence apart).

A sweep (a worker timer, every `SWEEP_EVERY`) plans the audience's members whose slot in the
current period has come and who have no follow-up of this period yet (run key `period:<n>`), at
most `max_per_wave` a sweep (the rest follow at the next); a customer who joins the audience later
is planned at the first sweep after their slot, or at once when it has passed. A member who left
the audience has their follow-up that is planned and not yet sent suppressed (`left_audience`).
Sweeps are claimed like waves: a guarded move of the strategy's `next_run_at`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from followup.config import Settings
from followup.customers import service as customers
from followup.followups import service as followups
from followup.followups.schemas import PlanItem
from followup.kernel.crypto import KeyProvider
from followup.kernel.logging import get_logger
from followup.policy import service as policy
from followup.policy.enums import RefusalReason
from followup.strategies import segments
from followup.strategies.models import Strategy
from followup.strategies.repository import StrategyRepository
from followup.strategies.sampling import bucket, in_holdout, is_sampled, plan_item, survey_versions
from followup.strategies.schemas import StrategyCreate

log = get_logger(__name__)

SWEEP_EVERY = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Period:
    number: int
    start: dt.datetime
    end: dt.datetime

    @property
    def run_key(self) -> str:
        return f"period:{self.number}"


@dataclass(frozen=True)
class SweepPlan:
    """What one sweep plans, before the contact policy: what a real sweep does and a preview shows."""

    period: Period
    audience: int
    done: int  # members with a follow-up of this period already
    waiting: int  # members whose slot has not come yet
    capped: int  # due, but over max_per_wave: the next sweep takes them
    items: list[PlanItem]
    left: list[int]  # follow-ups planned, not sent, whose customer left the audience


def period_at(anchor: dt.datetime, cadence: dt.timedelta, at: dt.datetime) -> Period:
    number = max(0, int((at - anchor) / cadence))
    start = anchor + cadence * number
    return Period(number=number, start=start, end=start + cadence)


def slot(spec: StrategyCreate, period: Period, customer_external_id: str) -> dt.datetime:
    """When in the period this customer is asked: the same fraction of every period."""
    assert spec.cadence is not None  # noqa: S101 - a proactive strategy always has its cadence
    return period.start + spec.cadence * bucket("proactive", spec.key, customer_external_id)


def next_sweep(now: dt.datetime) -> dt.datetime:
    """The next sweep: the top of the next hour (UTC)."""
    hour = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return hour + SWEEP_EVERY


def _preset(spec: StrategyCreate, external_id: str, settings: Settings) -> RefusalReason | None:
    if policy.in_global_holdout(external_id, settings.global_holdout_percent):
        return RefusalReason.GLOBAL_HOLDOUT
    if in_holdout(spec, external_id):
        return RefusalReason.HOLDOUT
    return None if is_sampled(spec, external_id) else RefusalReason.NOT_SAMPLED


def draw_sweep(
    session: Session,
    strategy: Strategy,
    spec: StrategyCreate,
    *,
    now: dt.datetime,
    settings: Settings,
    period: Period | None = None,
    until: dt.datetime | None = None,
) -> SweepPlan | None:
    """The follow-ups a sweep at `now` plans in `period` (default: the current one): the members
    whose slot has come by `until` (default now). None when the strategy's survey is gone."""
    assert spec.cadence is not None  # noqa: S101 - a proactive strategy always has its cadence
    versions = survey_versions(session, spec)
    if versions is None:
        return None
    if period is None:
        period = period_at(strategy.created_at, spec.cadence, now)
    audience = None
    if spec.audience is not None:
        audience = segments.resolve(spec.audience, segments.stored_lookup(session), field="audience")
    members = customers.audience_members(session, audience, now=now)
    done = followups.customers_with_run(session, strategy.id, period.run_key)
    horizon = min(until or now, period.end)
    due: list[tuple[dt.datetime, int, str]] = []
    waiting = 0
    for cid, external_id, _ in members:
        if cid in done:
            continue
        at = slot(spec, period, external_id)
        if at <= horizon:
            due.append((at, cid, external_id))
        else:
            waiting += 1
    due.sort()
    chosen = due[: spec.max_per_wave]
    items = [
        plan_item(
            strategy,
            spec,
            versions,
            customer_id=cid,
            external_id=external_id,
            send_at=max(now, at),
            run_key=period.run_key,
            recontact_days=0,  # once per period is the run key's guard; the fatigue budget still holds
            preset_reason=_preset(spec, external_id, settings),
        )
        for at, cid, external_id in chosen
    ]
    in_audience = {cid for cid, _, _ in members}
    left = [fid for fid, cid, _ in followups.awaiting_invite(session, strategy.id, None) if cid not in in_audience]
    return SweepPlan(
        period=period,
        audience=len(members),
        done=len(done.intersection(in_audience)),
        waiting=waiting,
        capped=len(due) - len(chosen),
        items=items,
        left=left,
    )


def sweep(
    session: Session, strategy: Strategy, *, now: dt.datetime, settings: Settings, since: dt.datetime | None = None
) -> int:
    """Plan what has come due of the current period and cancel what the audience's leavers were
    still to be sent; returns the follow-ups planned. When the sweep before (at `since` or later:
    a sweep sets the next one at the top of the following hour) was in an earlier period, that
    period is finished first: the slots between its last sweep and its end are planned now, once
    (a worker that was down catches up one period, not each it missed)."""
    spec = StrategyCreate.model_validate(strategy.definition)
    assert spec.cadence is not None  # noqa: S101 - a proactive strategy always has its cadence
    current = period_at(strategy.created_at, spec.cadence, now)
    planned = 0
    if since is not None:
        earlier = period_at(strategy.created_at, spec.cadence, since)
        if earlier.number < current.number:
            unfinished = draw_sweep(session, strategy, spec, now=now, settings=settings, period=earlier)
            if unfinished is not None:
                planned += _plan(session, strategy, unfinished, now=now, settings=settings)
    drawn = draw_sweep(session, strategy, spec, now=now, settings=settings, period=current)
    if drawn is None:
        return planned
    followups.supersede(session, drawn.left, reason=RefusalReason.LEFT_AUDIENCE, now=now)
    return planned + _plan(session, strategy, drawn, now=now, settings=settings)


def _plan(session: Session, strategy: Strategy, drawn: SweepPlan, *, now: dt.datetime, settings: Settings) -> int:
    stats = followups.plan_followups(session, drawn.items, now=now, settings=settings)
    log.info(
        "proactive_swept",
        strategy=strategy.key,
        period=drawn.period.number,
        audience=drawn.audience,
        planned=stats.planned,
        suppressed=stats.suppressed,
        left=len(drawn.left),
    )
    return stats.planned


def run_due_sweeps(
    session: Session,
    *,
    now: dt.datetime,
    settings: Settings,
    keys: KeyProvider,
    limit: int = 200,
    one_by_one: bool = False,
) -> int:
    """Sweep every proactive strategy whose sweep has come due; returns how many were claimed.
    A worker that was down sweeps once on its return (every slot that passed meanwhile is due)."""
    repo = StrategyRepository(session)
    claimed = 0
    for strategy in repo.due_by_kind("proactive", now, limit=limit):
        due = strategy.next_run_at
        if due is None or not repo.move_next_run(strategy.id, expected=due, to=next_sweep(now)):
            continue  # another worker claimed it first
        claimed += 1
        if not one_by_one:
            sweep(session, strategy, now=now, settings=settings, since=due - SWEEP_EVERY)
            continue
        try:
            with session.begin_nested():
                sweep(session, strategy, now=now, settings=settings, since=due - SWEEP_EVERY)
        except (OperationalError, InterfaceError):
            raise  # the database, not this strategy, is at fault
        except Exception as exc:  # noqa: BLE001 - one strategy's sweep must never stop the others
            log.error("sweep_crashed", strategy=strategy.key, error=type(exc).__name__)
    session.flush()
    return claimed
