"""The console's two-factor page: a staff member sets up a TOTP app (any authenticator app
reads the secret or the otpauth:// link), and confirms it with a code. Admins must, before the
console shows them anything else (FOLLOWUP_CONSOLE_ADMIN_TWO_FACTOR)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from followup.kernel.http import Keys, Now, WriteSession
from followup.staff import service as staff
from followup.web import staff_admin
from followup.web.console import auth
from followup.web.console.auth import ConsoleStaff
from followup.web.console.forms import expired_page, staff_actor
from followup.web.console.pages import render_page

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/two-factor", response_class=HTMLResponse)
def two_factor_page(request: Request, signed_in: ConsoleStaff, session: WriteSession, keys: Keys) -> Response:
    return _page(request, signed_in, session, keys, error=None)


def _page(
    request: Request, signed_in: auth.SignedInStaff, session: WriteSession, keys: Keys, *, error: str | None
) -> Response:
    member = staff.access_staff(session, signed_in.id)
    setup = None if member.totp_enabled_at is not None else staff.start_two_factor(session, member, keys=keys)
    context = {
        "title": "Two-factor sign-in",
        "nav": "",
        "enabled_at": member.totp_enabled_at,
        "setup": setup,
        "grouped": " ".join(setup.secret[i : i + 4] for i in range(0, len(setup.secret), 4)) if setup else "",
        "error": error,
        "required": signed_in.role == "admin",
    }
    return render_page(request, "two_factor.html", signed_in, context, status_code=422 if error else 200)


@router.post("/two-factor", response_class=HTMLResponse)
def confirm_two_factor(
    request: Request,
    signed_in: ConsoleStaff,
    session: WriteSession,
    keys: Keys,
    now: Now,
    code: Annotated[str, Form(max_length=20)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    if not auth.check_csrf(signed_in, csrf):
        return expired_page(request, signed_in)
    member = staff.access_staff(session, signed_in.id)
    if not staff_admin.confirm_two_factor(session, member, code, actor=staff_actor(signed_in), keys=keys, now=now):
        error = "That code is not the one the app shows now. Check the phone's clock, and type the newest code."
        return _page(request, signed_in, session, keys, error=error)
    return RedirectResponse("/console?two-factor=on", status_code=303)
