"""The console's privacy page: the queue of customers' data requests (erasures and exports), with
their deadlines and the overdue ones first in sight; an admin holds a request with a reason (a
legal hold) and releases it. The auditor reads it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from followup.data_rights import service as data_rights
from followup.kernel.errors import FollowupError
from followup.kernel.http import Now, ReadSession, WriteSession
from followup.staff import roles
from followup.web.console import auth
from followup.web.console.auth import ConsoleStaff
from followup.web.console.forms import expired_page, staff_actor
from followup.web.console.pages import PAGE_SIZE, offset_of, page_number_of, paging, problem_page, render_page

router = APIRouter(prefix="/console", include_in_schema=False)
STATUSES = ("pending", "held", "done")
REQUEST_ID = 32


@router.get("/privacy")
def privacy_home(signed_in: ConsoleStaff) -> Response:
    """The queue for those who may read it (admins, auditors), the notices for everyone else."""
    allowed = roles.access(signed_in.role, "GET", "/privacy/requests") == "allow"
    return RedirectResponse("/console/privacy/requests" if allowed else "/console/privacy/notices", status_code=303)


@router.get("/privacy/requests", response_class=HTMLResponse)
def request_queue(
    request: Request,
    signed_in: ConsoleStaff,
    session: ReadSession,
    now: Now,
    status: str = "",
    overdue: str = "",
    page: str = "1",
) -> Response:
    if status not in ("", *STATUSES) or overdue not in ("", "1"):
        return problem_page(
            request,
            signed_in,
            title="No such filter",
            text="Filter by a status (pending, held or done) or show the overdue requests.",
            status_code=400,
            back="/console/privacy/requests",
        )
    number = page_number_of(request, signed_in, page)
    if isinstance(number, Response):
        return number
    items, total = data_rights.list_requests(
        session,
        kind=None,
        status=status or None,
        overdue=overdue == "1",
        now=now,
        limit=PAGE_SIZE,
        offset=offset_of(number),
    )
    return render_page(
        request,
        "privacy.html",
        signed_in,
        {
            "title": "Privacy requests",
            "nav": "privacy",
            "privacy_tab": "requests",
            "items": items,
            "status": status,
            "overdue": overdue,
            "counts": data_rights.request_counts(session, now=now),
            "may_hold": roles.access(signed_in.role, "POST", "/privacy/requests/{request_id}/hold") == "allow",
            **paging(number, total),
        },
    )


@router.post("/privacy/requests/{request_id}/{action}")
def change_request(
    request: Request,
    request_id: str,
    action: str,
    signed_in: ConsoleStaff,
    session: WriteSession,
    now: Now,
    csrf: Annotated[str, Form(max_length=200)] = "",
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    if not auth.check_csrf(signed_in, csrf):
        return expired_page(request, signed_in)
    if action not in ("hold", "release") or len(request_id) > REQUEST_ID:
        return problem_page(request, signed_in, title="Not found", text="There is no such request.", status_code=404)
    reason = reason.strip()
    if action == "hold" and not 1 <= len(reason) <= 500:
        return problem_page(
            request,
            signed_in,
            title="Not held",
            text="Say why the request is held, in 1 to 500 characters (e.g. a legal hold on the account).",
            status_code=422,
            back="/console/privacy/requests",
        )
    try:
        if action == "hold":
            data_rights.hold(session, request_id, reason=reason, actor=staff_actor(signed_in), now=now)
        else:
            data_rights.release(session, request_id, actor=staff_actor(signed_in), now=now)
    except FollowupError as exc:
        return problem_page(request, signed_in, title="Not changed", text=exc.message, status_code=exc.status_code)
    return RedirectResponse("/console/privacy/requests", status_code=303)
