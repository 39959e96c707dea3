from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from followup.customers import service as customers
from followup.kernel.http import AppSettings, Keys, Now, ReadSession, WriteSession
from followup.kernel.openapi import may_answer
from followup.kernel.pagination import Limit, Offset
from followup.kernel.schemas import Page, UtcDateTime
from followup.staff import roles
from followup.staff.auth import ApiActor
from followup.surveys import service
from followup.surveys.schemas import InterviewOut, ResponseOut, SurveyCreate, SurveyOut

router = APIRouter(tags=["surveys"])


@router.post("/surveys", response_model=SurveyOut, status_code=201, responses=may_answer(409))
def create_survey(
    body: SurveyCreate, session: WriteSession, actor: ApiActor, now: Now, settings: AppSettings
) -> SurveyOut:
    survey = service.create_survey(session, body, limits=settings.input_limits, now=now, actor=actor)
    return service.describe_survey(session, survey)


@router.get("/surveys", response_model=Page[SurveyOut])
def list_surveys(session: ReadSession, actor: ApiActor, limit: Limit = 50, offset: Offset = 0) -> Page[SurveyOut]:
    items, total = service.list_surveys(session, limit=limit, offset=offset)
    return Page[SurveyOut](items=items, total=total)


@router.get("/surveys/{key}", response_model=SurveyOut, responses=may_answer(404))
def get_survey(key: Annotated[str, Path(max_length=64)], session: ReadSession, actor: ApiActor) -> SurveyOut:
    return service.describe_survey(session, service.access_survey(session, key))


@router.get("/responses", response_model=Page[ResponseOut], responses=may_answer(404))
def list_responses(
    session: ReadSession,
    actor: ApiActor,
    keys: Keys,
    customer_id: Annotated[str | None, Query(max_length=128)] = None,
    survey: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[UtcDateTime | None, Query(alias="from")] = None,
    until: Annotated[UtcDateTime | None, Query(alias="to")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ResponseOut]:
    internal = customers.access_customer(session, customer_id).id if customer_id else None
    items, total = service.list_responses(
        session,
        customer_id=internal,
        survey_key=survey,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
        keys=keys,
    )
    shown = roles.pseudonymise(items, actor.role, keys.derive_key(roles.PSEUDONYM_KEY_LABEL))
    return Page[ResponseOut](items=shown, total=total)


@router.get("/interviews", response_model=Page[InterviewOut], responses=may_answer(404))
def list_interviews(
    session: ReadSession,
    actor: ApiActor,
    keys: Keys,
    survey: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[UtcDateTime | None, Query(alias="from", description="interviews starting at or after")] = None,
    until: Annotated[UtcDateTime | None, Query(alias="to", description="interviews starting before")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[InterviewOut]:
    """Booked interviews, by start time (soonest first)."""
    items, total = service.list_interviews(
        session, survey_key=survey, since=since, until=until, limit=limit, offset=offset, keys=keys
    )
    return Page[InterviewOut](items=items, total=total)
