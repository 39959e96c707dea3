"""Insight over follow-ups: the metrics summary and the console's overview."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection

from sqlalchemy.orm import Session

from followup.cases import service as cases
from followup.customers import service as customers
from followup.dispatch import service as dispatch
from followup.followups import service as followups
from followup.insights.metrics import csat, nps, nps_difference, rate, two_proportion_test
from followup.insights.schemas import (
    DailyPoint,
    Funnel,
    FunnelGroupBy,
    FunnelStage,
    GroupBy,
    MetricsGroup,
    MetricsSummary,
    Overview,
    StrategyActivity,
    VariantComparison,
)
from followup.rewards import service as rewards
from followup.strategies import service as strategies
from followup.surveys import service as surveys


def _group(key: str | None, rows: list[tuple[bool, int | None, int | None]]) -> MetricsGroup:
    nps_scores = [n for _, n, _ in rows if n is not None]
    csat_scores = [c for _, _, c in rows if c is not None]
    responded = sum(1 for answered, _, _ in rows if answered)
    return MetricsGroup(
        key=key,
        invited=len(rows),
        responded=responded,
        response_rate=rate(responded, len(rows)),
        nps=nps(nps_scores),
        nps_count=len(nps_scores),
        csat=csat(csat_scores),
        csat_count=len(csat_scores),
    )


def funnel(
    session: Session,
    *,
    since: dt.datetime | None,
    until: dt.datetime | None,
    group_by: FunnelGroupBy,
    strategy_key: str | None = None,
) -> Funnel:
    """queued → accepted → delivered → opened or clicked → answered, per channel or strategy, for
    the invitations and reminders queued in [since, until)."""
    strategy_id = strategies.access_strategy(session, strategy_key).id if strategy_key else None
    keys = strategies.keys_by_id(session)
    sums: dict[str | None, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for row_strategy, channel, *counts in dispatch.funnel_rows(session, since=since, until=until):
        if strategy_id is not None and row_strategy != strategy_id:
            continue
        if group_by == "strategy" and row_strategy is None:
            continue
        key = channel if group_by == "channel" else keys.get(row_strategy or 0, str(row_strategy))
        for index, count in enumerate(counts):
            sums[key][index] += count
            sums[None][index] += count
    groups = [_stage(key, sums[key]) for key in sorted(key for key in sums if key)]
    return Funnel(group_by=group_by, total=_stage(None, sums[None]), groups=groups)


def _stage(key: str | None, counts: list[int]) -> FunnelStage:
    queued, accepted, delivered, opened, answered = counts
    return FunnelStage(key=key, queued=queued, accepted=accepted, delivered=delivered, opened=opened, answered=answered)


def metrics_summary(
    session: Session,
    *,
    strategy_key: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    group_by: GroupBy | None,
) -> MetricsSummary:
    """Follow-ups invited in [since, until): how many answered, with NPS and CSAT, per group."""
    strategy_id = strategies.access_strategy(session, strategy_key).id if strategy_key else None
    invited = followups.invited_in_period(session, strategy_id=strategy_id, since=since, until=until)
    scores = surveys.scores_for_followups(session, [f.id for f in invited])
    locale_of: dict[int, str] = {}
    if group_by == "locale":
        locale_of = {
            cid: snap.locale for cid, snap in customers.snapshots(session, {f.customer_id for f in invited}).items()
        }
    rows_by_key: dict[str | None, list[tuple[bool, int | None, int | None]]] = defaultdict(list)
    all_rows = []
    for followup in invited:
        score = scores.get(followup.id)
        row = (score is not None, score[0] if score else None, score[1] if score else None)
        all_rows.append(row)
        if group_by == "channel":
            rows_by_key[followup.channel].append(row)
        elif group_by == "event_type":
            rows_by_key[followup.event_type].append(row)
        elif group_by == "locale":
            rows_by_key[locale_of.get(followup.customer_id)].append(row)
        elif group_by == "variant":
            rows_by_key[followups.plan_of(followup).variant].append(row)
    groups = [_group(key, rows) for key, rows in sorted(rows_by_key.items(), key=lambda kv: str(kv[0]))]
    comparisons = None
    if group_by == "variant":
        order = [variant.key for variant in strategies.variants_of(session, strategy_key)] if strategy_key else []
        comparisons = _compare_variants(rows_by_key, order)
    return MetricsSummary(
        strategy=strategy_key,
        group_by=group_by,
        total=_group(None, all_rows),
        groups=groups,
        comparisons=comparisons,
    )


def strategy_activity(
    session: Session, strategy_ids: Collection[int], *, since: dt.datetime
) -> dict[int, StrategyActivity]:
    """Each strategy's follow-ups since `since`: planned, invited, answered, response rate and NPS,
    for a whole page of strategies in a few set-based queries (never one per strategy)."""
    counts = followups.activity_by_strategy(session, strategy_ids, since=since)
    answered = followups.answered_since(session, strategy_ids, since=since)
    scores = surveys.scores_for_followups(session, [followup_id for followup_id, _ in answered])
    nps_scores: dict[int, list[int]] = defaultdict(list)
    for followup_id, strategy_id in answered:
        score = scores.get(followup_id)
        if score is not None and score[0] is not None:
            nps_scores[strategy_id].append(score[0])
    out = {}
    for strategy_id in strategy_ids:
        planned, invited, responded = counts.get(strategy_id, (0, 0, 0))
        out[strategy_id] = StrategyActivity(
            planned=planned,
            invited=invited,
            responded=responded,
            response_rate=rate(responded, invited),
            nps=nps(nps_scores[strategy_id]),
            nps_count=len(nps_scores[strategy_id]),
        )
    return out


def _compare_variants(
    rows_by_key: dict[str | None, list[tuple[bool, int | None, int | None]]], order: list[str]
) -> list[VariantComparison]:
    """Each variant against the control: the strategy's first variant, else the first by key."""
    keys = [key for key in rows_by_key if key is not None]
    if len(keys) < 2:
        return []
    ranked = sorted(keys, key=lambda key: (order.index(key) if key in order else len(order), key))
    control = ranked[0]
    base = rows_by_key[control]
    out = []
    for key in ranked[1:]:
        rows = rows_by_key[key]
        test = two_proportion_test(
            sum(1 for answered, _, _ in base if answered),
            len(base),
            sum(1 for answered, _, _ in rows if answered),
            len(rows),
        )
        nps_diff = nps_difference([n for _, n, _ in base if n is not None], [n for _, n, _ in rows if n is not None])
        out.append(
            VariantComparison(
                variant=key,
                against=control,
                response_rate_difference=test.difference if test else None,
                z=test.z if test else None,
                p_value=test.p_value if test else None,
                nps_difference=nps_diff[0] if nps_diff else None,
                nps_difference_low=nps_diff[1] if nps_diff else None,
                nps_difference_high=nps_diff[2] if nps_diff else None,
            )
        )
    return out


def daily_series(session: Session) -> list[DailyPoint]:
    """One point per UTC day from the first invitation to the last, empty days included (a gap in
    the chart should show as a gap, not be drawn over)."""
    invited = followups.invited_in_period(session, strategy_id=None, since=None, until=None)
    if not invited:
        return []
    scores = surveys.scores_for_followups(session, [f.id for f in invited])
    by_day: dict[dt.date, list[tuple[bool, int | None, int | None]]] = defaultdict(list)
    for followup in invited:
        if followup.invited_at is None:  # never: invited_in_period selects invited follow-ups only
            continue
        score = scores.get(followup.id)
        by_day[followup.invited_at.astimezone(dt.UTC).date()].append(
            (score is not None, score[0] if score else None, score[1] if score else None)
        )
    first, last = min(by_day), max(by_day)
    points = []
    for offset in range((last - first).days + 1):
        day = first + dt.timedelta(days=offset)
        group = _group(None, by_day.get(day, []))
        points.append(
            DailyPoint(
                day=day,
                invited=group.invited,
                responded=group.responded,
                response_rate=group.response_rate,
                nps=group.nps,
            )
        )
    return points


def overview(session: Session) -> Overview:
    grants, points = rewards.granted_totals(session)
    _, open_cases = cases.list_cases(session, status="open", priority=None, customer_id=None, limit=1, offset=0)
    return Overview(
        followups_by_status=followups.count_by_status(session),
        reasons=followups.count_by_reason(session),
        total=metrics_summary(session, strategy_key=None, since=None, until=None, group_by=None).total,
        rewards_granted=grants,
        points_granted=points,
        open_cases=open_cases,
        daily=daily_series(session),
    )
