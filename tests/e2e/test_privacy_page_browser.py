"""The customer's privacy page in a real browser (Debian's headless Chromium), on a phone-sized
screen, in Chinese and in English: they see what is held, withdraw a consent, download their data
and ask for deletion.

Screenshots go to docs/screenshots/ (privacy-page-zh, privacy-page-en, privacy-erase-confirm).
"""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from fastapi.testclient import TestClient

from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from tests.conftest import LiveServer
from tests.e2e.test_console_browser import PHONE, SCREENSHOTS, browser_page  # noqa: F401 - the fixture, shared
from tests.test_data_rights import loop_ran  # noqa: F401 - the fixture, shared
from tests.test_privacy_page import token_of


@pytest.mark.usefixtures("loop_ran")
def test_a_customer_sees_changes_takes_and_deletes_their_data_on_a_phone(
    browser_page: object,  # noqa: F811 - the fixture imported above
    api: TestClient,
    runtime: Runtime,
    live_server: LiveServer,
    clock: ManualClock,
) -> None:
    from playwright.sync_api import Page, expect  # the fixture skipped without Chromium

    page = browser_page
    assert isinstance(page, Page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        # The browser asks for /favicon.ico on its own; the customers' pages have none.
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico")
            else None
        ),
    )
    token = token_of(runtime, "c1", clock)
    page.set_viewport_size(PHONE)

    # In Chinese, the customer's own language: what is held, the email masked
    page.goto(f"{live_server.url}/p/{token}")
    expect(page.get_by_role("heading", name="我的数据与隐私")).to_be_visible()
    expect(page.get_by_text("l***@example-wallet.test")).to_be_visible()
    expect(page.get_by_text("积分余额：10")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "privacy-page-zh.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "nothing runs off a phone's screen"

    # In English: withdraws feedback by email, and the page says it is saved
    page.goto(f"{live_server.url}/p/{token}?lang=en")
    expect(page.get_by_role("heading", name="My data and privacy")).to_be_visible()
    feedback = page.get_by_role("group", name="Follow-ups and satisfaction surveys")
    feedback.get_by_label("Email").uncheck()
    page.get_by_role("button", name="Save consents").click()
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    expect(
        page.get_by_role("group", name="Follow-ups and satisfaction surveys").get_by_label("Email")
    ).not_to_be_checked()
    assert api.get("/api/v1/customers/c1").json()["consents"]["feedback"]["email"] is False
    page.screenshot(path=str(SCREENSHOTS / "privacy-page-en.png"), full_page=True)

    # Downloads the zip
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download my data").click()
    path = download_info.value.path()
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
        assert json.loads(archive.read("customer.json"))["customer_id"] == "c1"
        assert "responses.csv" in archive.namelist()

    # Asks for deletion, confirms on the second page, and is told when it will be done
    page.get_by_role("button", name="Ask for deletion").click()
    expect(page.get_by_role("heading", name="Delete your data?")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "privacy-erase-confirm.png"), full_page=True)
    page.get_by_role("button", name="Yes, delete my data").click()
    expect(page.get_by_role("heading", name="We have your deletion request")).to_be_visible()
    (request,) = api.get("/api/v1/privacy/requests", params={"kind": "erasure"}).json()["items"]
    assert (request["source"], request["status"]) == ("privacy_page", "pending")
    assert errors == []
