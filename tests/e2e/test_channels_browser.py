"""The console's view of channels in a real browser (Debian's headless Chromium): the channels page
with a failing gateway's open circuit and the funnel, an SMS shown as the phone showed it with its
attempts through two gateways, a push shown as a notification, and a customer's contact points.

Screenshots go to docs/screenshots/, for the README and for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from followup.app import create_app
from followup.channels import capabilities
from followup.channels.sms.webhooks import sign
from followup.channels.testing import RecordingChannel
from followup.config import GenericSmsSettings, Settings
from followup.kernel.time import ManualClock
from followup.runtime import build_runtime
from followup.staff import service as staff
from followup.worker import Worker
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey
from tests.conftest import LiveServer, wipe
from tests.e2e.test_console_browser import SCREENSHOTS, browser_page, sign_in  # noqa: F401 - the fixture
from tests.sms_servers import Answer, GenericGateway

SECRET = "whsec_" + "c2VjcmV0LWZvci1zbXMtd2ViaG9va3M="


@pytest.fixture
def wallet(settings: Settings, clock: ManualClock) -> Iterator[tuple[str, str]]:
    """Two gateways, the first failing; four customers invited by SMS (one replied 9), one by push."""
    first, second = GenericGateway(token="t1"), GenericGateway(token="t2")
    # One send at a time, so the first gateway's scripted failures open its circuit in order.
    providers = [
        GenericSmsSettings(
            kind="generic",
            name="first",
            url=first.url,
            token=SecretStr("t1"),
            webhook_secret=SecretStr(SECRET),
            concurrency=1,
        ),
        GenericSmsSettings(
            kind="generic",
            name="second",
            url=second.url,
            token=SecretStr("t2"),
            rate_per_second=20,
            webhook_secret=SecretStr(SECRET),
            concurrency=1,
        ),
    ]
    configured = settings.model_copy(
        update={"sms_providers": providers, "sms_sign": "钱包", "provider_failure_threshold": 2}
    )
    runtime = build_runtime(configured, clock=clock)
    push = RecordingChannel("push")
    runtime.channels = {**runtime.channels, "push": push}
    capabilities.install("push", replace(push.capabilities))
    live = LiveServer(runtime)
    try:
        with runtime.session() as session:
            _, key = staff.create_api_key(session, name="tests", now=clock.now())
            _, password = staff.create_staff(session, email="ops@wallet.example", role="admin", now=clock.now())
        api = TestClient(create_app(runtime), headers={"Authorization": f"Bearer {key}"})
        for number in range(1, 5):
            make_customer(runtime, f"c{number}", phone=f"+86138123412{number}0", consents={"feedback": {"sms": True}})
        make_customer(runtime, "p1", locale="en", consents={"feedback": {"push": True}})
        api.put("/api/v1/customers/p1/devices/phone-1", json={"platform": "android", "token": "fcm:" + "x" * 40})
        make_survey(runtime)
        make_strategy(runtime, channels=["sms"])
        make_strategy(
            runtime, "push-after-transfer", channels=["push"], trigger={"event_types": ["transfer.succeeded"]}
        )
        first.script(*[Answer(503, {"error": "unavailable"})] * 2)
        events = [transfer(f"e{n}", f"c{n}") for n in range(1, 5)] + [transfer("e9", "p1")]
        assert api.post("/api/v1/events", json={"events": events}).status_code == 200
        clock.advance(dt.timedelta(minutes=31))
        Worker(runtime).run_until_idle()
        for followup in api.get("/api/v1/followups").json()["items"]:
            for message in followup["messages"]:
                if message["channel"] == "sms":
                    ref = next(a["provider_ref"] for a in message["attempts"] if a["outcome"] == "accepted")
                    _hook(
                        api, clock, "second", "receipts", {"id": ref, "status": "delivered", "error": None, "at": None}
                    )
        _hook(
            api,
            clock,
            "second",
            "inbound",
            {"id": "in-1", "from": "+8613812341210", "to": "1069", "text": "9", "at": None},
        )
        Worker(runtime).run_until_idle()
        live.start()
        yield live.url, password
    finally:
        live.stop()
        runtime.close()
        first.close()
        second.close()
        wipe(runtime.engine)
        capabilities._installed.pop("push", None)


def _hook(api: TestClient, clock: ManualClock, provider: str, kind: str, body: dict[str, object]) -> None:
    raw = json.dumps(body).encode()
    stamp = int(clock.now().timestamp())
    headers = {"webhook-id": f"w-{abs(hash(raw))}", "webhook-timestamp": str(stamp), "content-type": "application/json"}
    headers["webhook-signature"] = sign(SECRET, headers["webhook-id"], stamp, raw)
    assert api.post(f"/hooks/sms/{provider}/{kind}", content=raw, headers=headers).status_code == 200


def test_channels_sms_push_and_contact_points_read_as_staff_need_them(
    browser_page: object,  # noqa: F811 - the fixture imported above
    wallet: tuple[str, str],
) -> None:
    from playwright.sync_api import Page, expect

    url, password = wallet
    page = browser_page
    assert isinstance(page, Page)
    errors = sign_in(page, url, email="ops@wallet.example", password=password, next_path="/console/channels")

    # The channels page: the first gateway's circuit open after two 503s, the second healthy
    expect(page).to_have_url(re.compile(r"/console/channels$"))
    first = page.locator("table.providers tr", has_text="first")
    expect(first).to_contain_text("open")
    expect(first).to_contain_text("http_503")
    second = page.locator("table.providers tr", has_text="second")
    expect(second).to_contain_text("closed")
    expect(second).to_contain_text("20/s")
    sms_funnel = page.locator("figure.funnel", has_text="sms")
    expect(sms_funnel).to_contain_text("Delivered")
    expect(sms_funnel.locator(".funnel-row", has_text="Answered")).to_contain_text("1")
    page.screenshot(path=str(SCREENSHOTS / "channels.png"), full_page=True)

    # An SMS as the phone showed it, with its tries through both gateways
    page.goto(f"{url}/console/outbox")
    page.locator(".messages li", has_text="sms").last.click()
    expect(page.locator(".bubble")).to_contain_text("【钱包】")
    expect(page.locator(".bubble")).to_contain_text("回T退订")
    attempts = page.locator("table.attempts tbody tr")
    expect(attempts.first).to_contain_text("first")
    expect(attempts.first).to_contain_text("transient")
    expect(attempts.last).to_contain_text("accepted")
    expect(page.locator(".badge.state-delivered")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "message-sms.png"), full_page=True)

    # A push as a notification
    page.goto(f"{url}/console/outbox")
    page.locator(".messages li", has_text="push").first.click()
    expect(page.locator(".notification-title")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "message-push.png"), full_page=True)

    # The customer's contact points, masked, with the device
    page.goto(f"{url}/console/customers/p1")
    contacts = page.locator("table.contacts")
    expect(contacts).to_contain_text("push device")
    expect(contacts).to_contain_text("phone-1")
    expect(contacts).to_contain_text("valid")
    assert "x" * 40 not in page.content()
    page.screenshot(path=str(SCREENSHOTS / "customer-contacts.png"), full_page=True)
    assert errors == []
