"""Two-factor set-up in a real browser (Debian's headless Chromium): an admin signs in with a
password, is sent to set up an authenticator app, types the code it shows, and reaches the
overview; the next sign-in asks for a code.

Screenshots go to docs/screenshots/ (two-factor.png), for the README and for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pyotp
import pytest

from followup.config import Settings
from followup.kernel.time import ManualClock
from followup.runtime import build_runtime
from tests.conftest import LiveServer, wipe
from tests.e2e.test_console_browser import SCREENSHOTS, browser_page, sign_in  # noqa: F401 - the fixture
from tests.test_console import make_staff


@pytest.fixture
def console(settings: Settings, clock: ManualClock) -> Iterator[tuple[str, str, ManualClock]]:
    runtime = build_runtime(settings.model_copy(update={"console_admin_two_factor": True}), clock=clock)
    live = LiveServer(runtime)
    try:
        password = make_staff(runtime)
        live.start()
        yield live.url, password, clock
    finally:
        live.stop()
        runtime.close()
        wipe(runtime.engine)


def test_an_admin_sets_up_an_authenticator_app_and_signs_in_with_its_code(
    browser_page: object,  # noqa: F811 - the fixture imported above
    console: tuple[str, str, ManualClock],
) -> None:
    from playwright.sync_api import Page, expect

    url, password, clock = console
    page = browser_page
    assert isinstance(page, Page)
    errors = sign_in(page, url, email="ops@wallet.example", password=password, next_path="/console/cases")

    # Sent to set up two-factor first, with the key to type into the app
    expect(page).to_have_url(re.compile(r"/console/two-factor$"))
    expect(page.get_by_role("status")).to_contain_text("Admins sign in with a second factor")
    secret = (page.get_by_test_id("totp-secret").text_content() or "").replace(" ", "")
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    page.screenshot(path=str(SCREENSHOTS / "two-factor.png"), full_page=True)
    totp = pyotp.TOTP(secret)
    page.get_by_label("Code").fill("000000")
    page.get_by_role("button", name="Turn on two-factor").click()
    expect(page.get_by_role("alert")).to_contain_text("not the one the app shows now")
    page.get_by_label("Code").fill(totp.at(clock.now()))
    page.get_by_role("button", name="Turn on two-factor").click()
    expect(page).to_have_url(re.compile(r"/console\?two-factor=on$"))
    page.goto(f"{url}/console/cases")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Cases")

    # Signed out, the next sign-in needs the code the app shows then
    page.get_by_role("button", name="Sign out", exact=True).click()
    clock.advance(dt.timedelta(minutes=2))
    page.goto(f"{url}/console/login")
    page.get_by_label("Email").fill("ops@wallet.example")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("a wrong code from the authenticator app")
    page.get_by_label("Email").fill("ops@wallet.example")
    page.get_by_label("Password").fill(password)
    page.get_by_label("Code").fill(totp.at(clock.now()))
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/console$"))
    # The wrong code and the sign-in without one were answered 422 and 401, as they should be
    assert [error for error in errors if "Failed to load resource" not in error] == []
