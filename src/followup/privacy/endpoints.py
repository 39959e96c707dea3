"""Privacy notices over the API: publish one (admin), read the current one and every past one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from followup.kernel.http import AppSettings, Now, ReadSession, WriteSession
from followup.kernel.openapi import may_answer
from followup.kernel.pagination import Limit, Offset
from followup.kernel.schemas import Page
from followup.privacy import service
from followup.privacy.enums import NOTICE_VERSION_PATTERN
from followup.privacy.schemas import NoticeIn, NoticeOut
from followup.staff.auth import ApiActor

router = APIRouter(tags=["privacy"])
Version = Annotated[str, Path(min_length=1, max_length=32, pattern=NOTICE_VERSION_PATTERN)]


@router.get("/privacy/notices", response_model=Page[NoticeOut], responses=may_answer())
def list_notices(
    session: ReadSession, actor: ApiActor, settings: AppSettings, limit: Limit = 50, offset: Offset = 0
) -> Page[NoticeOut]:
    items, total = service.list_notices(
        session, built_in_notice_version=settings.privacy_notice_version, limit=limit, offset=offset
    )
    return Page[NoticeOut](items=items, total=total)


# Before `/privacy/notices/{version}`, which "current" would otherwise match.
@router.get("/privacy/notices/current", response_model=NoticeOut, responses=may_answer())
def get_current_notice(session: ReadSession, actor: ApiActor, settings: AppSettings) -> NoticeOut:
    return service.current_notice(session, built_in_notice_version=settings.privacy_notice_version)


@router.get("/privacy/notices/{version}", response_model=NoticeOut, responses=may_answer(404))
def get_notice(version: Version, session: ReadSession, actor: ApiActor, settings: AppSettings) -> NoticeOut:
    return service.access_notice(session, version, built_in_notice_version=settings.privacy_notice_version)


@router.put(
    "/privacy/notices/{version}",
    response_model=NoticeOut,
    status_code=200,
    responses={201: {"model": NoticeOut, "description": "The notice was published"}, **may_answer(409)},
)
def put_notice(
    version: Version,
    body: NoticeIn,
    response: Response,
    session: WriteSession,
    actor: ApiActor,
    settings: AppSettings,
    now: Now,
) -> NoticeOut:
    """Publish a notice, which becomes the current one: 201. The same version with the same content
    again: 200, nothing changes. With other content: 409 `notice_published`."""
    notice, created = service.publish_notice(
        session, version, body, built_in_notice_version=settings.privacy_notice_version, actor=actor, now=now
    )
    if created:
        response.status_code = 201
    return notice
