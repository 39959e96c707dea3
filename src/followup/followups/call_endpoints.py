"""The call queue's API, for agents working calls from their own tools with a key issued for them
(`followup apikey create --staff EMAIL --scope calls`): claim the next call, read its script,
reveal the number with a reason, record the outcome."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from followup.calls import service as calls
from followup.calls.schemas import CallOut, CallOutcomeIn, CallReveal, CallRevealed
from followup.followups import call_work
from followup.kernel.http import AppSettings, Keys, Now, ReadSession, WriteSession
from followup.kernel.openapi import may_answer
from followup.staff.auth import ApiActor

router = APIRouter(tags=["calls"])
CallId = Annotated[int, Path(ge=1, le=2**62)]


@router.post(
    "/calls/claim",
    response_model=CallOut,
    responses={**may_answer(409), 204: {"description": "No call is due in your queues now."}},
)
def claim_call(
    session: WriteSession, actor: ApiActor, settings: AppSettings, keys: Keys, now: Now
) -> CallOut | Response:
    """The next due call of your queues, yours for 15 minutes; 204 when none is due."""
    claimed = call_work.claim(session, actor, settings=settings, keys=keys, now=now)
    return claimed if claimed is not None else Response(status_code=204)


@router.get("/calls/{call_id}", response_model=CallOut, responses=may_answer(404))
def get_call(call_id: CallId, session: ReadSession, actor: ApiActor, keys: Keys, now: Now) -> CallOut:
    return call_work.describe(session, calls.access_task(session, call_id, actor), keys=keys, now=now)


@router.post("/calls/{call_id}/reveal", response_model=CallRevealed, responses=may_answer(404, 409, 422))
def reveal_number(
    call_id: CallId,
    body: CallReveal,
    *,
    session: WriteSession,
    actor: ApiActor,
    settings: AppSettings,
    keys: Keys,
    now: Now,
) -> CallRevealed:
    """The customer's number in clear, for the agent holding the call; the reason goes to the audit log."""
    task = calls.access_task(session, call_id, actor, lock=True)
    return call_work.reveal(session, task, body.reason, actor=actor, settings=settings, keys=keys, now=now)


@router.post("/calls/{call_id}/outcome", response_model=CallOut, responses=may_answer(404, 409, 422))
def record_outcome(
    call_id: CallId,
    body: CallOutcomeIn,
    *,
    session: WriteSession,
    actor: ApiActor,
    settings: AppSettings,
    keys: Keys,
    now: Now,
) -> CallOut:
    task = calls.access_task(session, call_id, actor, lock=True)
    return call_work.record_outcome(session, task, body, actor=actor, settings=settings, keys=keys, now=now)
