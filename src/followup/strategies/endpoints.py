from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from followup.kernel.http import AppSettings, ChannelNames, Now, ReadSession, WriteSession
from followup.kernel.openapi import may_answer
from followup.kernel.pagination import Limit, Offset
from followup.kernel.schemas import Page
from followup.staff.auth import ApiActor
from followup.strategies import service
from followup.strategies.schemas import StrategyCreate, StrategyOut, StrategyUpdate

router = APIRouter(tags=["strategies"])
Key = Annotated[str, Path(max_length=64)]


@router.post("/strategies", response_model=StrategyOut, status_code=201, responses=may_answer(404, 409))
def create_strategy(
    body: StrategyCreate,
    session: WriteSession,
    actor: ApiActor,
    now: Now,
    channels: ChannelNames,
    settings: AppSettings,
) -> StrategyOut:
    strategy = service.create_strategy(
        session, body, available_channels=channels, limits=settings.input_limits, actor=actor, now=now
    )
    return service.describe_strategy(strategy)


@router.get("/strategies", response_model=Page[StrategyOut])
def list_strategies(session: ReadSession, actor: ApiActor, limit: Limit = 50, offset: Offset = 0) -> Page[StrategyOut]:
    items, total = service.list_strategies(session, limit=limit, offset=offset)
    return Page[StrategyOut](items=items, total=total)


@router.get("/strategies/{key}", response_model=StrategyOut, responses=may_answer(404))
def get_strategy(key: Key, session: ReadSession, actor: ApiActor) -> StrategyOut:
    return service.describe_strategy(service.access_strategy(session, key))


@router.patch("/strategies/{key}", response_model=StrategyOut, responses=may_answer(404))
def update_strategy(key: Key, body: StrategyUpdate, session: WriteSession, actor: ApiActor, now: Now) -> StrategyOut:
    strategy = service.update_strategy(session, service.access_strategy(session, key), body, actor=actor, now=now)
    return service.describe_strategy(strategy)
