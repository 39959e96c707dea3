from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from followup.kernel.schemas import Schema

GroupBy = Literal["channel", "event_type", "locale", "variant"]
FunnelGroupBy = Literal["channel", "strategy"]


class MetricsGroup(Schema):
    key: str | None
    invited: int
    responded: int
    response_rate: float | None
    nps: float | None
    nps_count: int
    csat: float | None
    csat_count: int


class VariantComparison(Schema):
    """One variant against the first (the control): is the difference more than chance?"""

    variant: str
    against: str = Field(description="the first variant: the strategy's first, else the first by key")
    response_rate_difference: float | None = Field(description="this variant's rate minus the control's")
    z: float | None = Field(description="two-proportion z statistic (pooled)")
    p_value: float | None = Field(description="two-sided; below 0.05 is the usual bar")
    nps_difference: float | None
    nps_difference_low: float | None = Field(description="95 % confidence interval of the NPS difference")
    nps_difference_high: float | None


class MetricsSummary(Schema):
    strategy: str | None
    group_by: GroupBy | None
    total: MetricsGroup
    groups: list[MetricsGroup]
    comparisons: list[VariantComparison] | None = Field(
        default=None, description="with group_by=variant: each variant against the first"
    )


class StrategyActivity(Schema):
    """One strategy's recent work: follow-ups planned (not suppressed) in the period, invited in
    it, and of those invited how many answered, with the NPS of their answers."""

    planned: int
    invited: int
    responded: int
    response_rate: float | None
    nps: float | None
    nps_count: int


class DailyPoint(Schema):
    """Follow-ups invited on one UTC day and how they were answered (by invitation day, so a late
    answer counts toward the day its customer was asked)."""

    day: dt.date
    invited: int
    responded: int
    response_rate: float | None
    nps: float | None


class Overview(Schema):
    """What the console's first page shows: the state of every follow-up and the headline metrics."""

    followups_by_status: dict[str, int]
    reasons: dict[str, int]
    total: MetricsGroup
    rewards_granted: int
    points_granted: int
    open_cases: int
    daily: list[DailyPoint]


class FunnelStage(Schema):
    """How far the messages of one group got: each stage counts the messages that reached it."""

    key: str | None = Field(description="the group's channel or strategy; null for the total")
    queued: int = Field(description="invitations and reminders queued")
    accepted: int = Field(description="accepted by the provider")
    delivered: int = Field(description="delivered, by the provider's receipt (null-receipt channels count none)")
    opened: int = Field(description="opened (the app's report) or clicked (the survey link followed) or answered")
    answered: int = Field(description="answered through this message")


class Funnel(Schema):
    group_by: FunnelGroupBy
    total: FunnelStage
    groups: list[FunnelStage]
