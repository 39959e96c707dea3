"""Console sign-in: a server-side session behind a random cookie, and the CSRF tokens of its forms.

The cookie holds a random 256-bit token; the database keeps only its SHA-256 beside the staff id
and the expiry (`staff.start_console_session`). Every request looks the session up again, so
signing out, a password change and disabling the account end it on every server at once.
CSRF tokens are an HMAC of the session token (or, before sign-in, of a nonce in a short-lived
cookie): a form from another site cannot know them, and SameSite=Strict is the second wall.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request, Response

from followup.config import Settings
from followup.kernel.http import ReadSession, runtime_of
from followup.staff import roles
from followup.staff import service as staff

SESSION_COOKIE = "followup_console"
LOGIN_COOKIE = "followup_console_login"
SESSION_LIFETIME = dt.timedelta(hours=8)
LOGIN_FORM_LIFETIME = dt.timedelta(minutes=30)
COOKIE_PATH = "/console"
_KEY_LABEL = "console-session/v1"
_THROTTLE_LABEL = "console-sign-in/v1"


class LoginRequired(Exception):
    """Raised by the `ConsoleStaff` dependency; the console turns it into a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class RoleRefused(Exception):
    """Raised by the `ConsoleStaff` dependency when the member's role may not open the page
    (`staff.roles`); the console answers with a 404 or 403 page."""

    def __init__(self, signed_in: SignedInStaff, access: str, what: str) -> None:
        super().__init__(access)
        self.signed_in = signed_in
        self.access = access
        self.what = what


class TwoFactorRequired(Exception):
    """Raised by the `ConsoleStaff` dependency for an admin who has not set up two-factor sign-in
    yet; the console turns it into a redirect to the page that sets it up."""


@dataclass(frozen=True)
class SignedInStaff:
    id: int
    email: str
    role: str
    csrf: str
    two_factor: bool = False
    queues: tuple[str, ...] = ()


def _key(request: Request) -> bytes:
    key: bytes = runtime_of(request).keys.derive_key(_KEY_LABEL)
    return key


def throttle_secret(request: Request) -> bytes:
    """The key of the HMACs that name accounts and addresses in the sign-in failure counts."""
    key: bytes = runtime_of(request).keys.derive_key(_THROTTLE_LABEL)
    return key


def sign_in_limits(settings: Settings) -> staff.SignInLimits:
    return staff.SignInLimits(
        failures_per_account=settings.console_sign_in_account_failures,
        failures_per_address=settings.console_sign_in_address_failures,
        first_lock=dt.timedelta(seconds=settings.console_sign_in_first_lock_seconds),
        longest_lock=dt.timedelta(seconds=settings.console_sign_in_longest_lock_seconds),
    )


def client_address(request: Request) -> str:
    """The address the request came from (behind a proxy, uvicorn's --proxy-headers puts the
    forwarded client here when the proxy is trusted)."""
    return request.client.host if request.client else "unknown"


def _now(request: Request) -> dt.datetime:
    now: dt.datetime = runtime_of(request).clock.now()
    return now


def _mac(key: bytes, text: str) -> str:
    digest = hmac.new(key, text.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _csrf_for(key: bytes, nonce: str) -> str:
    return _mac(key, f"csrf|{nonce}")


def _cookie(response: Response, request: Request, name: str, value: str, *, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    _cookie(response, request, SESSION_COOKIE, token, max_age=int(SESSION_LIFETIME.total_seconds()))
    response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)


def session_token(request: Request) -> str:
    return request.cookies.get(SESSION_COOKIE, "")


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)


def current_staff(request: Request, session: ReadSession) -> SignedInStaff | None:
    """The signed-in staff member, or None: for pages that also answer visitors (the 404 page)."""
    token = session_token(request)
    member = staff.get_console_session_staff(session, token, now=_now(request))
    if member is None:
        return None
    return SignedInStaff(
        id=member.id,
        email=member.email,
        role=member.role,
        csrf=_csrf_for(_key(request), token),
        two_factor=member.totp_enabled_at is not None,
        queues=tuple(member.queues.split()),
    )


# What an admin without two-factor may still open: the page that sets it up, and signing out.
TWO_FACTOR_PAGE = "/console/two-factor"
_BEFORE_TWO_FACTOR = frozenset({TWO_FACTOR_PAGE, "/console/logout", "/console/logout-everywhere"})


def _signed_in(request: Request, session: ReadSession) -> SignedInStaff:
    signed_in = current_staff(request, session)
    if signed_in is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    settings = runtime_of(request).settings
    if (
        settings.console_admin_two_factor
        and signed_in.role == "admin"
        and not signed_in.two_factor
        and request.url.path not in _BEFORE_TWO_FACTOR
    ):
        raise TwoFactorRequired
    # Every page's access is decided here, from the route's template, by the table the API asks too.
    template = getattr(request.scope.get("route"), "path", request.url.path)
    relative = template.removeprefix(COOKIE_PATH)
    access = roles.access(signed_in.role, request.method, relative)
    if access != "allow":
        raise RoleRefused(signed_in, access, roles.what(relative))
    return signed_in


ConsoleStaff = Annotated[SignedInStaff, Depends(_signed_in)]
MaybeStaff = Annotated[SignedInStaff | None, Depends(current_staff)]


def console_password_checker() -> staff.PasswordChecker:
    """The sign-in's password checker (a dependency, so a test can hand it a recording hasher)."""
    return staff.password_checker()


Passwords = Annotated[staff.PasswordChecker, Depends(console_password_checker)]


def check_csrf(signed_in: SignedInStaff, token: str) -> bool:
    return hmac.compare_digest(token.encode(), signed_in.csrf.encode())


def login_nonce(request: Request) -> str:
    """The nonce the login form's CSRF token is bound to: kept from the cookie, or a new one."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(16)


def login_form_token(request: Request, nonce: str) -> str:
    return _csrf_for(_key(request), "login|" + nonce)


def set_login_cookie(request: Request, response: Response, nonce: str) -> None:
    _cookie(response, request, LOGIN_COOKIE, nonce, max_age=int(LOGIN_FORM_LIFETIME.total_seconds()))


def check_login_token(request: Request, token: str) -> bool:
    nonce = request.cookies.get(LOGIN_COOKIE)
    return bool(nonce) and hmac.compare_digest(token.encode(), _csrf_for(_key(request), "login|" + str(nonce)).encode())


def safe_next(target: str | None) -> str:
    """Only a console path may be a redirect target after sign-in: never another site."""
    if target and target.startswith(COOKIE_PATH) and not target.startswith("//") and "\\" not in target:
        return target
    return COOKIE_PATH


def login_url(next_path: str) -> str:
    return f"{COOKIE_PATH}/login?next={quote(next_path, safe='/')}"
