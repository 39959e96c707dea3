"""The console in a real browser (Debian's headless Chromium): sign in, find the message in the
outbox and see that its links do not act, answer through the link of the email the customer really
received, and see the answer among the responses; then the console's error pages.

Screenshots of each step go to docs/screenshots/, for the README and for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import json
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
DAY = 24 * 60 * 60
HALF_DAY = DAY // 2


def sign_in(page: object, url: str, *, email: str, password: str, next_path: str) -> list[str]:
    """Sign in through the console's form, landing on `next_path`; returns the list the page's
    script errors and console errors are collected in (a test ends asserting it is empty)."""
    from playwright.sync_api import Page  # imported here: only when Chromium is there

    assert isinstance(page, Page)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{url}/console/login?next={next_path}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    return errors


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


def test_sign_in_read_the_message_with_inert_links_and_see_the_customers_answer(
    browser_page: object,
    staff_password: str,
    api: TestClient,
    *,
    runtime: Runtime,
    live_server: LiveServer,
    smtp: SmtpSink,
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

    # The overview has the numbers and the chart drawn by our script under the strict CSP, on a
    # scale of the five days it covers (not years)
    page.get_by_role("link", name="Overview").click()
    expect(page.locator(".tile").filter(has_text="Events")).to_contain_text("5")
    expect(page.locator(".tile").filter(has_text="Response rate")).to_contain_text("80.0%")
    expect(page.locator("#daily-chart canvas")).to_have_count(1)
    first_day = int(dt.datetime(2026, 11, 23, tzinfo=dt.UTC).timestamp())
    assert json.loads(page.locator("#daily-chart").get_attribute("data-x-range") or "") == [
        first_day - HALF_DAY,
        first_day + 4 * DAY + HALF_DAY,
    ]
    expect(page.locator(".chart-note")).to_contain_text("Today (2026-11-27) has no response rate in the chart")
    page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)

    # When staff opens the newest message, it reads as the email the customer got, on a phone,
    # but none of its links acts: no survey or unsubscribe address is in the page at all
    page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    page.get_by_role("link", name="Outbox").click()
    page.locator(".messages li a").first.click()
    expect(page.locator(".email")).to_contain_text("您有多大可能向朋友推荐我们？")
    expect(page.locator(".envelope")).to_contain_text("c***@example.com")
    expect(page.locator(".inert-note")).to_contain_text("acting on one would answer as the customer")
    expect(page.locator(".rating-links .inert")).to_have_count(11)
    expect(page.locator(".email a")).to_have_count(0)
    customers_mail = smtp.wait_for(5)[-1]
    token_path = survey_path(customers_mail)
    assert token_path.removeprefix("/s/") not in page.content()
    assert not re.search(r'href="[^"]*/(s|u)/', page.content())
    page.locator(".rating-links .inert", has_text=re.compile(r"^9$")).click()
    expect(page).to_have_url(re.compile(r"/console/outbox/\d+$"))  # clicking a score goes nowhere
    page.screenshot(path=str(SCREENSHOTS / "message.png"), full_page=True)

    # And the customer answers 9 through the link of the email they really received
    page.goto(f"{live_server.url}{token_path}?score=9")
    expect(page.locator('input[name="nps"][value="9"]')).to_be_checked()
    page.screenshot(path=str(SCREENSHOTS / "survey.png"), full_page=True)
    page.get_by_role("button", name="提交").click()
    expect(page.locator(".notice")).to_be_visible()
    page.locator("textarea[name=comment]").fill("到账很快，界面清楚。")
    page.get_by_role("button", name="提交").click()
    expect(page.locator("h1")).to_have_text("感谢您的反馈")
    Worker(runtime).run_until_idle()  # counts the answer for the customer, after its own transaction

    # Then the answer shows among the responses, newest first
    page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]
    page.goto(f"{live_server.url}/console/responses")
    newest = page.locator("#responses tbody tr").first
    expect(newest).to_contain_text("c5")
    expect(newest.locator("td.num").first).to_have_text("9")
    expect(newest).to_contain_text("到账很快，界面清楚。")
    expect(page.locator("#responses tbody tr")).to_have_count(5)
    page.screenshot(path=str(SCREENSHOTS / "responses.png"), full_page=True)

    # And the customer's page shows what they have done and how they answered
    page.goto(f"{live_server.url}/console/customers/c5")
    activity = page.locator("section.card", has_text="Activity")
    expect(activity).to_contain_text("1 events on 1 days")
    expect(activity).to_contain_text("transfer.succeeded")
    expect(activity).to_contain_text("last NPS 9")
    expect(activity).to_contain_text("email=1")
    page.screenshot(path=str(SCREENSHOTS / "customer.png"), full_page=True)

    # And no page broke the CSP or threw: everything ran from our own static files
    assert failed == []
    assert problems == []
    assert api.get("/api/v1/customers/c5/rewards").json()["balance"] == 10

    # The console's mistakes are pages too: an unknown status filter lists the valid ones…
    answer = page.goto(f"{live_server.url}/console/followups?status=bogus")
    assert answer is not None
    assert answer.status == 400
    expect(page.locator(".problem .choices a")).to_have_count(7)
    page.screenshot(path=str(SCREENSHOTS / "unknown-status.png"))
    # …an unknown path is a 404 page in the console's frame…
    answer = page.goto(f"{live_server.url}/console/outbox/99999999999999999999")
    assert answer is not None
    assert answer.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    page.screenshot(path=str(SCREENSHOTS / "not-found.png"))
    # …and after signing out, five wrong passwords lock the sign-in with a page saying until when
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{live_server.url}/console/login")
    for _ in range(6):
        page.get_by_label("Email").fill("ops@wallet.example")
        page.get_by_label("Password").fill("not-the-password")
        page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".error")).to_contain_text("Too many failed sign-ins. Try again after")
    page.screenshot(path=str(SCREENSHOTS / "sign-in-throttled.png"))
    # The browser reports each 4xx page as a failed load; nothing else (no CSP refusal, no script error)
    assert [p for p in problems if not p.startswith("Failed to load resource: the server responded")] == []


def test_one_day_of_data_is_charted_on_a_scale_of_one_day(
    browser_page: object, api: TestClient, runtime: Runtime, live_server: LiveServer, clock: ManualClock
) -> None:
    from playwright.sync_api import Page, expect  # the fixture skipped without Chromium

    page = browser_page
    assert isinstance(page, Page)
    # Given one customer asked yesterday, and nothing since
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body(delay="PT0S")).status_code == 201
    customer = {"locale": "en", "time_zone": "Asia/Shanghai", "consents": {"feedback": {"inapp": True}}}
    assert api.put("/api/v1/customers/c1", json=customer).status_code == 200
    assert api.post("/api/v1/events", json={"events": [transfer("e1", "c1")]}).json()["accepted"] == 1
    Worker(runtime).run_until_idle()
    clock.advance(dt.timedelta(days=1))
    with runtime.session() as session:
        _, password = staff.create_staff(session, email="ops@wallet.example", role="admin", now=clock.now())

    # When staff opens the overview
    page.goto(f"{live_server.url}/console/login")
    page.get_by_label("Email").fill("ops@wallet.example")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#daily-chart canvas")).to_have_count(1)

    # Then the chart spans that one day, not years around it
    day = int(dt.datetime(2026, 11, 23, tzinfo=dt.UTC).timestamp())
    assert json.loads(page.locator("#daily-chart").get_attribute("data-x-range") or "") == [
        day - HALF_DAY,
        day + HALF_DAY,
    ]
    page.screenshot(path=str(SCREENSHOTS / "overview-one-day.png"), full_page=True)
