"""An interview in a real browser (Debian's headless Chromium): the customer picks a time on the
survey page, on a phone-sized screen, and staff finds the booking on the console's Interviews page.

Screenshots go to docs/screenshots/ (interview-booking, interview-booked, interviews).
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.staff import service as staff
from tests.conftest import LiveServer, SmtpSink
from tests.e2e.test_console_browser import PHONE, SCREENSHOTS, browser_page  # noqa: F401 - the fixture, shared
from tests.test_interviews import TEN, VIDEO, invite


def test_a_customer_books_an_interview_and_staff_sees_it(
    browser_page: object,  # noqa: F811 - the fixture imported above
    api: TestClient,
    runtime: Runtime,
    *,
    smtp: SmtpSink,
    live_server: LiveServer,
    clock: ManualClock,
) -> None:
    from playwright.sync_api import Page, expect  # the fixture skipped without Chromium

    page = browser_page
    assert isinstance(page, Page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # Given a customer who rated through their email's link and now sees the optional questions
    path = invite(api, runtime, smtp, clock, {"li": "en"})["li"]

    # When they open the page on a phone and pick Thursday 10:00
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}{path}")
    expect(page.get_by_text("Thursday, December 10, 2026")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "interview-booking.png"), full_page=True)
    page.locator(f'input[name="talk"][value="{TEN.isoformat()}"]').check()
    page.get_by_role("button", name="Submit").click()

    # Then the page confirms the time, the place and the invitation on its way
    expect(page.get_by_text("Your interview is booked")).to_be_visible()
    expect(page.get_by_text(VIDEO)).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "interview-booked.png"), full_page=True)

    # When staff signs in to the console and opens Interviews
    with runtime.session() as session:
        _, password = staff.create_staff(session, email="ops@wallet.example", role="agent", now=clock.now())
    page.set_viewport_size({"width": 1280, "height": 860})
    page.goto(f"{live_server.url}/console/interviews")
    page.get_by_label("Email").fill("ops@wallet.example")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()

    # Then the booking is there, on the slot's own clock and in UTC, the email masked
    expect(page.get_by_role("heading", name="Interviews")).to_be_visible()
    row = page.locator("tbody tr").first
    expect(row).to_contain_text("2026-12-10 10:00 UTC+08:00")
    expect(row).to_contain_text("l***@example.com")
    expect(row).to_contain_text(VIDEO)
    assert "li@example.com" not in page.content()
    page.screenshot(path=str(SCREENSHOTS / "interviews.png"), full_page=True)
