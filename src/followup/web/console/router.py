"""The console's pages. Every page reads through the domains' services, the same ones the API
calls; nothing here decides anything. Any signed-in staff member may view (roles gate changes,
and the console makes none yet)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context

from followup.cases import service as cases
from followup.customers import service as customers
from followup.dispatch import service as dispatch
from followup.events import service as events
from followup.followups import service as followups
from followup.followups.schemas import FollowupStatus
from followup.insights import service as insights
from followup.kernel.errors import NotFound, Unauthorized
from followup.kernel.http import AppSettings, Keys, ReadSession
from followup.rewards import service as rewards
from followup.staff import service as staff
from followup.surveys import service as surveys
from followup.web.console import auth
from followup.web.console.auth import ConsoleStaff, LoginRequired

HERE = Path(__file__).parent
PAGE_SIZE = 50
FOLLOWUP_STATUSES: tuple[FollowupStatus, ...] = (
    "planned",
    "invited",
    "reminded",
    "responded",
    "expired",
    "suppressed",
    "failed",
)

router = APIRouter(prefix="/console", include_in_schema=False)
templates = Jinja2Templates(directory=str(HERE / "templates"))


@pass_context
def _local_link(context: Context, url: str) -> str:
    """A message's link, made relative when it points at this app: the console may be reached
    under another host name than the public one customers use, and the link must still open here."""
    public_url: str = context.get("public_url", "")
    if public_url and url.startswith(public_url + "/"):
        return url[len(public_url) :]
    return url


def _when(value: dt.datetime | None) -> str:
    return "" if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


templates.env.filters["local_link"] = _local_link
templates.env.filters["when"] = _when
templates.env.filters["percent"] = _percent
templates.env.filters["number"] = _number


def _page(
    request: Request, name: str, signed_in: auth.SignedInStaff | None, context: dict[str, Any], status_code: int = 200
) -> Response:
    return templates.TemplateResponse(request, name, {"staff": signed_in, **context}, status_code=status_code)


def _pages(page: int, total: int) -> dict[str, Any]:
    last = max(1, -(-total // PAGE_SIZE))
    return {"page": page, "last_page": last, "total": total}


def _offset(page: int) -> int:
    return (max(page, 1) - 1) * PAGE_SIZE


def _not_found(request: Request, signed_in: auth.SignedInStaff, text: str) -> Response:
    return _page(request, "not_found.html", signed_in, {"title": "Not found", "text": text}, status_code=404)


@router.get("/login", response_class=HTMLResponse)
def show_login(request: Request, next: str | None = None) -> Response:
    return _login_page(request, next_path=auth.safe_next(next), error=None)


def _login_page(request: Request, *, next_path: str, error: str | None, status_code: int = 200) -> Response:
    nonce = auth.login_nonce(request)
    response = _page(
        request,
        "login.html",
        None,
        {"title": "Sign in", "csrf": auth.login_form_token(request, nonce), "next": next_path, "error": error},
        status_code=status_code,
    )
    auth.set_login_cookie(request, response, nonce)
    return response


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    session: ReadSession,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/console",
) -> Response:
    next_path = auth.safe_next(next)
    if not auth.check_login_token(request, csrf):
        return _login_page(
            request, next_path=next_path, error="The form expired; please sign in again.", status_code=403
        )
    try:
        member = staff.authenticate_staff(session, email=email, password=password)
    except Unauthorized as exc:
        return _login_page(request, next_path=next_path, error=exc.message, status_code=401)
    response = RedirectResponse(next_path, status_code=303)
    auth.start_session(request, response, member.id)
    return response


@router.post("/logout")
def logout(request: Request, signed_in: ConsoleStaff, csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
    if not auth.check_csrf(signed_in, csrf):
        return _page(
            request,
            "not_found.html",
            signed_in,
            {"title": "Refused", "text": "The form expired or came from elsewhere; reload the page and try again."},
            status_code=403,
        )
    response = RedirectResponse("/console/login", status_code=303)
    auth.end_session(response)
    return response


@router.get("", response_class=HTMLResponse)
def overview(request: Request, signed_in: ConsoleStaff, session: ReadSession) -> Response:
    summary = insights.overview(session)
    series = {
        "days": [int(dt.datetime.combine(p.day, dt.time(), dt.UTC).timestamp()) for p in summary.daily],
        "response_rate": [None if p.response_rate is None else round(p.response_rate * 100, 1) for p in summary.daily],
        "nps": [p.nps for p in summary.daily],
    }
    return _page(
        request,
        "overview.html",
        signed_in,
        {
            "title": "Overview",
            "nav": "overview",
            "events": events.count_events(session),
            "summary": summary,
            "statuses": FOLLOWUP_STATUSES,
            "series": series,
        },
    )


@router.get("/outbox", response_class=HTMLResponse)
def outbox(request: Request, signed_in: ConsoleStaff, session: ReadSession, keys: Keys, page: int = 1) -> Response:
    messages, total = dispatch.list_outbox(session, customer_id=None, limit=PAGE_SIZE, offset=_offset(page), keys=keys)
    return _page(
        request,
        "outbox.html",
        signed_in,
        {"title": "Outbox", "nav": "outbox", "messages": messages, **_pages(page, total)},
    )


@router.get("/outbox/{message_id}", response_class=HTMLResponse)
def show_message(
    request: Request, message_id: int, signed_in: ConsoleStaff, session: ReadSession, keys: Keys, settings: AppSettings
) -> Response:
    try:
        message = dispatch.access_outbox_message(session, message_id, keys=keys)
    except NotFound as exc:
        return _not_found(request, signed_in, exc.message)
    return _page(
        request,
        "message.html",
        signed_in,
        {
            "title": message.content.subject if message.content else f"Message {message.id}",
            "nav": "outbox",
            "message": message,
            "sender": settings.smtp_from,
            "public_url": settings.public_url,
        },
    )


@router.get("/followups", response_class=HTMLResponse)
def followup_list(
    request: Request, signed_in: ConsoleStaff, session: ReadSession, status: str = "", page: int = 1
) -> Response:
    chosen = status if status in FOLLOWUP_STATUSES else None
    rows, total = followups.list_followups(
        session, customer_id=None, status=chosen, limit=PAGE_SIZE, offset=_offset(page)
    )
    return _page(
        request,
        "followups.html",
        signed_in,
        {
            "title": "Follow-ups",
            "nav": "followups",
            "followups": rows,
            "statuses": FOLLOWUP_STATUSES,
            "status": chosen or "",
            **_pages(page, total),
        },
    )


@router.get("/responses", response_class=HTMLResponse)
def response_list(
    request: Request, signed_in: ConsoleStaff, session: ReadSession, keys: Keys, page: int = 1
) -> Response:
    rows, total = surveys.list_responses(
        session,
        customer_id=None,
        survey_key=None,
        since=None,
        until=None,
        limit=PAGE_SIZE,
        offset=_offset(page),
        keys=keys,
    )
    return _page(
        request,
        "responses.html",
        signed_in,
        {"title": "Responses", "nav": "responses", "responses": rows, **_pages(page, total)},
    )


@router.get("/cases", response_class=HTMLResponse)
def case_list(
    request: Request, signed_in: ConsoleStaff, session: ReadSession, status: str = "open", page: int = 1
) -> Response:
    chosen = status if status in ("open", "closed") else None
    rows, total = cases.list_cases(
        session, status=chosen, priority=None, customer_id=None, limit=PAGE_SIZE, offset=_offset(page)
    )
    return _page(
        request,
        "cases.html",
        signed_in,
        {"title": "Cases", "nav": "cases", "cases": rows, "status": chosen or "all", **_pages(page, total)},
    )


@router.get("/customers/{customer_id}", response_class=HTMLResponse)
def show_customer(
    request: Request, customer_id: str, signed_in: ConsoleStaff, session: ReadSession, keys: Keys
) -> Response:
    customer = customers.get_customer(session, customer_id)
    if customer is None:
        return _not_found(request, signed_in, f"There is no customer {customer_id}.")
    their_followups, _ = followups.list_followups(
        session, customer_id=customer.id, status=None, limit=PAGE_SIZE, offset=0
    )
    messages, _ = dispatch.list_outbox(session, customer_id=customer.id, limit=PAGE_SIZE, offset=0, keys=keys)
    their_cases, _ = cases.list_cases(
        session, status=None, priority=None, customer_id=customer.id, limit=PAGE_SIZE, offset=0
    )
    return _page(
        request,
        "customer.html",
        signed_in,
        {
            "title": f"Customer {customer.external_id}",
            "nav": "",
            "customer": customers.describe_customer(session, customer, keys=keys),
            "followups": their_followups,
            "messages": messages,
            "cases": their_cases,
            "rewards": rewards.describe_rewards(session, customer.id, subject_id=customer.external_id),
        },
    )


def install_console(app: FastAPI) -> None:
    """Mount the console: its pages, its static files, and the redirect to sign in."""
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=str(HERE / "static")), name="console-static")

    @app.exception_handler(LoginRequired)
    async def _login_required(_request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(auth.login_url(exc.next_path), status_code=303)
