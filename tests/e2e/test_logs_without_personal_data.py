"""A whole loop — API, worker, survey page served by uvicorn, console, a crashing channel — logged
at DEBUG in both formats, and not one line names the customer, their words, a token or a secret."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import replace

import httpx
import pytest
from fastapi.testclient import TestClient

from followup.app import create_app
from followup.channels.base import Delivery, Receipt
from followup.channels.capabilities import BUILT_IN
from followup.kernel.logging import configure_logging, unconfigure_logging
from followup.kernel.time import ManualClock
from followup.runtime import Runtime, build_runtime
from followup.worker import Worker
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.conftest import MASTER_KEY, LiveServer, SmtpSink
from tests.helpers import survey_path
from tests.test_console import make_staff, sign_in

EMAIL = "zhang.san@example.com"
OTHER_EMAIL = "li.si@example.com"
PHONE_DIGITS = "13812341234"
COMMENT = "转账后卡号 6222 0212 3456 7890 被盗刷了"


class ExplodingChannel:
    """A channel with a bug: it raises an unexpected error holding the address, as a local and in
    its message, the way a provider library's error might."""

    name = "email"
    capabilities = replace(BUILT_IN["email"], idempotent=True)

    def send(self, delivery: Delivery, *, handoff: Callable[[], None]) -> Receipt:
        address = delivery.address
        raise RuntimeError(f"provider library crashed while sending to {address}")


@pytest.fixture(params=["json", "console"])
def logs(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    configure_logging(level="DEBUG", fmt=request.param)
    yield capsys
    unconfigure_logging()


def test_a_full_loop_logs_nothing_personal_or_secret(  # noqa: PLR0917 - pytest injects fixtures by name
    logs: pytest.CaptureFixture[str],
    runtime: Runtime,
    api: TestClient,
    api_key: str,
    smtp: SmtpSink,
    live_server: LiveServer,
    clock: ManualClock,
) -> None:
    # Given a customer with an email and a phone, a survey and a strategy, set up through the API
    for customer, email in (("c1", EMAIL), ("c2", OTHER_EMAIL)):
        answer = api.put(
            f"/api/v1/customers/{customer}",
            json={
                "email": email,
                "phone": f"+86{PHONE_DIGITS}",
                "locale": "zh-CN",
                "time_zone": "Asia/Shanghai",
                "consents": {"feedback": {"email": True, "inapp": True}},
            },
        )
        assert answer.status_code == 200, answer.text
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body()).status_code == 201

    # When an event arrives, the worker sends, and the customer answers with a comment
    api.post("/api/v1/events", json={"events": [transfer("e1", "c1", amount=600000)]})
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()
    path = survey_path(smtp.wait_for(1)[0])
    token = path.removeprefix("/s/")
    with httpx.Client(base_url=live_server.url) as customer:
        assert customer.get(f"{path}?score=3").status_code == 200
        assert customer.post(path, data={"step": "rating", "nps": "3"}).status_code in (200, 303)
        customer.post(path, data={"step": "details", "comment": COMMENT})
        customer.get(path)

    # And staff sign in (once wrongly) and read the outbox and the customer's page
    password = make_staff(runtime)
    console = TestClient(create_app(runtime), follow_redirects=False)
    form = console.get("/console/login")
    csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
    console.post("/console/login", data={"email": "ops@wallet.example", "password": "wrong-Password-1", "csrf": csrf})
    sign_in(console, "ops@wallet.example", password)
    for page in ("/console", "/console/outbox", "/console/responses", "/console/customers/c1", "/console/cases"):
        assert console.get(page).status_code == 200, page
    cookie = console.cookies.get("followup_console")

    # And a channel with a bug meets the second customer's invitation
    api.post("/api/v1/events", json={"events": [transfer("e2", "c2", amount=600000)]})
    clock.advance(dt.timedelta(minutes=31))
    broken = build_runtime(runtime.settings, clock=clock, channels={"email": ExplodingChannel()})
    try:
        Worker(broken).run_until_idle()
    finally:
        broken.close()

    # Then the logs say what happened, and nothing personal or secret
    captured = logs.readouterr()
    text = captured.out + captured.err
    assert "request" in text
    assert "RuntimeError" in text, "the channel's bug is logged"
    forbidden = {
        "email": EMAIL,
        "other email": OTHER_EMAIL,
        "email local part": "zhang.san",
        "phone": PHONE_DIGITS,
        "comment": "盗刷",
        "card number": "6222 0212",
        "survey token": token,
        "API key": api_key,
        "master key": MASTER_KEY,
        "staff password": password,
        "wrong password": "wrong-Password-1",
        "session cookie": str(cookie),
        "staff email": "ops@wallet.example",
    }
    leaked = {what: value for what, value in forbidden.items() if value in text}
    assert leaked == {}, text
