"""The console's call workspace: a "next call" button, the call's script in the customer's
language, the number revealed with a reason (audited) as a tel: or softphone link, and the outcome
form; and, for supervisors (admins), the board of the queues: due, overdue, held, per agent and
the outcomes of the day. Agents see the calls of their queues alone (`calls.access_task`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from followup.calls import service as calls
from followup.calls.schemas import CallOut, CallOutcomeIn, CallReveal, CallRevealed
from followup.followups import call_work
from followup.kernel.errors import FollowupError
from followup.kernel.http import AppSettings, Keys, Now, ReadSession, WriteSession
from followup.web.console import auth
from followup.web.console.auth import ConsoleStaff
from followup.web.console.forms import expired_page, staff_actor
from followup.web.console.pages import LARGEST_ID, not_found_page, problem_page, render_page, whole_number

router = APIRouter(prefix="/console", include_in_schema=False)
OUTCOMES = (
    ("answered", "Answered"),
    ("no_answer", "No answer"),
    ("busy", "Busy"),
    ("call_back", "Call back later"),
    ("wrong_number", "Wrong number"),
    ("refused", "Declined the survey"),
    ("do_not_call", "Do not call again"),
)
SAID = dict(OUTCOMES)
MAX_FIELDS = 60  # the outcome form: a few fixed fields and one per survey question
MAX_VALUE = 5000  # a text answer's longest (TextQuestion.max_length)


async def _outcome_form(request: Request) -> dict[str, str]:
    """The outcome form's fields, each one value of bounded length; a control character other than
    a line break is refused by the input guard before this reads it."""
    form = await request.form(max_fields=MAX_FIELDS)
    return {key: str(value)[:MAX_VALUE] for key, value in form.items() if isinstance(value, str)}


OutcomeForm = Annotated[dict[str, str], Depends(_outcome_form)]


def _day_start(now: dt.datetime) -> dt.datetime:
    return now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@router.get("/calls", response_class=HTMLResponse)
def workspace(
    request: Request, signed_in: ConsoleStaff, session: ReadSession, now: Now, done: str = "", none: str = ""
) -> Response:
    board = calls.board(session, now=now, day_start=_day_start(now))
    queues: dict[str, dict[str, int]] = board["queues"]  # type: ignore[assignment]
    if signed_in.role == "agent":
        queues = {name: counts for name, counts in queues.items() if name in signed_in.queues}
    return render_page(
        request,
        "calls.html",
        signed_in,
        {
            "title": "Calls",
            "nav": "calls",
            "queues": queues,
            "board": board if signed_in.role == "admin" else None,
            "done": SAID.get(done),
            "none_due": none == "1",
            "my_queues": signed_in.queues,
        },
    )


@router.post("/calls/claim")
def claim(
    request: Request,
    signed_in: ConsoleStaff,
    session: WriteSession,
    settings: AppSettings,
    keys: Keys,
    now: Now,
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    if not auth.check_csrf(signed_in, csrf):
        return expired_page(request, signed_in)
    try:
        claimed = call_work.claim(session, staff_actor(signed_in), settings=settings, keys=keys, now=now)
    except FollowupError as exc:
        return _problem(request, signed_in, exc)
    if claimed is None:
        return RedirectResponse("/console/calls?none=1", status_code=303)
    return RedirectResponse(f"/console/calls/{claimed.id}", status_code=303)


def _problem(request: Request, signed_in: auth.SignedInStaff, exc: FollowupError) -> Response:
    return problem_page(
        request, signed_in, title="Not done", text=exc.message, status_code=exc.status_code, back="/console/calls"
    )


def _call_page(
    request: Request,
    signed_in: auth.SignedInStaff,
    call: CallOut,
    *,
    now: dt.datetime,
    revealed: CallRevealed | None = None,
    error: str | None = None,
    status_code: int = 200,
    values: dict[str, Any] | None = None,
) -> Response:
    holding = call.status == "claimed" and call.agent == signed_in.email
    response = render_page(
        request,
        "call.html",
        signed_in,
        {
            "title": f"Call {call.id}",
            "nav": "calls",
            "call": call,
            "holding": holding,
            "revealed": revealed,
            "outcomes": OUTCOMES,
            "error": error,
            "values": values or {},
            "local_now": now.astimezone(ZoneInfo(call.time_zone)).strftime("%H:%M"),
        },
        status_code=status_code,
    )
    if revealed is not None:
        response.headers["Cache-Control"] = "no-store"  # the number in clear stays out of every cache
    return response


def _task(session: Any, call_id: str, signed_in: auth.SignedInStaff, *, lock: bool = False) -> calls.CallRow | None:
    number = whole_number(call_id, low=1, high=LARGEST_ID)
    if number is None:
        return None
    try:
        return calls.access_task(session, number, staff_actor(signed_in), lock=lock)
    except calls.CallNotFound:
        return None


@router.get("/calls/{call_id}", response_class=HTMLResponse)
def show_call(
    request: Request, call_id: str, signed_in: ConsoleStaff, session: ReadSession, keys: Keys, now: Now
) -> Response:
    task = _task(session, call_id, signed_in)
    if task is None:
        return not_found_page(request, signed_in, f"There is no call {call_id[:20]!r} in your queues.")
    return _call_page(request, signed_in, call_work.describe(session, task, keys=keys, now=now), now=now)


@router.post("/calls/{call_id}/reveal", response_class=HTMLResponse)
def reveal(
    request: Request,
    call_id: str,
    signed_in: ConsoleStaff,
    session: WriteSession,
    settings: AppSettings,
    keys: Keys,
    now: Now,
    csrf: Annotated[str, Form(max_length=200)] = "",
    reason: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    if not auth.check_csrf(signed_in, csrf):
        return expired_page(request, signed_in)
    task = _task(session, call_id, signed_in, lock=True)
    if task is None:
        return not_found_page(request, signed_in, f"There is no call {call_id[:20]!r} in your queues.")
    actor = staff_actor(signed_in)
    try:
        checked = _reason(reason)
        revealed = call_work.reveal(session, task, checked, actor=actor, settings=settings, keys=keys, now=now)
    except FollowupError as exc:
        session.rollback()
        task = _task(session, call_id, signed_in)
        assert task is not None  # noqa: S101 - it was there a moment ago, in this transaction
        call = call_work.describe(session, task, keys=keys, now=now)
        return _call_page(request, signed_in, call, now=now, error=exc.message, status_code=exc.status_code)
    call = call_work.describe(session, task, keys=keys, now=now)
    return _call_page(request, signed_in, call, now=now, revealed=revealed)


def _reason(text: str) -> str:
    try:
        return CallReveal(reason=text).reason
    except ValidationError as exc:
        raise FollowupError(
            "Say why you need the number (3 to 300 characters, one line); it goes to the audit log.",
            field="reason",
            status_code=422,
        ) from exc


@router.post("/calls/{call_id}/outcome", response_class=HTMLResponse)
def record_outcome(
    request: Request,
    call_id: str,
    signed_in: ConsoleStaff,
    session: WriteSession,
    settings: AppSettings,
    keys: Keys,
    now: Now,
    form: OutcomeForm,
) -> Response:
    if not auth.check_csrf(signed_in, str(form.get("csrf", ""))):
        return expired_page(request, signed_in)
    task = _task(session, call_id, signed_in, lock=True)
    if task is None:
        return not_found_page(request, signed_in, f"There is no call {call_id[:20]!r} in your queues.")
    outcome = str(form.get("outcome", ""))
    try:
        body = _outcome_of(form, outcome, time_zone=calls.time_zone_of(session, task.customer_id))
        call_work.record_outcome(
            session, task, body, actor=staff_actor(signed_in), settings=settings, keys=keys, now=now
        )
    except FollowupError as exc:
        session.rollback()
        task = _task(session, call_id, signed_in)
        assert task is not None  # noqa: S101 - it was there a moment ago, in this transaction
        call = call_work.describe(session, task, keys=keys, now=now)
        return _call_page(
            request, signed_in, call, now=now, error=exc.message, status_code=exc.status_code, values=form
        )
    return RedirectResponse(f"/console/calls?done={outcome}", status_code=303)


def _outcome_of(form: dict[str, str], outcome: str, *, time_zone: str) -> CallOutcomeIn:
    """The form as the API's body: answers from the `q-` fields, a call-back time given in the
    customer's own time zone."""
    answers = {
        key.removeprefix("q-"): value for key, value in form.items() if key.startswith("q-") and value not in ("", None)
    }
    at = None
    if outcome == "call_back":
        try:
            local = dt.datetime.fromisoformat(str(form.get("at", "")))
        except ValueError as exc:
            raise FollowupError(
                "Give the time to call back, in the customer's time.", field="at", status_code=422
            ) from exc
        at = local.replace(tzinfo=ZoneInfo(time_zone)).astimezone(dt.UTC)
    try:
        return CallOutcomeIn.model_validate(
            {"outcome": outcome, "answers": _numbers(answers) if outcome == "answered" else None, "at": at}
        )
    except ValidationError as exc:
        raise FollowupError("Choose what came of the call.", field="outcome", status_code=422) from exc


def _numbers(answers: dict[str, Any]) -> dict[str, Any]:
    """Ratings come from the form as text: a score is a whole number."""
    return {key: int(value) if isinstance(value, str) and value.isdigit() else value for key, value in answers.items()}
