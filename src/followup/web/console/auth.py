"""Console sign-in: a signed session cookie and the CSRF tokens of its forms.

The cookie holds `staff id . expiry . nonce`, signed with HMAC-SHA256 under a key derived from the
master key, so nothing is stored server-side and rotating the master key signs everyone out. The
account is looked up again on every request, so disabling a staff member ends their session at once.
CSRF tokens are an HMAC of the session's nonce (or, before sign-in, of a nonce in a short-lived
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

from followup.kernel.http import ReadSession, runtime_of
from followup.staff import service as staff

SESSION_COOKIE = "followup_console"
LOGIN_COOKIE = "followup_console_login"
SESSION_LIFETIME = dt.timedelta(hours=8)
LOGIN_FORM_LIFETIME = dt.timedelta(minutes=30)
COOKIE_PATH = "/console"
_KEY_LABEL = "console-session/v1"


class LoginRequired(Exception):
    """Raised by the `ConsoleStaff` dependency; the console turns it into a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


@dataclass(frozen=True)
class SignedInStaff:
    id: int
    email: str
    role: str
    csrf: str


def _key(request: Request) -> bytes:
    key: bytes = runtime_of(request).keys.derive_key(_KEY_LABEL)
    return key


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


def start_session(request: Request, response: Response, staff_id: int) -> None:
    expires = int((_now(request) + SESSION_LIFETIME).timestamp())
    payload = f"{staff_id}.{expires}.{secrets.token_urlsafe(16)}"
    value = f"{payload}.{_mac(_key(request), 'session|' + payload)}"
    _cookie(response, request, SESSION_COOKIE, value, max_age=int(SESSION_LIFETIME.total_seconds()))
    response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)


def _read_session(request: Request) -> tuple[int, str] | None:
    """(staff id, nonce) of a cookie that is authentic and not expired."""
    parts = request.cookies.get(SESSION_COOKIE, "").split(".")
    if len(parts) != 4 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    payload = ".".join(parts[:3])
    if not hmac.compare_digest(parts[3], _mac(_key(request), "session|" + payload)):
        return None
    if int(parts[1]) <= _now(request).timestamp():
        return None
    return int(parts[0]), parts[2]


def _signed_in(request: Request, session: ReadSession) -> SignedInStaff:
    found = _read_session(request)
    member = staff.get_active_staff(session, found[0]) if found else None
    if found is None or member is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return SignedInStaff(id=member.id, email=member.email, role=member.role, csrf=_csrf_for(_key(request), found[1]))


ConsoleStaff = Annotated[SignedInStaff, Depends(_signed_in)]


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
