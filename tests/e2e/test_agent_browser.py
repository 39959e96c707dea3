"""An agent's shift in a real browser (Debian's headless Chromium): the next call from the queue,
the number shown after a reason, the customer's answers recorded from the script; then the
detractor case those answers opened, answered to the customer and resolved.

Screenshots go to docs/screenshots/call.png and case.png, for the README and for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import re

from fastapi.testclient import TestClient

from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.staff import service as staff
from followup.worker import Worker
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey
from tests.conftest import LiveServer, SmtpSink
from tests.e2e.test_console_browser import SCREENSHOTS, browser_page, sign_in  # noqa: F401 - the fixture


def test_an_agent_works_a_call_then_the_case_it_opened(
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
    make_survey(runtime)
    make_strategy(runtime, channels=["phone", "email"], delay="PT1M", remind_after=None)
    make_customer(runtime, "c-2077", phone="+8613912345678", consents={"feedback": {"phone": True, "email": True}})
    api.post("/api/v1/events", json={"events": [transfer("e1", "c-2077", occurred_at=clock.now())]})
    clock.advance(dt.timedelta(minutes=2))
    Worker(runtime).run_until_idle()
    with runtime.session() as session:
        _, password = staff.create_staff(
            session, email="ann@wallet.example", role="agent", now=clock.now(), queues=["calls", "detractor"]
        )
    errors = sign_in(page, live_server.url, email="ann@wallet.example", password=password, next_path="/console/calls")

    # The next call: the script in the customer's language, the number masked until a reason is given
    expect(page.get_by_role("heading", name="Calls")).to_be_visible()
    page.get_by_role("button", name="Next call").click()
    expect(page).to_have_url(re.compile(r"/console/calls/\d+$"))
    expect(page.locator(".greeting")).to_contain_text("您好")
    expect(page.get_by_text("139****5678")).to_be_visible()
    page.get_by_role("button", name="Show the number").click()
    call_link = page.get_by_role("link", name="Call +8613912345678")
    expect(call_link).to_have_attribute("href", "tel:+8613912345678")

    # The customer answers: a 3, and why
    page.locator('input[name="q-nps"][value="3"]').check()
    page.locator('textarea[name="q-comment"]').fill("手续费太高了，而且到账很慢")
    page.get_by_label("Answered").check()
    page.screenshot(path=str(SCREENSHOTS / "call.png"), full_page=True)
    page.get_by_role("button", name="Record the outcome").click()
    expect(page.get_by_role("status")).to_contain_text("Recorded: Answered")
    [response] = api.get("/api/v1/responses").json()["items"]
    assert (response["channel"], response["source"], response["nps"]) == ("phone", "agent", 3)
    Worker(runtime).run_until_idle()  # settles the case the answer opened: its timeline and its agent

    # The detractor case it opened is the agent's (round robin over the detractor queue)
    page.get_by_role("link", name="Cases").click()
    row = page.locator("#cases tbody tr").first
    expect(row).to_contain_text("detractor")
    expect(row).to_contain_text("ann@wallet.example")
    row.get_by_role("link").first.click()
    expect(page.get_by_role("heading", name=re.compile(r"^Case \d+"))).to_be_visible()
    expect(page.get_by_text("手续费太高了，而且到账很慢")).to_be_visible()

    page.get_by_label(re.compile("^Reply to the customer")).fill("您好，手续费已为您退回，到账问题我们已在处理。")
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator("#timeline")).to_contain_text("手续费已为您退回")
    page.get_by_label("Outcome").select_option("refunded")
    page.get_by_label("Root cause").fill("fee charged twice")
    page.get_by_label("What was done").fill("fee refunded")
    page.get_by_role("button", name="Resolve").click()
    expect(page.locator("h1 .badge.case-resolved")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "case.png"), full_page=True)

    # The reply and the "did we solve it?" go out by email (the strategy's next channel is email)
    smtp.clear()
    Worker(runtime).run_until_idle()
    subjects = sorted(str(m["Subject"]) for m in smtp.wait_for(2))
    assert re.fullmatch(r"关于您的反馈（编号 \d+）", subjects[0])
    assert subjects[1] == "问题解决了吗？"
    assert errors == []
