"""The console's case pages: the list with its filters, the supervisor's board of queues and a CSV
export; a case's page with the response and comment behind it, the customer's context and the
timeline; and the forms that work it — assign, note, reply, resolve, reopen, close. Agents see the
cases of their queues alone (`cases.access_case_for`); the rest is the role table's
(`staff.roles`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from followup.cases import service as cases
from followup.cases.schemas import CaseResolve
from followup.followups import casework
from followup.kernel.errors import FollowupError
from followup.kernel.http import AppSettings, Keys, Now, ReadSession, WriteSession
from followup.kernel.text import control_character
from followup.surveys import service as surveys
from followup.web.console import auth
from followup.web.console.auth import ConsoleStaff
from followup.web.console.forms import expired_page, staff_actor
from followup.web.console.pages import (
    LARGEST_ID,
    PAGE_SIZE,
    not_found_page,
    offset_of,
    page_number_of,
    paging,
    problem_page,
    render_page,
    whole_number,
)

router = APIRouter(prefix="/console", include_in_schema=False)
STATUSES = ("active", *cases.STATUSES, "all")
PRIORITIES = ("", "security", "high", "normal")
ACTIONS = ("assign", "note", "reply", "resolve", "reopen", "close")


def _filters(
    request: Request, signed_in: auth.SignedInStaff, *, status: str, priority: str, queue: str, assignee: str
) -> Response | None:
    if status not in STATUSES:
        return problem_page(
            request,
            signed_in,
            title="Unknown status",
            text=f"There is no status '{status[:40]}'. Choose one of these:",
            status_code=400,
            choices=[(s, f"/console/cases?status={s}") for s in STATUSES],
            back="/console/cases",
        )
    problems = []
    if priority not in PRIORITIES:
        problems.append("A priority is security, high or normal.")
    if len(queue) > 32 or (queue and not queue.replace("-", "").replace("_", "").isalnum()):
        problems.append("A queue is a short word, like complaint or security.")
    if len(assignee) > 254 or control_character(assignee):
        problems.append("An assignee is a staff member's email, or none.")
    if not problems:
        return None
    return problem_page(
        request,
        signed_in,
        title="Unknown filter",
        text=" ".join(problems),
        status_code=400,
        back="/console/cases",
    )


@router.get("/cases", response_class=HTMLResponse)
def case_list(
    request: Request,
    signed_in: ConsoleStaff,
    session: ReadSession,
    now: Now,
    status: str = "active",
    priority: str = "",
    queue: str = "",
    assignee: str = "",
    overdue: str = "",
    page: str = "1",
) -> Response:
    refused = _filters(request, signed_in, status=status, priority=priority, queue=queue, assignee=assignee)
    if refused is not None:
        return refused
    number = page_number_of(request, signed_in, page)
    if isinstance(number, Response):
        return number
    actor = staff_actor(signed_in)
    rows, total = cases.list_cases(
        session,
        status=None if status == "all" else status,
        priority=priority or None,
        customer_id=None,
        limit=PAGE_SIZE,
        offset=offset_of(number),
        actor=actor,
        queue=queue or None,
        assignee=assignee or None,
        overdue=overdue == "1",
        now=now,
    )
    board = cases.queue_board(session, now=now)
    if actor.role == "agent":
        board = {name: counts for name, counts in board.items() if name in actor.queues}
    kept = {"status": status, "priority": priority, "queue": queue, "assignee": assignee, "overdue": overdue}
    query = "&".join(f"{k}={v}" for k, v in kept.items() if v)
    return render_page(
        request,
        "cases.html",
        signed_in,
        {
            "title": "Cases",
            "nav": "cases",
            "cases": rows,
            "board": board,
            "statuses": STATUSES,
            "priorities": PRIORITIES[1:],
            "filters": kept,
            "pager_query": f"{query}&" if query else "",
            "csv_query": query,
            **paging(number, total),
        },
    )


@router.get("/cases.csv")
def case_csv(
    request: Request,
    signed_in: ConsoleStaff,
    session: ReadSession,
    now: Now,
    status: str = "active",
    priority: str = "",
    queue: str = "",
    assignee: str = "",
    overdue: str = "",
) -> Response:
    refused = _filters(request, signed_in, status=status, priority=priority, queue=queue, assignee=assignee)
    if refused is not None:
        return refused
    text = cases.cases_csv(
        session,
        actor=staff_actor(signed_in),
        status=None if status == "all" else status,
        priority=priority or None,
        queue=queue or None,
        assignee=assignee or None,
        overdue=overdue == "1",
        now=now,
    )
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%d-%H%M")
    return Response(
        "\ufeff" + text,  # a BOM, so spreadsheet programs read the UTF-8 as UTF-8
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="cases-{stamp}.csv"', "Cache-Control": "no-store"},
    )


def _case_page(
    request: Request,
    signed_in: auth.SignedInStaff,
    session: ReadSession | WriteSession,
    case: cases.CaseRow,
    *,
    keys: Any,
    now: dt.datetime,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    detail = cases.describe_case(session, case, keys=keys, now=now)
    response = surveys.describe_response(session, case.response_id, keys=keys) if case.response_id else None
    others, _ = cases.list_cases(
        session,
        status=None,
        priority=None,
        customer_id=case.customer_id,
        limit=10,
        offset=0,
        actor=staff_actor(signed_in),
        now=now,
    )
    return render_page(
        request,
        "case.html",
        signed_in,
        {
            "title": f"Case {case.id}",
            "nav": "cases",
            "case": detail,
            "response": response,
            "others": [other for other in others if other.id != case.id],
            "codes": cases.RESOLUTION_CODES,
            "error": error,
        },
        status_code=status_code,
    )


def _case_of(session: Any, case_id: str, signed_in: auth.SignedInStaff, *, lock: bool = False) -> cases.CaseRow | None:
    number = whole_number(case_id, low=1, high=LARGEST_ID)
    if number is None:
        return None
    try:
        return cases.access_case_for(session, number, staff_actor(signed_in), lock=lock)
    except cases.CaseNotFound:
        return None


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def show_case(
    request: Request, case_id: str, signed_in: ConsoleStaff, session: ReadSession, keys: Keys, now: Now
) -> Response:
    case = _case_of(session, case_id, signed_in)
    if case is None:
        return not_found_page(request, signed_in, f"There is no case {case_id[:20]!r} in your queues.")
    return _case_page(request, signed_in, session, case, keys=keys, now=now)


@router.post("/cases/{case_id}/{action}", response_class=HTMLResponse)
def work_case(
    request: Request,
    case_id: str,
    action: str,
    signed_in: ConsoleStaff,
    session: WriteSession,
    keys: Keys,
    now: Now,
    settings: AppSettings,
    csrf: Annotated[str, Form(max_length=200)] = "",
    text: Annotated[str, Form(max_length=4000)] = "",
    assignee: Annotated[str, Form(max_length=254)] = "",
    code: Annotated[str, Form(max_length=16)] = "",
    root_cause: Annotated[str, Form(max_length=2000)] = "",
    done: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    if not auth.check_csrf(signed_in, csrf):
        return expired_page(request, signed_in)
    case = _case_of(session, case_id, signed_in, lock=True)
    if case is None or action not in ACTIONS:
        return not_found_page(request, signed_in, f"There is no case {case_id[:20]!r} in your queues.")
    actor = staff_actor(signed_in)
    try:
        multiline = control_character(text + root_cause + done, multiline=True)
        if multiline or control_character(assignee):
            raise FollowupError("The text holds a control character; type it again without it.")
        if action == "assign":
            cases.assign(session, case, assignee.strip() or None, actor=actor, now=now)
        elif action == "note":
            cases.add_note(session, case, text, actor=actor, keys=keys, now=now, slas=settings.case_sla)
        elif action == "reply":
            if not text.strip() or len(text) > 2000:
                raise FollowupError("Write the reply: from 1 to 2,000 characters.")
            casework.reply(session, case, text.strip(), actor=actor, settings=settings, keys=keys, now=now)
        elif action == "resolve":
            body = CaseResolve.model_validate({"code": code, "root_cause": root_cause, "action": done})
            casework.resolve(session, case, body, actor=actor, settings=settings, keys=keys, now=now)
        elif action == "reopen":
            cases.reopen(session, case, actor=actor, now=now, why=text.strip()[:500] or "by hand", keys=keys)
        else:
            resolution = text.strip() or "closed by hand"
            cases.close_case(session, case, resolution=resolution, actor=actor, now=now, keys=keys)
    except (ValidationError, FollowupError) as exc:
        session.rollback()
        again = _case_of(session, case_id, signed_in)
        if again is None:
            return not_found_page(request, signed_in, f"There is no case {case_id[:20]!r} in your queues.")
        if isinstance(exc, FollowupError):
            error, status = exc.message, exc.status_code
        else:
            error, status = "Choose what resolved it, and write the root cause and what was done.", 422
        return _case_page(request, signed_in, session, again, keys=keys, now=now, error=error, status_code=status)
    return RedirectResponse(f"/console/cases/{case.id}#timeline", status_code=303)
