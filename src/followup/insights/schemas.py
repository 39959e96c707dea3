from __future__ import annotations

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
