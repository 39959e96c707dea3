from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from followup.kernel.http import AppSettings, ChannelNames, EventHistoryFactory, Keys, Now, ReadSession, WriteSession
from followup.kernel.openapi import may_answer
from followup.kernel.pagination import Limit, Offset
from followup.kernel.schemas import Page
from followup.staff.auth import ApiActor
from followup.strategies import preview, segments, service
from followup.strategies.schemas import (
    MessagePreview,
    MessagePreviewRequest,
    SavedPreviewRequest,
    SegmentCreate,
    SegmentOut,
    SegmentPreview,
    SegmentUpdate,
    StrategyCreate,
    StrategyOut,
    StrategyPreview,
    StrategyPreviewRequest,
    StrategyUpdate,
    WaveOut,
)

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


@router.post("/strategies/preview", response_model=StrategyPreview, responses=may_answer(404, 409))
def preview_strategy(
    body: StrategyPreviewRequest,
    session: WriteSession,
    actor: ApiActor,
    now: Now,
    channels: ChannelNames,
    settings: AppSettings,
    keys: Keys,
    history: EventHistoryFactory,
) -> StrategyPreview:
    """What a strategy body would do, not saved: planned for real and rolled back. Writes nothing."""
    return preview.preview_new(
        session,
        body.strategy,
        days=body.days,
        available_channels=channels,
        actor=actor,
        now=now,
        settings=settings,
        keys=keys,
        history=history(session),
    )


@router.post("/strategies/{key}/preview", response_model=StrategyPreview, responses=may_answer(404))
def preview_saved_strategy(
    key: Key,
    body: SavedPreviewRequest,
    session: WriteSession,
    actor: ApiActor,
    now: Now,
    settings: AppSettings,
    keys: Keys,
    history: EventHistoryFactory,
) -> StrategyPreview:
    """What a saved strategy would do (even a paused one): planned for real and rolled back."""
    strategy = service.access_strategy(session, key)
    return preview.preview_saved(
        session, strategy, days=body.days, now=now, settings=settings, keys=keys, history=history(session)
    )


@router.post("/strategies/{key}/preview-message", response_model=MessagePreview, responses=may_answer(404, 409))
def preview_message(
    key: Key, body: MessagePreviewRequest, session: ReadSession, actor: ApiActor, now: Now
) -> MessagePreview:
    """The strategy's message rendered for one customer, as they would read it now. Writes nothing."""
    return service.preview_message(session, service.access_strategy(session, key), body, now=now)


@router.get("/strategies/{key}/waves", response_model=Page[WaveOut], responses=may_answer(404))
def list_waves(key: Key, session: ReadSession, actor: ApiActor, limit: Limit = 50, offset: Offset = 0) -> Page[WaveOut]:
    items, total = service.list_waves(session, service.access_strategy(session, key), limit=limit, offset=offset)
    return Page[WaveOut](items=items, total=total)


segments_router = APIRouter(tags=["segments"])


@segments_router.post("/segments", response_model=SegmentOut, status_code=201, responses=may_answer(409))
def create_segment(
    body: SegmentCreate, session: WriteSession, actor: ApiActor, now: Now, settings: AppSettings
) -> SegmentOut:
    segment = segments.create_segment(session, body, limits=settings.input_limits, actor=actor, now=now)
    return segments.describe_segment(session, segment)


@segments_router.get("/segments", response_model=Page[SegmentOut])
def list_segments(session: ReadSession, actor: ApiActor, limit: Limit = 50, offset: Offset = 0) -> Page[SegmentOut]:
    items, total = segments.list_segments(session, limit=limit, offset=offset)
    return Page[SegmentOut](items=items, total=total)


@segments_router.get("/segments/{key}", response_model=SegmentOut, responses=may_answer(404))
def get_segment(key: Key, session: ReadSession, actor: ApiActor) -> SegmentOut:
    return segments.describe_segment(session, segments.access_segment(session, key))


@segments_router.patch("/segments/{key}", response_model=SegmentOut, responses=may_answer(404))
def update_segment(
    key: Key, body: SegmentUpdate, session: WriteSession, actor: ApiActor, now: Now, settings: AppSettings
) -> SegmentOut:
    segment = segments.update_segment(session, key, body, limits=settings.input_limits, actor=actor, now=now)
    return segments.describe_segment(session, segment)


@segments_router.delete("/segments/{key}", status_code=204, responses=may_answer(404, 409))
def delete_segment(key: Key, session: WriteSession, actor: ApiActor, now: Now) -> Response:
    segments.delete_segment(session, key, actor=actor, now=now)
    return Response(status_code=204)


@segments_router.get("/segments/{key}/preview", response_model=SegmentPreview, responses=may_answer(404))
def preview_segment(key: Key, session: ReadSession, actor: ApiActor, now: Now, keys: Keys) -> SegmentPreview:
    return segments.preview_segment(session, key, now=now, keys=keys)
