from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from followup.insights import service
from followup.insights.schemas import Funnel, FunnelGroupBy, GroupBy, MetricsSummary
from followup.kernel.http import ReadSession
from followup.kernel.openapi import may_answer
from followup.kernel.schemas import UtcDateTime
from followup.staff.auth import ApiActor

router = APIRouter(tags=["metrics"])


@router.get("/metrics/summary", response_model=MetricsSummary, responses=may_answer(404))
def metrics_summary(
    session: ReadSession,
    actor: ApiActor,
    strategy: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[UtcDateTime | None, Query(alias="from")] = None,
    until: Annotated[UtcDateTime | None, Query(alias="to")] = None,
    group_by: GroupBy | None = None,
) -> MetricsSummary:
    return service.metrics_summary(session, strategy_key=strategy, since=since, until=until, group_by=group_by)


@router.get("/metrics/funnel", response_model=Funnel, responses=may_answer(404))
def metrics_funnel(
    session: ReadSession,
    actor: ApiActor,
    strategy: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[UtcDateTime | None, Query(alias="from")] = None,
    until: Annotated[UtcDateTime | None, Query(alias="to")] = None,
    group_by: FunnelGroupBy = "channel",
) -> Funnel:
    """How far the invitations and reminders queued in the period got, per channel or strategy:
    queued → accepted → delivered → opened or clicked → answered."""
    return service.funnel(session, since=since, until=until, group_by=group_by, strategy_key=strategy)
