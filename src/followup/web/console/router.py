"""The console's pages. Every page reads through the domains' services, the same ones the API
calls; nothing here decides anything. Which pages a signed-in staff member may open, and which
forms they may post, is decided by their role in the one table `staff.roles`, asked by the
`ConsoleStaff` dependency before a page runs: a 404 page where the path names a record, a 403
page elsewhere.

Every answer is a page, mistakes included: a bad id or page number, an unknown status filter or
an unknown console path gets a 4xx page that says what went wrong, never JSON or a 500.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from followup.calls import service as calls_domain
from followup.cases import service as cases
from followup.channels.schemas import MessageContent
from followup.channels.sms.channel import sms_body
from followup.channels.sms.text import compose
from followup.customers import service as customers
from followup.dispatch import service as dispatch
from followup.events import service as events
from followup.followups import service as followups
from followup.followups.enums import FollowupStatus
from followup.insights import service as insights
from followup.insights.schemas import DailyPoint
from followup.kernel.errors import NotFound, Unauthorized
from followup.kernel.http import AppSettings, Keys, Now, ReadSession, WriteSession
from followup.rewards import service as rewards
from followup.staff import service as staff
from followup.surveys import service as surveys
from followup.web.console import (
    audit,
    auth,
    calls,
    channels,
    interviews,
    notices,
    privacy,
    segments,
    strategies,
    two_factor,
    webhooks,
)
from followup.web.console import cases as case_pages
from followup.web.console.auth import ConsoleStaff, LoginRequired, MaybeStaff, Passwords
from followup.web.console.forms import expired_page, staff_actor
from followup.web.console.pages import (
    HERE,
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

CUSTOMER_ID_MAX_LENGTH = 128
FOLLOWUP_STATUSES: tuple[str, ...] = tuple(FollowupStatus)
HIDDEN_LINK = "…"

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
def show_login(request: Request, next: str | None = None) -> Response:
    return _login_page(request, next_path=auth.safe_next(next), error=None)


def _login_page(request: Request, *, next_path: str, error: str | None, status_code: int = 200) -> Response:
    nonce = auth.login_nonce(request)
    response = render_page(
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
    session: WriteSession,
    settings: AppSettings,
    passwords: Passwords,
    now: Now,
    keys: Keys,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    code: Annotated[str, Form(max_length=20)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/console",
) -> Response:
    next_path = auth.safe_next(next)
    if not auth.check_login_token(request, csrf):
        return _login_page(
            request, next_path=next_path, error="The form expired; please sign in again.", status_code=403
        )
    try:
        member = staff.sign_in_staff(
            session,
            email=email,
            password=password,
            address=auth.client_address(request),
            limits=auth.sign_in_limits(settings),
            throttle_secret=auth.throttle_secret(request),
            passwords=passwords,
            now=now,
            code=code,
            keys=keys,
        )
    except staff.SignInThrottled as exc:
        # Answered with a page rather than raised, here and below: the failure counted by
        # sign_in_staff must be committed although sign-in failed.
        wait = max(1, math.ceil((exc.retry_at - now).total_seconds()))
        response = _login_page(request, next_path=next_path, error=exc.message, status_code=429)
        response.headers["Retry-After"] = str(wait)
        return response
    except Unauthorized as exc:
        return _login_page(request, next_path=next_path, error=exc.message, status_code=401)
    token = staff.start_console_session(session, member, now=now, lifetime=auth.SESSION_LIFETIME)
    response = RedirectResponse(next_path, status_code=303)
    auth.set_session_cookie(request, response, token)
    return response


@router.post("/logout")
def logout(
    request: Request, signed_in: ConsoleStaff, session: WriteSession, csrf: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    if not auth.check_csrf(signed_in, csrf):
        return expired_page(request, signed_in)
    staff.end_console_session(session, auth.session_token(request))
    response = RedirectResponse("/console/login", status_code=303)
    auth.clear_session_cookie(response)
    return response


@router.post("/logout-everywhere")
def logout_everywhere(
    request: Request, signed_in: ConsoleStaff, session: WriteSession, csrf: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    """End every console session of the signed-in member, on every browser, this one included."""
    if not auth.check_csrf(signed_in, csrf):
        return expired_page(request, signed_in)
    staff.end_every_console_session(session, signed_in.id)
    response = RedirectResponse("/console/login", status_code=303)
    auth.clear_session_cookie(response)
    return response


def _chart_series(daily: list[DailyPoint], today: dt.date) -> dict[str, list[Any]]:
    """The chart's data. A day not over yet has no response rate: its invitations have had no
    time to be answered, and its rate would plunge toward zero. Its NPS, an average of the
    answers already in, stays."""
    return {
        "days": [int(dt.datetime.combine(p.day, dt.time(), dt.UTC).timestamp()) for p in daily],
        "response_rate": [
            None if p.response_rate is None or p.day >= today else round(p.response_rate * 100, 1) for p in daily
        ],
        "nps": [p.nps for p in daily],
    }


@router.get("", response_class=HTMLResponse)
def overview(request: Request, signed_in: ConsoleStaff, session: ReadSession, now: Now) -> Response:
    summary = insights.overview(session)
    today = now.astimezone(dt.UTC).date()
    return render_page(
        request,
        "overview.html",
        signed_in,
        {
            "title": "Overview",
            "nav": "overview",
            "events": events.count_events(session),
            "summary": summary,
            "statuses": FOLLOWUP_STATUSES,
            "series": _chart_series(summary.daily, today),
            "today": today,
        },
    )


@router.get("/outbox", response_class=HTMLResponse)
def outbox(request: Request, signed_in: ConsoleStaff, session: ReadSession, keys: Keys, page: str = "1") -> Response:
    number = page_number_of(request, signed_in, page)
    if isinstance(number, Response):
        return number
    messages, total = dispatch.list_outbox(
        session, customer_id=None, limit=PAGE_SIZE, offset=offset_of(number), keys=keys
    )
    return render_page(
        request,
        "outbox.html",
        signed_in,
        {"title": "Outbox", "nav": "outbox", "messages": messages, **paging(number, total)},
    )


def sms_preview(content: MessageContent, *, sign: str | None, public_url: str) -> str:
    """The SMS as the phone showed it, its short link's code hidden (the customer's locale stands
    for their number's country: the opt-out line follows it)."""
    link = f"{public_url}/r/{HIDDEN_LINK}" if content.link else None
    number = "+86" if content.locale == "zh-CN" else "+1"
    if content.transactional:
        text = f"【{sign}】{content.body}" if sign and number == "+86" else content.body
        return f"{text}\n{link}" if link else text
    return compose(sms_body(content), link=link, locale=content.locale, to=number, sign=sign)


def _hidden(url: str) -> str:
    """The link without its token: where it led (`https://host/s/…`), not what it would do."""
    parts = urlsplit(url)
    section = parts.path.rsplit("/", 1)[0]
    return f"{parts.scheme}://{parts.netloc}{section}/{HIDDEN_LINK}"


def _as_shown_to_staff(content: MessageContent) -> MessageContent:
    """The message as its customer saw it, with every link's token taken out. A link would act:
    a survey link answers as the customer (points, cases), an unsubscribe link unsubscribes them.
    Answering on a customer's behalf belongs to the call queue, not to whoever opens the outbox."""
    return content.model_copy(
        update={
            "link": _hidden(content.link) if content.link else "",  # a confirmation may carry none
            "unsubscribe_url": _hidden(content.unsubscribe_url) if content.unsubscribe_url else None,
            "rating_links": [r.model_copy(update={"url": _hidden(r.url)}) for r in content.rating_links],
        }
    )


@router.get("/outbox/{message_id}", response_class=HTMLResponse)
def show_message(
    request: Request, message_id: str, signed_in: ConsoleStaff, session: ReadSession, keys: Keys, settings: AppSettings
) -> Response:
    number = whole_number(message_id, low=1, high=LARGEST_ID)
    if number is None:
        return not_found_page(
            request, signed_in, "A message number is a whole number, like 42; this one names no message."
        )
    try:
        message = dispatch.access_outbox_message(session, number, keys=keys)
    except NotFound as exc:
        return not_found_page(request, signed_in, exc.message)
    content = _as_shown_to_staff(message.content) if message.content else None
    return render_page(
        request,
        "message.html",
        signed_in,
        {
            "title": content.subject if content else f"Message {message.id}",
            "nav": "outbox",
            "message": message.model_copy(update={"content": content}),
            "sender": settings.smtp_from,
            "sms_text": sms_preview(content, sign=settings.sms_sign, public_url=settings.public_url) if content else "",
        },
    )


def _unknown_status(
    request: Request, signed_in: auth.SignedInStaff, *, status: str, valid: tuple[str, ...], back: str
) -> Response:
    return problem_page(
        request,
        signed_in,
        title="Unknown status",
        text=f"There is no status '{status[:40]}'. Choose one of these:",
        status_code=400,
        choices=[(s, f"{back}?status={s}") for s in valid],
        back=back,
    )


@router.get("/followups", response_class=HTMLResponse)
def followup_list(
    request: Request, signed_in: ConsoleStaff, session: ReadSession, status: str = "", page: str = "1"
) -> Response:
    if status and status not in FOLLOWUP_STATUSES:
        return _unknown_status(request, signed_in, status=status, valid=FOLLOWUP_STATUSES, back="/console/followups")
    number = page_number_of(request, signed_in, page)
    if isinstance(number, Response):
        return number
    chosen = status or None
    rows, total = followups.list_followups(
        session, customer_id=None, status=chosen, limit=PAGE_SIZE, offset=offset_of(number)
    )
    return render_page(
        request,
        "followups.html",
        signed_in,
        {
            "title": "Follow-ups",
            "nav": "followups",
            "followups": rows,
            "statuses": FOLLOWUP_STATUSES,
            "status": status,
            **paging(number, total),
        },
    )


@router.get("/responses", response_class=HTMLResponse)
def response_list(
    request: Request, signed_in: ConsoleStaff, session: ReadSession, keys: Keys, page: str = "1"
) -> Response:
    number = page_number_of(request, signed_in, page)
    if isinstance(number, Response):
        return number
    rows, total = surveys.list_responses(
        session,
        customer_id=None,
        survey_key=None,
        since=None,
        until=None,
        limit=PAGE_SIZE,
        offset=offset_of(number),
        keys=keys,
    )
    return render_page(
        request,
        "responses.html",
        signed_in,
        {"title": "Responses", "nav": "responses", "responses": rows, **paging(number, total)},
    )


@router.get("/customers/{customer_id}", response_class=HTMLResponse)
def show_customer(
    request: Request, customer_id: str, signed_in: ConsoleStaff, session: ReadSession, keys: Keys, now: Now
) -> Response:
    # No stored id is longer or holds a NUL (which PostgreSQL text cannot even compare against).
    usable = len(customer_id) <= CUSTOMER_ID_MAX_LENGTH and "\x00" not in customer_id
    customer = customers.get_customer(session, customer_id) if usable else None
    if customer is not None and signed_in.role == "agent" and not _in_agents_queues(session, customer.id, signed_in):
        customer = None  # an agent reaches the customers of their queues' cases and calls, no other
    if customer is None:
        return not_found_page(request, signed_in, f"There is no customer {customer_id[:CUSTOMER_ID_MAX_LENGTH]!r}.")
    their_followups, _ = followups.list_followups(
        session, customer_id=customer.id, status=None, limit=PAGE_SIZE, offset=0
    )
    messages, _ = dispatch.list_outbox(session, customer_id=customer.id, limit=PAGE_SIZE, offset=0, keys=keys)
    their_cases, _ = cases.list_cases(
        session,
        status=None,
        priority=None,
        customer_id=customer.id,
        limit=PAGE_SIZE,
        offset=0,
        actor=staff_actor(signed_in),
    )
    return render_page(
        request,
        "customer.html",
        signed_in,
        {
            "title": f"Customer {customer.external_id}",
            "nav": "",
            "customer": customers.describe_customer(session, customer, keys=keys, now=now),
            "followups": their_followups,
            "messages": messages,
            "cases": their_cases,
            "rewards": rewards.describe_rewards(session, customer.id, subject_id=customer.external_id),
        },
    )


def _in_agents_queues(session: ReadSession, customer_id: int, signed_in: auth.SignedInStaff) -> bool:
    queues = signed_in.queues
    return bool(queues) and (
        cases.customer_in_queues(session, customer_id, queues)
        or calls_domain.customer_in_queues(session, customer_id, queues)
    )


@router.get("/{unknown:path}", response_class=HTMLResponse)
def unknown_page(request: Request, unknown: str, signed_in: MaybeStaff) -> Response:
    """Any other console path: `/console/` leads to the overview, the rest is a 404 page."""
    if unknown == "":
        return RedirectResponse("/console", status_code=303)
    return not_found_page(request, signed_in, "There is no such page in the console.")


def install_console(app: FastAPI) -> None:
    """Mount the console: its static files, its pages, and the redirect to sign in.

    Static files are mounted before the pages, whose last route answers every other console path.
    The password checker is built here, at start-up, so its dummy hash costs no sign-in anything.
    """
    staff.password_checker()
    app.mount("/console/static", StaticFiles(directory=str(HERE / "static")), name="console-static")
    # Before `router`, whose last route answers every other console path.
    app.include_router(strategies.router)
    app.include_router(segments.router)
    app.include_router(interviews.router)
    app.include_router(channels.router)
    app.include_router(webhooks.router)
    app.include_router(audit.router)
    app.include_router(privacy.router)
    app.include_router(notices.router)
    app.include_router(case_pages.router)
    app.include_router(calls.router)
    app.include_router(two_factor.router)
    app.include_router(router)

    @app.exception_handler(LoginRequired)
    async def _login_required(_request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(auth.login_url(exc.next_path), status_code=303)

    @app.exception_handler(auth.RoleRefused)
    async def _role_refused(request: Request, exc: auth.RoleRefused) -> Response:
        if exc.access == "hide":
            return not_found_page(request, exc.signed_in, "There is no such page in the console.")
        return problem_page(
            request,
            exc.signed_in,
            title="Not allowed",
            text=f"Your role ({exc.signed_in.role}) does not open {exc.what}. An admin can change your role.",
            status_code=403,
        )

    @app.exception_handler(auth.TwoFactorRequired)
    async def _two_factor_required(_request: Request, _exc: auth.TwoFactorRequired) -> Response:
        return RedirectResponse(auth.TWO_FACTOR_PAGE, status_code=303)
