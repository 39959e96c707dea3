from __future__ import annotations

import datetime as dt
from typing import Literal

from followup.kernel.schemas import Schema

GroupBy = Literal["channel", "event_type", "locale"]


class MetricsGroup(Schema):
    key: str | None
    invited: int
    responded: int
    response_rate: float | None
    nps: float | None
    nps_count: int
    csat: float | None
    csat_count: int


class MetricsSummary(Schema):
    strategy: str | None
    group_by: GroupBy | None
    total: MetricsGroup
    groups: list[MetricsGroup]


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
