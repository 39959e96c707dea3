"""The case API's two steps that write to the customer: a reply, and the resolution that asks
"did we solve it?". Beside the follow-ups because they send messages (`casework`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from followup.cases import service as cases
from followup.cases.schemas import CaseDetail, CaseReply, CaseResolve
from followup.followups import casework
from followup.kernel.http import AppSettings, Keys, Now, WriteSession
from followup.kernel.openapi import may_answer
from followup.staff.auth import ApiActor

router = APIRouter(tags=["cases"])
CaseId = Annotated[int, Path(ge=1, le=2**62)]


@router.post("/cases/{case_id}/reply", response_model=CaseDetail, responses=may_answer(404, 409, 422))
def reply_to_case(
    case_id: CaseId,
    body: CaseReply,
    *,
    session: WriteSession,
    actor: ApiActor,
    settings: AppSettings,
    keys: Keys,
    now: Now,
) -> CaseDetail:
    case = cases.access_case_for(session, case_id, actor, lock=True)
    return casework.reply(session, case, body.text, actor=actor, settings=settings, keys=keys, now=now)


@router.post("/cases/{case_id}/resolve", response_model=CaseDetail, responses=may_answer(404, 409, 422))
def resolve_case(
    case_id: CaseId,
    body: CaseResolve,
    *,
    session: WriteSession,
    actor: ApiActor,
    settings: AppSettings,
    keys: Keys,
    now: Now,
) -> CaseDetail:
    case = cases.access_case_for(session, case_id, actor, lock=True)
    return casework.resolve(session, case, body, actor=actor, settings=settings, keys=keys, now=now)
