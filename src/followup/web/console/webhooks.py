"""The console's webhooks page: each endpoint the wallet registered, whether it is enabled (and
why not), and its latest deliveries with their status, latency and the start of the answer; a
delivery can be sent again from here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from followup.kernel.errors import FollowupError
from followup.kernel.http import Now, ReadSession, WriteSession
from followup.web.console import auth
from followup.web.console.auth import ConsoleStaff
from followup.web.console.forms import expired_page
from followup.web.console.pages import problem_page, render_page
from followup.webhooks import service as webhooks

router = APIRouter(prefix="/console", include_in_schema=False)
DELIVERIES_SHOWN = 20


@router.get("/webhooks", response_class=HTMLResponse)
def webhook_list(request: Request, signed_in: ConsoleStaff, session: ReadSession) -> Response:
    endpoints, _ = webhooks.list_endpoints(session, limit=100, offset=0)
    deliveries = {
        endpoint.id: webhooks.list_deliveries(session, endpoint.id, limit=DELIVERIES_SHOWN, offset=0)
        for endpoint in endpoints
    }
    return render_page(
        request,
        "webhooks.html",
        signed_in,
        {"title": "Webhooks", "nav": "webhooks", "endpoints": endpoints, "deliveries": deliveries},
    )


@router.post("/webhooks/deliveries/{delivery_id}/replay")
def replay_delivery(
    request: Request,
    delivery_id: int,
    signed_in: ConsoleStaff,
    session: WriteSession,
    now: Now,
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    if not auth.check_csrf(signed_in, csrf):
        return expired_page(request, signed_in)
    try:
        webhooks.replay(session, delivery_id, now=now)
    except FollowupError as exc:
        return problem_page(request, signed_in, title="Not sent again", text=exc.message, status_code=exc.status_code)
    return RedirectResponse("/console/webhooks#queued", status_code=303)
