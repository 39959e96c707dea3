"""The console's webhooks page in a real browser (Debian's headless Chromium): an endpoint that
heard a case and a test, one that failed for a day and was disabled, and a delivery sent again
from the page.

The screenshot goes to docs/screenshots/webhooks.png, for the README and for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from followup.app import create_app
from followup.config import Settings
from followup.kernel.time import ManualClock
from followup.runtime import Runtime, build_runtime
from followup.staff import service as staff
from followup.worker import Worker
from tests.conftest import LiveServer, wipe
from tests.e2e.test_console_browser import SCREENSHOTS, browser_page, sign_in  # noqa: F401 - the fixture
from tests.sms_servers import Answer, LocalServer


@pytest.fixture
def wallet(settings: Settings, clock: ManualClock) -> Iterator[tuple[str, str, Runtime, LocalServer]]:
    """A risk team's receiver that answers, and a receiver that has been down for a day."""
    risk, down = LocalServer(), LocalServer()
    runtime = build_runtime(settings.model_copy(update={"webhooks_allow_private": True}), clock=clock)
    live = LiveServer(runtime)
    try:
        with runtime.session() as session:
            _, key = staff.create_api_key(session, name="tests", now=clock.now())
            _, password = staff.create_staff(session, email="ops@wallet.example", role="admin", now=clock.now())
        api = TestClient(create_app(runtime), headers={"Authorization": f"Bearer {key}"})
        good = api.post(
            "/api/v1/webhooks",
            json={"url": f"{risk.url}/risk", "events": ["security.concern", "case.opened"], "description": "Risk"},
        ).json()
        bad = api.post(
            "/api/v1/webhooks", json={"url": f"{down.url}/crm", "events": ["reward.granted"], "description": "CRM"}
        ).json()
        down.script(*[Answer(502, {"error": "bad gateway"})] * 100)
        api.post(f"/api/v1/webhooks/{good['id']}/test")
        api.post(f"/api/v1/webhooks/{bad['id']}/test")
        worker = Worker(runtime)
        worker.deliver_webhooks()
        for _ in range(60):  # the down receiver's retries, a day of them
            items = api.get(f"/api/v1/webhooks/{bad['id']}/deliveries").json()["items"]
            if items[0]["status"] != "pending":
                break
            clock.set(dt.datetime.fromisoformat(items[0]["next_at"]))
            worker.deliver_webhooks()
        live.start()
        yield live.url, password, runtime, risk
    finally:
        live.stop()
        runtime.close()
        risk.close()
        down.close()
        wipe(runtime.engine)


def test_the_webhooks_page_shows_each_endpoint_its_deliveries_and_sends_one_again(
    browser_page: object,  # noqa: F811 - the fixture imported above
    wallet: tuple[str, str, Runtime, LocalServer],
) -> None:
    from playwright.sync_api import Page, expect

    url, password, runtime, risk = wallet
    page = browser_page
    assert isinstance(page, Page)
    errors = sign_in(page, url, email="ops@wallet.example", password=password, next_path="/console/webhooks")

    # The risk team's endpoint: enabled, its test delivered with HTTP 200
    expect(page).to_have_url(re.compile(r"/console/webhooks$"))
    risk_section = page.locator("section.webhook", has_text="/risk")
    expect(risk_section).to_contain_text("enabled")
    expect(risk_section).to_contain_text("security.concern")
    expect(risk_section.locator("table.deliveries tbody tr")).to_have_count(1)
    expect(risk_section.locator("table.deliveries tbody tr").first).to_contain_text("delivered")
    expect(risk_section.locator("table.deliveries tbody tr").first).to_contain_text("200")
    # The CRM's endpoint: disabled after a day of 502s, its delivery failed, no button to resend
    crm = page.locator("section.webhook", has_text="/crm")
    expect(crm).to_contain_text("disabled")
    expect(crm).to_contain_text("deliveries failed for 24 hours; the last: HTTP 502")
    expect(crm.locator("table.deliveries tbody tr").first).to_contain_text("failed")
    expect(crm.get_by_role("button", name="Send again")).to_have_count(0)
    page.screenshot(path=str(SCREENSHOTS / "webhooks.png"), full_page=True)

    # Sending the risk team's delivery again queues a replay, which the worker delivers
    risk_section.get_by_role("button", name="Send again").click()
    expect(page).to_have_url(re.compile(r"/console/webhooks#queued$"))
    Worker(runtime).deliver_webhooks()
    page.reload()
    rows = page.locator("section.webhook", has_text="/risk").locator("table.deliveries tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("replay of")
    assert len(risk.received) == 2
    assert risk.received[0].body == risk.received[1].body
    assert errors == []
