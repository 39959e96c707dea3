"""Strategies and segments in a real browser (Debian's headless Chromium): staff builds a segment
with the rule builder, creates a periodic strategy through the form, previews it, and after the
schedule's firing and a worker run sees the wave and its follow-ups on the strategy's page.

Screenshots go to docs/screenshots/ (segment-builder, strategy-form, strategy-page, strategies-list).
"""

from __future__ import annotations

import datetime as dt
import json
import re

from fastapi.testclient import TestClient

from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.staff import service as staff
from followup.worker import Worker
from tests.builders.surveys import survey_body
from tests.conftest import LiveServer
from tests.e2e.test_console_browser import SCREENSHOTS, browser_page  # noqa: F401 - the fixture, shared

FIRST_WAVE = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)  # 10:00 on 1 December in Shanghai
GOLD = ["c1", "c2", "c3"]


def test_build_a_segment_and_a_periodic_strategy_preview_it_and_see_its_wave(
    browser_page: object,  # noqa: F811 - the fixture imported above
    api: TestClient,
    runtime: Runtime,
    live_server: LiveServer,
    clock: ManualClock,
) -> None:
    from playwright.sync_api import ConsoleMessage, Page, expect  # the fixture skipped without Chromium

    page = browser_page
    assert isinstance(page, Page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"{message.text} at {message.location.get('url')}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    # Given a survey, three gold customers and a silver one, and a staff account
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    for n, customer_id in enumerate([*GOLD, "c4"]):
        customer = {
            "email": f"{customer_id}.wallet@example.com",
            "locale": "en" if n % 2 else "zh-CN",
            "time_zone": "Asia/Shanghai",
            "value_tier": "gold" if customer_id in GOLD else "silver",
            "consents": {"feedback": {"email": True}},
        }
        assert api.put(f"/api/v1/customers/{customer_id}", json=customer).status_code == 200
    with runtime.session() as session:
        _, password = staff.create_staff(session, email="ops@wallet.example", role="admin", now=clock.now())

    page.goto(f"{live_server.url}/console/segments")
    page.get_by_label("Email").fill("ops@wallet.example")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{live_server.url}/console/segments")

    # When staff builds a segment with the rule builder: customers of the gold tier
    page.get_by_role("link", name="New segment").click()
    page.locator('input[name="key"]').fill("gold")
    page.locator('input[name="name"]').fill("Gold customers")
    builder = page.locator('.rule-builder[data-for="rule-rule"]')
    expect(page.locator("#rule-rule")).to_be_hidden()  # the builder edits it; the JSON is one click away
    builder.get_by_role("button", name="+ Condition").click()
    builder.get_by_label("Field", exact=True).fill("customer.value_tier")
    builder.get_by_label("Operator", exact=True).select_option("eq")
    builder.get_by_label("Value", exact=True).fill("gold")
    assert json.loads(page.locator("#rule-rule").input_value()) == {
        "all": [{"field": "customer.value_tier", "op": "eq", "value": "gold"}]
    }

    # Then its preview counts the three, masked, before anything is saved
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview h2")).to_have_text("Preview: 3 customers now")
    expect(page.locator("#preview tbody tr")).to_have_count(3)
    expect(page.locator("#preview")).to_contain_text("c***@example.com")
    assert "c1.wallet@example.com" not in page.content()
    assert api.get("/api/v1/segments").json()["total"] == 0
    expect(builder.get_by_label("Value", exact=True)).to_have_value("gold")  # the builder reads back what it wrote
    page.screenshot(path=str(SCREENSHOTS / "segment-builder.png"), full_page=True)
    page.get_by_role("button", name="Save segment").click()
    expect(page).to_have_url(f"{live_server.url}/console/segments/gold")
    assert api.get("/api/v1/segments/gold").json()["rule"] == {
        "all": [{"field": "customer.value_tier", "op": "eq", "value": "gold"}]
    }

    # When staff creates a periodic strategy for the segment through the form
    page.get_by_role("link", name="Strategies").click()
    page.get_by_role("link", name="New strategy").click()
    page.locator("#kind").select_option("periodic")
    expect(page.locator('fieldset[data-kinds="event"]')).to_be_hidden()
    expect(page.locator('fieldset[data-kinds="periodic"]')).to_be_visible()
    page.locator('input[name="key"]').fill("monthly-gold")
    page.locator('input[name="name"]').fill("Monthly panel of gold customers")
    page.locator('input[name="cron"]').fill("0 10 1 * *")
    expect(page.locator('input[name="time_zone"]')).to_have_value("Asia/Shanghai")
    audience = page.locator('.rule-builder[data-for="rule-audience"]')
    audience.get_by_role("button", name="+ Segment").click()
    expect(audience.get_by_label("Segment", exact=True)).to_have_value("gold")
    audience.get_by_role("button", name="+ Condition").click()
    audience.get_by_label("Field", exact=True).fill("customer.stats.disputes_90d")
    audience.get_by_label("Operator", exact=True).select_option("lt")
    audience.get_by_label("Value", exact=True).fill("1")
    page.locator('input[name="channels"]').fill("email")
    page.locator('select[name="survey"]').select_option("payment-csat")
    page.locator('input[name="reward_points"]').fill("10")
    page.locator('input[name="message_subject"]').first.fill("您本月的钱包体验")
    page.locator('textarea[name="message_body"]').first.fill("感谢您本月使用钱包，请告诉我们您的感受。")

    # And previews it: the three, on the email channel, nothing saved
    page.get_by_role("button", name="Preview").click()
    expect(page.locator('[data-preview="would_contact"]')).to_have_text("3")
    expect(page.locator('[data-preview="matched"]')).to_have_text("3")
    assert api.get("/api/v1/strategies").json()["total"] == 0
    expect(page.locator("#kind")).to_have_value("periodic")  # the form is still as it was filled in
    page.screenshot(path=str(SCREENSHOTS / "strategy-form.png"), full_page=True)
    page.get_by_role("button", name="Create strategy").click()

    # Then its page shows the definition, the first wave to come, and the version by this staff member
    expect(page).to_have_url(f"{live_server.url}/console/strategies/monthly-gold")
    expect(page.locator("#waves")).to_contain_text("No wave yet. The first fires 2026-12-01 02:00 UTC.")
    expect(page.locator("#versions tbody tr")).to_have_count(1)
    expect(page.locator("#versions tbody tr").first).to_contain_text("staff:ops@wallet.example")
    stored = api.get("/api/v1/strategies/monthly-gold").json()
    assert stored["audience"] == {
        "all": [{"segment": "gold"}, {"field": "customer.stats.disputes_90d", "op": "lt", "value": 1}]
    }
    assert (stored["kind"], stored["channels"], stored["reward"]) == ("periodic", ["email"], {"points": 10})

    # And its preview on the page says the same, still writing nothing
    page.get_by_role("button", name="Preview").click()
    expect(page.locator('[data-preview="would_contact"]')).to_have_text("3")
    assert api.get("/api/v1/followups").json()["total"] == 0

    # When the schedule fires and the worker runs
    clock.set(FIRST_WAVE)
    Worker(runtime).run_until_idle()

    # Then, signed in again (eight days later the session has long ended), the strategy page shows
    # the wave and its three follow-ups, the gold customers only
    page.goto(f"{live_server.url}/console/strategies/monthly-gold")
    expect(page).to_have_url(re.compile(r"/console/login\?next=/console/strategies/monthly-gold$"))
    page.get_by_label("Email").fill("ops@wallet.example")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{live_server.url}/console/strategies/monthly-gold")
    wave = page.locator("#waves tbody tr")
    expect(wave).to_have_count(1)
    expect(wave.first).to_contain_text("2026-12-01 02:00 UTC")
    expect(wave.first.locator("td.num").nth(4)).to_have_text("3")  # planned
    rows = page.locator("#followups tbody tr")
    expect(rows).to_have_count(3)
    customers = sorted(rows.nth(n).locator("td").nth(3).inner_text() for n in range(3))
    assert customers == GOLD
    expect(page.locator("#versions")).to_contain_text("staff:ops@wallet.example")
    page.screenshot(path=str(SCREENSHOTS / "strategy-page.png"), full_page=True)
    assert {f["status"] for f in api.get("/api/v1/followups").json()["items"]} == {"invited"}

    # And the list shows it with its next firing and its last 30 days
    page.get_by_role("link", name="Strategies").click()
    row = page.locator("table.strategies tbody tr", has_text="monthly-gold")
    expect(row).to_contain_text("2027-01-01 02:00 UTC")
    expect(row.locator("td.num").nth(0)).to_have_text("3")  # planned
    expect(row.locator("td.num").nth(1)).to_have_text("3")  # sent
    page.screenshot(path=str(SCREENSHOTS / "strategies-list.png"), full_page=True)

    # No page broke the CSP or threw: the builder ran from our own static file
    assert problems == []
    assert re.search(r"/console/static/rule-builder\.js", page.content()) is None  # only the form pages load it
