"""The console in a real browser (Debian's headless Chromium): sign in, find the message in the
outbox, open its survey link, answer as the customer, and see the answer among the responses.

Screenshots of each step go to docs/screenshots/, for the README and for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.staff import service as staff
from followup.worker import Worker
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.conftest import LiveServer, SmtpSink
from tests.helpers import survey_path

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
# Scores of the customers who answered on the days before the browser's customer (c5) is asked.
EARLIER_SCORES = {"c1": 10, "c2": 8, "c3": 4, "c4": 9}


@pytest.fixture
def browser_page() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip(
            "the browser test needs Chromium at /usr/bin/chromium: install Debian's chromium "
            "(`apt-get install -y chromium`); .ci/run does this on CI"
        )
    from playwright.sync_api import sync_playwright  # imported here: only when Chromium is there

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=DESKTOP, locale="en-US")  # type: ignore[arg-type]
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        context.close()
        browser.close()


@pytest.fixture
def staff_password(api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock) -> str:
    """Five customers asked on five days, the first four answered through their email's link; and
    a staff account, whose password is returned."""
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body(delay="PT0S")).status_code == 201
    worker = Worker(runtime)
    for day, customer_id in enumerate(["c1", "c2", "c3", "c4", "c5"]):
        if day:
            clock.advance(dt.timedelta(days=1))
        customer = {
            "email": f"{customer_id}.wallet@example.com",
            "phone": f"+86138123412{day:02d}",
            "locale": "zh-CN" if day % 2 == 0 else "en",
            "time_zone": "Asia/Shanghai",
            "consents": {"feedback": {"email": True, "inapp": True}},
        }
        assert api.put(f"/api/v1/customers/{customer_id}", json=customer).status_code == 200
        event = transfer(f"e{day}", customer_id, occurred_at=clock.now())
        assert api.post("/api/v1/events", json={"events": [event]}).json()["accepted"] == 1
        worker.run_until_idle()
        emails = smtp.wait_for(day + 1)
        assert len(emails) == day + 1
        if customer_id in EARLIER_SCORES:
            answer = api.post(
                survey_path(emails[-1]),
                data={"step": "rating", "nps": str(EARLIER_SCORES[customer_id])},
                follow_redirects=False,
            )
            assert answer.status_code == 303
    with runtime.session() as session:
        _, password = staff.create_staff(session, email="ops@wallet.example", role="admin", now=clock.now())
    return password


def test_sign_in_open_the_message_answer_as_the_customer_and_see_the_response(
    browser_page: object, staff_password: str, api: TestClient, live_server: LiveServer
) -> None:
    from playwright.sync_api import ConsoleMessage, Page, expect  # the fixture skipped without Chromium

    page = browser_page
    assert isinstance(page, Page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # The browser asks for /favicon.ico on its own when a page (the customer's survey page)
        # names no icon; that 404 is not the page's doing.
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            problems.append(f"{message.text} at {message.location.get('url')}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    # Given a week of follow-ups, the last one not answered yet, and a staff account (fixtures)
    # When staff opens the console, it asks them to sign in first
    page.goto(f"{live_server.url}/console/outbox")
    expect(page).to_have_url(re.compile(r"/console/login\?next=/console/outbox$"))
    page.screenshot(path=str(SCREENSHOTS / "login.png"))
    page.get_by_label("Email").fill("ops@wallet.example")
    page.get_by_label("Password").fill(staff_password)
    page.get_by_role("button", name="Sign in").click()

    # Then the outbox lists the five messages, the newest first, with masked addresses only
    expect(page).to_have_url(f"{live_server.url}/console/outbox")
    rows = page.locator(".messages li")
    expect(rows).to_have_count(5)
    expect(rows.first).to_contain_text("邀请您评价：支付体验回访")
    expect(rows.first).to_contain_text("c***@example.com")
    assert "c5.wallet@example.com" not in page.content()
    page.screenshot(path=str(SCREENSHOTS / "outbox.png"), full_page=True)

    # The overview has the numbers and the chart drawn by our script under the strict CSP
    page.get_by_role("link", name="Overview").click()
    expect(page.locator(".tile").filter(has_text="Events")).to_contain_text("5")
    expect(page.locator(".tile").filter(has_text="Response rate")).to_contain_text("80.0%")
    expect(page.locator("#daily-chart canvas")).to_have_count(1)
    page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)

    # When staff opens the newest message, it reads as the email the customer got, on a phone
    page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    page.get_by_role("link", name="Outbox").click()
    page.locator(".messages li a").first.click()
    expect(page.locator(".email")).to_contain_text("您有多大可能向朋友推荐我们？")
    expect(page.locator(".envelope")).to_contain_text("c***@example.com")
    page.screenshot(path=str(SCREENSHOTS / "message.png"), full_page=True)

    # And clicks 9 in it: the customer's survey page opens with 9 chosen
    page.locator(".rating-links a", has_text=re.compile(r"^9$")).click()
    expect(page).to_have_url(re.compile(r"/s/[A-Za-z0-9_-]{43}\?score=9$"))
    expect(page.locator('input[name="nps"][value="9"]')).to_be_checked()
    page.screenshot(path=str(SCREENSHOTS / "survey.png"), full_page=True)
    page.get_by_role("button", name="提交").click()
    expect(page.locator(".notice")).to_be_visible()
    page.locator("textarea[name=comment]").fill("到账很快，界面清楚。")
    page.get_by_role("button", name="提交").click()
    expect(page.locator("h1")).to_have_text("感谢您的反馈")

    # Then the answer shows among the responses, newest first
    page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]
    page.goto(f"{live_server.url}/console/responses")
    newest = page.locator("#responses tbody tr").first
    expect(newest).to_contain_text("c5")
    expect(newest.locator("td.num").first).to_have_text("9")
    expect(newest).to_contain_text("到账很快，界面清楚。")
    expect(page.locator("#responses tbody tr")).to_have_count(5)
    page.screenshot(path=str(SCREENSHOTS / "responses.png"), full_page=True)

    # And no page broke the CSP or threw: everything ran from our own static files
    assert failed == []
    assert problems == []
    assert api.get("/api/v1/customers/c5/rewards").json()["balance"] == 10
