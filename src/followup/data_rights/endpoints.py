"""The data-rights API: a customer's export and erasure, for the wallet's app, and the operator's
queue of requests."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse

from followup.data_rights import service
from followup.data_rights.schemas import DataRequestOut, ErasureAccepted, ErasureIn, HoldIn, RequestKind, RequestStatus
from followup.kernel.http import AppSettings, Keys, Now, ReadSession, WriteSession
from followup.kernel.openapi import may_answer
from followup.kernel.pagination import Limit, Offset
from followup.kernel.schemas import Page
from followup.staff.auth import ApiActor

router = APIRouter(tags=["privacy"])
CustomerId = Annotated[str, Path(min_length=1, max_length=128)]
RequestId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^pr_[0-9a-f]{16}$")]
ZIP = "application/zip"


@router.get(
    "/customers/{customer_id}/export",
    response_class=Response,
    responses={
        200: {"content": {ZIP: {}}, "description": "customer.json and one CSV per kind of record"},
        **may_answer(404),
    },
)
def export_customer(customer_id: CustomerId, session: WriteSession, actor: ApiActor, keys: Keys, now: Now) -> Response:
    """Everything followup holds about the customer, as the customer's own privacy page gives it."""
    body = service.export_zip(session, customer_id, source="api", actor=actor, keys=keys, now=now)
    filename = f"followup-export-{now:%Y%m%d}.zip"
    return Response(body, media_type=ZIP, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.post(
    "/customers/{customer_id}/erasure",
    response_model=ErasureAccepted,
    status_code=202,
    responses=may_answer(404, 422),
)
def request_erasure(
    customer_id: CustomerId,
    session: WriteSession,
    actor: ApiActor,
    keys: Keys,
    now: Now,
    settings: AppSettings,
    body: ErasureIn | None = None,
) -> JSONResponse:
    """Ask for the customer's data to be erased: done by the worker once due (now plus
    FOLLOWUP_ERASURE_GRACE). While a request is pending, asking again returns it."""
    row = service.request_erasure(
        session,
        customer_id,
        reason=body.reason if body else None,
        source="api",
        actor=actor,
        settings=settings,
        keys=keys,
        now=now,
    )
    accepted = ErasureAccepted(request_id=row.request_id, due_at=row.due_at)
    return JSONResponse(accepted.model_dump(mode="json"), status_code=202)


@router.get("/privacy/requests", response_model=Page[DataRequestOut])
def list_requests(
    session: ReadSession,
    actor: ApiActor,
    now: Now,
    kind: RequestKind | None = None,
    status: RequestStatus | None = None,
    overdue: Annotated[bool, Query(description="only open requests past their legal deadline")] = False,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[DataRequestOut]:
    items, total = service.list_requests(
        session, kind=kind, status=status, overdue=overdue, now=now, limit=limit, offset=offset
    )
    return Page[DataRequestOut](items=items, total=total)


@router.get("/privacy/requests/{request_id}", response_model=DataRequestOut, responses=may_answer(404))
def get_request(request_id: RequestId, session: ReadSession, actor: ApiActor, now: Now) -> DataRequestOut:
    return service.describe(session, [service.access_request(session, request_id)], now=now)[0]


@router.post("/privacy/requests/{request_id}/hold", response_model=DataRequestOut, responses=may_answer(404, 409, 422))
def hold_request(
    request_id: RequestId, session: WriteSession, actor: ApiActor, now: Now, body: HoldIn | None = None
) -> DataRequestOut:
    """Keep the request from being carried out (`{"reason"}` required, e.g. a legal hold); its
    deadline still counts, and past it the request shows as overdue."""
    if body is None:
        raise service.HoldNeedsReason('Say why the request is held: {"reason": "…"}.', field="reason")
    row = service.hold(session, request_id, reason=body.reason, actor=actor, now=now)
    return service.describe(session, [row], now=now)[0]


@router.post("/privacy/requests/{request_id}/release", response_model=DataRequestOut, responses=may_answer(404, 409))
def release_request(request_id: RequestId, session: WriteSession, actor: ApiActor, now: Now) -> DataRequestOut:
    """Let a held request go on: the worker carries it out at its next round once due."""
    row = service.release(session, request_id, actor=actor, now=now)
    return service.describe(session, [row], now=now)[0]
