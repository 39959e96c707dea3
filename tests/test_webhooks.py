"""Outbound webhooks end to end: an endpoint registered through the API, events published in the
transaction of what happened, posted by the worker to a local receiver, signed in the Standard
Webhooks form and checked with the reference `standardwebhooks` library; retries with backoff for a
day, then the endpoint disabled; replays; URLs that point inside the network refused.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from followup.app import create_app
from followup.config import Settings
from followup.kernel.time import ManualClock
from followup.runtime import Runtime, build_runtime
from followup.staff import service as staff
from followup.worker import Worker
from tests.builders.customers import make_customer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey
from tests.conftest import SmtpSink, wipe
from tests.sms_servers import Answer, LocalServer, Received
from tests.test_cases import _answer_with_security_comment


@pytest.fixture
def receiver() -> Iterator[LocalServer]:
    server = LocalServer()
    yield server
    server.close()


@pytest.fixture
def inside(settings: Settings, clock: ManualClock) -> Iterator[tuple[Runtime, TestClient]]:
    """The engine as a test runs it: receivers on 127.0.0.1, so private addresses are allowed."""
    runtime = build_runtime(settings.model_copy(update={"webhooks_allow_private": True}), clock=clock)
    try:
        with runtime.session() as session:
            _, key = staff.create_api_key(session, name="tests", now=clock.now())
        with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {key}"}) as api:
            yield runtime, api
    finally:
        wipe(runtime.engine)
        runtime.close()


def _register(api: TestClient, url: str, *events: str) -> dict[str, Any]:
    made = api.post("/api/v1/webhooks", json={"url": url, "events": list(events), "description": "risk team"})
    assert made.status_code == 201, made.text
    return dict(made.json())


def _verified(request: Received, secret: str, clock: ManualClock) -> dict[str, Any]:
    """The body, once the reference library agrees with its signature (at the engine's time)."""
    with time_machine.travel(clock.now(), tick=False):
        payload = Webhook(secret).verify(request.body, request.headers)
    assert isinstance(payload, dict)
    return payload


def test_a_security_comment_reaches_the_risk_team_signed_and_without_the_comment(
    inside: tuple[Runtime, TestClient], receiver: LocalServer, smtp: SmtpSink, clock: ManualClock
) -> None:
    runtime, api = inside
    made = _register(api, f"{receiver.url}/risk", "security.concern", "case.opened", "response.created")
    assert made["secret"].startswith("whsec_")
    make_customer(runtime, "c1")
    make_survey(runtime)
    make_strategy(runtime)
    # When the customer answers with a comment that raises a security concern
    _answer_with_security_comment(runtime, api, smtp, clock)
    Worker(runtime).run_until_idle()
    # Then the receiver heard the case, the concern and the answer, each signed with the secret (the
    # concern as the comment came in; the answer from the worker, after the answer's transaction)
    payloads = [_verified(request, made["secret"], clock) for request in receiver.received]
    assert sorted(payload["type"] for payload in payloads) == ["case.opened", "response.created", "security.concern"]
    [concern] = [payload["data"] for payload in payloads if payload["type"] == "security.concern"]
    assert (concern["kind"], concern["priority"], concern["customer_id"]) == ("security", "security", "c1")
    assert all("hacked" not in request.body.decode() for request in receiver.received)
    assert {request.path for request in receiver.received} == {"/risk"}
    # And each delivery is logged as delivered, with its status and latency
    log = api.get(f"/api/v1/webhooks/{made['id']}/deliveries").json()
    assert log["total"] == 3
    assert {(item["status"], item["last_status"], item["attempts"]) for item in log["items"]} == {("delivered", 200, 1)}
    # A signature made with another secret does not pass
    with pytest.raises(Exception, match="signature"):
        _verified(receiver.received[0], "whsec_" + "b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA==", clock)


def test_a_failing_receiver_is_retried_with_backoff_for_a_day_then_disabled(
    inside: tuple[Runtime, TestClient], receiver: LocalServer, clock: ManualClock
) -> None:
    runtime, api = inside
    made = _register(api, f"{receiver.url}/down", "case.opened")
    receiver.script(*[Answer(503, {"error": "down"})] * 200)
    assert api.post(f"/api/v1/webhooks/{made['id']}/test").status_code == 202
    worker, started, waits = Worker(runtime), clock.now(), []
    for _ in range(100):
        worker.deliver_webhooks()
        [delivery] = api.get(f"/api/v1/webhooks/{made['id']}/deliveries").json()["items"]
        if delivery["status"] != "pending":
            break
        due = dt.datetime.fromisoformat(delivery["next_at"])
        waits.append((due - clock.now()).total_seconds())
        clock.set(due)
    # Then each wait was between half and all of the doubled base (60 s), up to an hour
    for number, wait in enumerate(waits, start=1):
        ceiling = min(3600.0, 60 * 2 ** (number - 1))
        assert ceiling / 2 <= wait <= ceiling, (number, wait)
    # And the delivery failed once a day had passed, and its endpoint was disabled with the reason
    assert delivery["status"] == "failed"
    assert delivery["last_status"] == 503
    assert clock.now() - started >= dt.timedelta(hours=24)
    assert len(receiver.received) == delivery["attempts"] == len(waits) + 1
    assert len({request.headers["webhook-id"] for request in receiver.received}) == 1
    endpoint = api.get(f"/api/v1/webhooks/{made['id']}").json()
    assert endpoint["enabled"] is False
    assert endpoint["disabled_reason"] == "deliveries failed for 24 hours; the last: HTTP 503"
    # A disabled endpoint takes no test until it is enabled again
    refused = api.post(f"/api/v1/webhooks/{made['id']}/test")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "webhook_disabled")
    assert api.patch(f"/api/v1/webhooks/{made['id']}", json={"enabled": True}).json()["enabled"] is True


def test_a_replay_sends_the_same_body_with_a_new_webhook_id(
    inside: tuple[Runtime, TestClient], receiver: LocalServer, clock: ManualClock
) -> None:
    runtime, api = inside
    made = _register(api, f"{receiver.url}/hook", "reward.granted")
    api.post(f"/api/v1/webhooks/{made['id']}/test")
    Worker(runtime).run_until_idle()
    [first] = api.get(f"/api/v1/webhooks/{made['id']}/deliveries").json()["items"]
    replayed = api.post(f"/api/v1/webhooks/deliveries/{first['id']}/replay")
    assert replayed.status_code == 202
    clock.advance(dt.timedelta(seconds=1))
    Worker(runtime).run_until_idle()
    original, again = receiver.received
    assert original.body == again.body
    assert original.headers["webhook-id"] != again.headers["webhook-id"]
    assert json.loads(again.body)["type"] == "webhook.test"
    _verified(again, made["secret"], clock)
    log = api.get(f"/api/v1/webhooks/{made['id']}/deliveries").json()["items"]
    assert [(item["replay_of"], item["status"]) for item in log] == [(first["id"], "delivered"), (None, "delivered")]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:8080/hook", "private, loopback or reserved"),
        ("http://10.1.2.3/hook", "private, loopback or reserved"),
        ("http://[::1]/hook", "private, loopback or reserved"),
        ("http://169.254.169.254/latest/meta-data", "private, loopback or reserved"),
        ("ftp://93.184.216.34/hook", "http:// or https://"),
        ("https://user:secret@93.184.216.34/hook", "no user name or password"),
        ("https://93.184.216.34:99999/hook", "port"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
    ],
)
def test_urls_that_point_inside_or_are_not_http_are_refused(api: TestClient, url: str, says: str) -> None:
    refused = api.post("/api/v1/webhooks", json={"url": url, "events": ["case.opened"]})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["field"]) == ("webhook_url_refused", "url")
    assert says in error["message"]
    assert api.get("/api/v1/webhooks").json() == {"items": [], "total": 0}


def test_a_public_endpoint_shows_its_secret_once_and_unknown_ids_are_404(api: TestClient) -> None:
    made = api.post("/api/v1/webhooks", json={"url": "https://93.184.216.34/hook", "events": ["consent.changed"]})
    assert made.status_code == 201, made.text
    assert made.json()["secret"].startswith("whsec_")
    shown = api.get(f"/api/v1/webhooks/{made.json()['id']}").json()
    assert "secret" not in shown
    assert (shown["events"], shown["enabled"]) == (["consent.changed"], True)
    unknown_event = api.post("/api/v1/webhooks", json={"url": "https://93.184.216.34/x", "events": ["case.eaten"]})
    assert unknown_event.status_code == 422
    for method, path in [
        ("GET", "/api/v1/webhooks/999"),
        ("PATCH", "/api/v1/webhooks/999"),
        ("DELETE", "/api/v1/webhooks/999"),
        ("POST", "/api/v1/webhooks/999/test"),
        ("GET", "/api/v1/webhooks/999/deliveries"),
    ]:
        answer = api.request(method, path, json={} if method == "PATCH" else None)
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, "webhook_not_found"), (method, path)
    replay = api.post("/api/v1/webhooks/deliveries/999/replay")
    assert (replay.status_code, replay.json()["error"]["code"]) == (404, "webhook_delivery_not_found")
    assert api.delete(f"/api/v1/webhooks/{made.json()['id']}").status_code == 204
    assert api.get("/api/v1/webhooks").json()["total"] == 0
