"""Two-factor console sign-in (TOTP, RFC 6238): an admin must set it up before anything else; once
on, each sign-in needs the app's current code, a code works once, and a wrong code counts as a
wrong password; an admin turns it off for a member who lost their phone.

Codes are computed with pyotp from the secret the page shows, as an authenticator app would.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pyotp
import pytest
from fastapi.testclient import TestClient

from followup.app import create_app
from followup.config import Settings
from followup.kernel.actors import SYSTEM
from followup.kernel.time import ManualClock
from followup.runtime import Runtime, build_runtime
from followup.staff import service as staff
from followup.web import staff_admin
from tests.conftest import wipe
from tests.test_console import csrf_of, make_staff
from tests.test_console_sign_in import EMAIL, attempt


@pytest.fixture
def strict(settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    """The engine with its default: admins must use two-factor."""
    runtime = build_runtime(settings.model_copy(update={"console_admin_two_factor": True}), clock=clock)
    yield runtime
    wipe(runtime.engine)
    runtime.close()


def _browser(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime), follow_redirects=False)


def _sign_in(client: TestClient, password: str, code: str = "") -> int:
    form = client.get("/console/login")
    data = {"email": EMAIL, "password": password, "code": code, "csrf": csrf_of(form.text)}
    return client.post("/console/login", data=data).status_code


def _secret_shown(client: TestClient) -> str:
    page = client.get("/console/two-factor")
    assert page.status_code == 200, page.text
    found = re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', page.text)
    assert found, page.text
    return found.group(1).replace(" ", "")


def _turn_on(client: TestClient, clock: ManualClock) -> pyotp.TOTP:
    totp = pyotp.TOTP(_secret_shown(client))
    page = client.get("/console/two-factor")
    done = client.post("/console/two-factor", data={"code": totp.at(clock.now()), "csrf": csrf_of(page.text)})
    assert (done.status_code, done.headers["location"]) == (303, "/console?two-factor=on")
    return totp


def test_an_admin_sets_up_two_factor_before_anything_else_then_every_sign_in_needs_a_fresh_code(
    strict: Runtime, clock: ManualClock
) -> None:
    password = make_staff(strict)
    browser = _browser(strict)
    assert _sign_in(browser, password) == 303
    # Every page but the set-up one sends the admin there
    for path in ("/console", "/console/cases", "/console/webhooks"):
        answer = browser.get(path)
        assert (answer.status_code, answer.headers["location"]) == (303, "/console/two-factor"), path
    # A wrong code does not turn it on
    page = browser.get("/console/two-factor")
    wrong = browser.post("/console/two-factor", data={"code": "000000", "csrf": csrf_of(page.text)})
    assert wrong.status_code == 422
    assert "not the one the app shows now" in wrong.text
    totp = _turn_on(browser, clock)
    assert browser.get("/console").status_code == 200
    # The secret is kept wrapped, never in clear
    with strict.engine.connect() as conn:
        stored = repr(conn.exec_driver_sql("SELECT * FROM staff").fetchall())
    assert totp.secret not in stored

    # Next time: the password alone is refused, and so is a wrong code, with one sentence for all
    clock.advance(dt.timedelta(minutes=5))
    later = _browser(strict)
    assert _sign_in(later, password) == 401
    assert _sign_in(later, password, "123456" if totp.at(clock.now()) != "123456" else "654321") == 401
    assert _sign_in(later, password, totp.at(clock.now())) == 303
    assert later.get("/console").status_code == 200
    # The same code a second time does not sign in (a code works once)
    assert _sign_in(_browser(strict), password, totp.at(clock.now())) == 401
    # The code of the step before is still taken once the clock moved on (one step of drift)
    clock.advance(dt.timedelta(seconds=30))
    assert _sign_in(_browser(strict), password, totp.at(clock.now())) == 303


def test_wrong_codes_count_toward_the_accounts_lock(strict: Runtime, clock: ManualClock) -> None:
    password = make_staff(strict)
    browser = _browser(strict)
    _sign_in(browser, password)
    totp = _turn_on(browser, clock)
    clock.advance(dt.timedelta(minutes=5))
    for _ in range(5):
        assert _sign_in(_browser(strict), password, "000001") == 401
    # The account is locked now: even the right password and code wait
    assert _sign_in(_browser(strict), password, totp.at(clock.now())) == 429


def test_two_factor_is_optional_for_other_roles_and_a_lost_phone_is_reset_from_the_cli(
    strict: Runtime, clock: ManualClock
) -> None:
    password = make_staff(strict, role="analyst")
    browser = _browser(strict)
    assert _sign_in(browser, password) == 303
    assert browser.get("/console").status_code == 200  # an analyst is not sent to set it up
    _turn_on(browser, clock)
    clock.advance(dt.timedelta(minutes=5))
    assert _sign_in(_browser(strict), password) == 401

    # What `followup staff reset-two-factor` does (test_staff_management runs the command itself)
    with strict.session() as session:
        member = staff.access_staff_by_email(session, EMAIL)
        staff_admin.reset_two_factor(session, member, actor=SYSTEM, now=clock.now())
    assert _sign_in(_browser(strict), password) == 303
    assert browser.get("/console").status_code == 303  # the reset ended the old sessions
    with strict.read_session() as session:
        member = staff.access_staff_by_email(session, EMAIL)
        assert (member.totp_wrapped, member.totp_enabled_at) == (None, None)


def test_signing_in_without_two_factor_still_works_when_the_setting_is_off(runtime: Runtime) -> None:
    # The test settings turn the admin requirement off (FOLLOWUP_CONSOLE_ADMIN_TWO_FACTOR=false)
    password = make_staff(runtime)
    browser = _browser(runtime)
    assert attempt(browser, EMAIL, password).status_code == 303
    assert browser.get("/console").status_code == 200
