"""SMS end to end, through the API, the worker and two local gateways speaking our generic protocol:
the text a phone shows, the short link, signed receipts, replies (a score, STOP), failover and the
circuit, and a dead number marking its contact point."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from followup.app import create_app
from followup.channels.sms.webhooks import sign
from followup.config import GenericSmsSettings, Settings
from followup.dispatch.models import InboundMessage
from followup.followups.inbound import read_comment
from followup.kernel.time import ManualClock
from followup.runtime import Runtime, build_runtime
from followup.staff import service as staff
from followup.worker import Worker
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy, strategy_body
from tests.builders.surveys import make_survey
from tests.conftest import wipe
from tests.sms_servers import Answer, GenericGateway
from tests.test_scrubbing import every_stored_value

SECRET = "whsec_" + "c2VjcmV0LWZvci1zbXMtd2ViaG9va3M="  # base64 of "secret-for-sms-webhooks"
PHONE = "+8613812341234"


@dataclass
class Wallet:
    runtime: Runtime
    api: TestClient
    first: GenericGateway
    second: GenericGateway
    clock: ManualClock

    def run(self) -> None:
        Worker(self.runtime).run_until_idle()

    def followups(self) -> list[dict[str, Any]]:
        return list(self.api.get("/api/v1/followups").json()["items"])

    def hook(self, provider: str, kind: str, body: Any, *, query: str = "", secret: str = SECRET) -> Any:
        raw = json.dumps(body).encode()
        stamp = int(self.clock.now().timestamp())
        webhook_id = f"msg_{abs(hash(raw))}"
        headers = {
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(secret, webhook_id, stamp, raw),
        }
        path = f"/hooks/sms/{provider}/{kind}" + (f"?{query}" if query else "")
        return self.api.post(path, content=raw, headers=headers)


@pytest.fixture
def wallet(settings: Settings, clock: ManualClock) -> Iterator[Wallet]:
    first, second = GenericGateway(token="t-first"), GenericGateway(token="t-second")
    # One send at a time: these tests script the gateways' answers in order (test_sending_fast.py
    # sends several at once).
    common: dict[str, Any] = {"kind": "generic", "webhook_secret": SecretStr(SECRET), "concurrency": 1}
    providers = [
        GenericSmsSettings(name="first", url=first.url, token=SecretStr("t-first"), **common),
        GenericSmsSettings(name="second", url=second.url, token=SecretStr("t-second"), **common),
    ]
    configured = settings.model_copy(
        update={"sms_providers": providers, "sms_sign": "钱包", "provider_failure_threshold": 2}
    )
    runtime = build_runtime(configured, clock=clock)
    try:
        with runtime.session() as session:
            _, key = staff.create_api_key(session, name="tests", now=clock.now())
        with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {key}"}) as api:
            yield Wallet(runtime, api, first, second, clock)
    finally:
        runtime.close()
        first.close()
        second.close()
        wipe(runtime.engine)


def _invite(wallet: Wallet, customer: str = "c1", event: str = "e1") -> None:
    assert wallet.api.post("/api/v1/events", json={"events": [transfer(event, customer)]}).json()["accepted"] == 1
    wallet.clock.advance(dt.timedelta(minutes=31))
    wallet.run()


def _sms_customer(wallet: Wallet, customer: str = "c1", phone: str = PHONE) -> None:
    make_customer(wallet.runtime, customer, phone=phone, consents={"feedback": {"sms": True, "email": True}})


def test_an_sms_reads_as_carriers_require_and_its_short_link_opens_the_survey(wallet: Wallet) -> None:
    # Given a customer on a mainland number and a strategy over SMS
    _sms_customer(wallet)
    make_survey(wallet.runtime)
    make_strategy(wallet.runtime, channels=["sms"])
    # When they are invited
    _invite(wallet)
    # Then one SMS went to the first gateway, signed 【钱包】, with the reply hint, a short link and 回T退订
    [sent] = wallet.first.sent
    text = str(sent["text"])
    assert sent["to"] == PHONE
    assert text.startswith("【钱包】")
    assert "回复0-10的数字即可评分" in text
    assert text.endswith("\n回T退订")
    link = next(line for line in text.splitlines() if line.startswith("http://testserver/r/"))
    code = link.rsplit("/", 1)[1]
    assert len(code) == 16  # 96 bits
    assert parse_qs(urlparse(str(sent["callback_url"])).query)["ref"] == [sent["reference"]]
    # And the message is accepted by "first", with its segments counted
    [message] = wallet.followups()[0]["messages"]
    assert (message["state"], message["attempts"][0]["provider"]) == ("accepted", "first")
    # And the short link leads to the survey; a made-up one is the same 404 as any bad link
    opened = wallet.api.get(f"/r/{code}", follow_redirects=False)
    assert opened.status_code == 302
    assert opened.headers["location"].startswith("http://testserver/s/")
    assert wallet.api.get(f"/r/{code[:-1]}x", follow_redirects=False).status_code == 404


def test_a_signed_receipt_marks_delivered_and_an_unsigned_one_changes_nothing(wallet: Wallet) -> None:
    _sms_customer(wallet)
    make_survey(wallet.runtime)
    make_strategy(wallet.runtime, channels=["sms"])
    _invite(wallet)
    provider_id = wallet.followups()[0]["messages"][0]["attempts"][0]["provider_ref"]
    receipt = {"id": provider_id, "status": "delivered", "error": None, "at": "2026-11-23T02:32:00Z"}
    wallet.clock.advance(dt.timedelta(minutes=5))
    # An unsigned receipt, and one signed with another secret, are refused and change nothing
    unsigned = wallet.api.post("/hooks/sms/first/receipts", json=receipt)
    forged = wallet.hook("first", "receipts", receipt, secret="whsec_" + "b3RoZXItc2VjcmV0LXZhbHVlIQ==")
    assert (unsigned.status_code, forged.status_code) == (401, 401)
    assert unsigned.json()["error"]["code"] == "webhook_signature_invalid"
    assert wallet.followups()[0]["messages"][0]["state"] == "accepted"
    # A signed one marks it delivered, at the time the gateway says; a replay changes nothing
    assert wallet.hook("first", "receipts", receipt).status_code == 200
    assert wallet.hook("first", "receipts", {**receipt, "status": "failed"}).status_code == 200
    message = wallet.followups()[0]["messages"][0]
    assert message["state"] == "delivered"
    assert message["delivered_at"].startswith("2026-11-23T02:32:00")
    # A provider nobody configured is a 404
    assert wallet.hook("nobody", "receipts", receipt).json()["error"]["code"] == "provider_not_found"


def test_a_score_by_reply_is_recorded_once_and_thanked_with_the_optional_questions(wallet: Wallet) -> None:
    _sms_customer(wallet)
    make_survey(wallet.runtime)
    make_strategy(wallet.runtime, channels=["sms"])
    _invite(wallet)
    reply = {"id": "in-1", "from": PHONE, "to": "10690000", "text": "９分 很方便", "at": "2026-11-23T02:40:00Z"}
    # When the customer replies with a full-width score, and the gateway posts it twice
    assert wallet.hook("first", "inbound", reply).status_code == 200
    assert wallet.hook("first", "inbound", reply).status_code == 200
    wallet.run()
    # Then the follow-up is answered once, by SMS, with its reward
    [followup] = wallet.followups()
    assert followup["status"] == "responded"
    [response] = wallet.api.get("/api/v1/responses").json()["items"]
    assert (response["nps"], response["channel"], response["source"]) == (9, "sms", "sms_reply")
    rewards = wallet.api.get("/api/v1/customers/c1/rewards").json()
    assert rewards["balance"] == 10
    # And one thank-you went out, with a link to the optional questions
    assert len(wallet.first.sent) == 2
    thanks = str(wallet.first.sent[1]["text"])
    assert thanks.startswith("【钱包】感谢您的评分")
    link = thanks.splitlines()[-1]
    assert link.startswith("http://testserver/r/")
    page = wallet.api.get(link.removeprefix("http://testserver"), follow_redirects=True)
    assert page.status_code == 200


def test_stop_in_full_width_withdraws_sms_consent_and_confirms_once(wallet: Wallet) -> None:
    _sms_customer(wallet)
    make_survey(wallet.runtime)
    for number, text in enumerate(["ＳＴＯＰ", "退订"], start=1):
        body = {"id": f"stop-{number}", "from": PHONE, "to": "10690000", "text": text, "at": None}
        assert wallet.hook("first", "inbound", body).status_code == 200
    wallet.run()
    consents = wallet.api.get("/api/v1/customers/c1").json()["consents"]
    assert consents["feedback"]["sms"] is False
    assert consents["service"]["sms"] is False, "replies about a case stop too, though given by default"
    assert consents["feedback"]["email"] is True
    history = wallet.api.get("/api/v1/customers/c1/consents/history").json()["items"]
    assert {(item["channel"], item["granted"], item["source"]) for item in history if item["channel"] == "sms"} == {
        ("sms", True, "api"),  # given when the customer was created
        ("sms", False, "sms_keyword"),
    }
    [confirmation] = wallet.first.sent
    assert "退订" in str(confirmation["text"])
    # And START gives it back
    body = {"id": "start-1", "from": PHONE, "to": "10690000", "text": "订阅", "at": None}
    wallet.hook("first", "inbound", body)
    assert wallet.api.get("/api/v1/customers/c1").json()["consents"]["feedback"]["sms"] is True


def test_a_failing_gateway_hands_over_to_the_next_and_its_circuit_opens(wallet: Wallet) -> None:
    for number in range(1, 4):
        _sms_customer(wallet, f"c{number}", phone=f"+861381234123{number}")
    make_survey(wallet.runtime)
    make_strategy(wallet.runtime, channels=["sms"])
    # Given the first gateway failing with 503s
    wallet.first.script(*[Answer(503, {"error": "unavailable"})] * 2)
    for number in range(1, 4):
        assert (
            wallet.api.post("/api/v1/events", json={"events": [transfer(f"e{number}", f"c{number}")]}).status_code
            == 200
        )
    wallet.clock.advance(dt.timedelta(minutes=31))
    wallet.run()
    # Then every SMS went out once, through the second gateway
    assert len(wallet.second.sent) == 3
    assert wallet.first.sent == []
    attempts = [m["attempts"] for f in wallet.followups() for m in f["messages"]]
    outcomes = sorted([(a["provider"], a["outcome"], a["error_code"]) for a in tries] for tries in attempts)
    # two tried the first (503) then the second; after two failures in a row its circuit opened
    assert outcomes == sorted(
        [
            [("first", "transient", "http_503"), ("second", "accepted", None)],
            [("first", "transient", "http_503"), ("second", "accepted", None)],
            [("first", "skipped", "circuit_open"), ("second", "accepted", None)],
        ]
    )


def test_a_dead_number_marks_the_phone_and_the_next_followup_falls_to_email(wallet: Wallet) -> None:
    _sms_customer(wallet)
    make_survey(wallet.runtime)
    make_strategy(wallet.runtime, channels=["sms", "email"], recontact_days=0)
    _invite(wallet)
    provider_id = wallet.followups()[0]["messages"][0]["attempts"][0]["provider_ref"]
    receipt = {"id": provider_id, "status": "failed", "error": "invalid_number", "at": None}
    assert wallet.hook("first", "receipts", receipt).status_code == 200
    wallet.run()
    # Then the phone is marked invalid, the message failed, and the follow-up moved on to email
    points = {p["kind"]: p for p in wallet.api.get("/api/v1/customers/c1").json()["contact_points"]}
    assert (points["phone"]["status"], points["phone"]["status_reason"]) == ("invalid", "invalid_number")
    [followup] = wallet.followups()
    assert [m["state"] for m in followup["messages"]] == ["failed", "accepted"]
    assert followup["channel"] == "email"


def test_a_receipt_settles_a_message_whose_send_never_heard_back(wallet: Wallet) -> None:
    _sms_customer(wallet)
    make_survey(wallet.runtime)
    make_strategy(wallet.runtime, channels=["sms", "email"])
    # Given the gateway takes the request and drops the connection without an answer
    wallet.first.script(Answer(drop=True))
    _invite(wallet)
    [followup] = wallet.followups()
    [message] = followup["messages"]
    # Then the message is unknown: never sent again, nor through the other gateway, nor by email
    assert message["state"] == "unknown"
    assert (wallet.second.sent, followup["channel"]) == ([], "sms")
    # When the gateway's receipt comes, naming it by the reference in its callback URL
    [request] = [r for r in wallet.first.received if r.path == "/messages"]
    body = request.json()
    assert isinstance(body, dict)
    query = urlparse(str(body["callback_url"])).query
    receipt = {"id": "gw-late-1", "status": "delivered", "error": None, "at": None}
    assert wallet.hook("first", "receipts", receipt, query=query).status_code == 200
    # Then it is settled: accepted by the first gateway, and delivered
    message = wallet.followups()[0]["messages"][0]
    assert (message["state"], message["delivered_at"] is not None) == ("delivered", True)


def test_words_too_long_for_an_sms_are_refused_when_the_strategy_is_written(wallet: Wallet) -> None:
    make_survey(wallet.runtime)
    long_words = {"zh-CN": {"subject": "回访", "body": "您好" * 400}}
    body = strategy_body(channels=["sms", "email"], message=long_words)
    answer = wallet.api.post("/api/v1/strategies", json=body)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("limit_exceeded", "message.zh-CN.body")
    assert "segments" in error["message"]
    # The same words are fine for a strategy without SMS
    assert wallet.api.post("/api/v1/strategies", json={**body, "channels": ["email"]}).status_code == 201


def test_the_funnel_counts_each_stage_per_channel_and_strategy(wallet: Wallet) -> None:
    for number in (1, 2):
        _sms_customer(wallet, f"c{number}", phone=f"+86138123412{number}0")
    make_survey(wallet.runtime)
    make_strategy(wallet.runtime, channels=["sms"])
    events = [transfer("e1", "c1"), transfer("e2", "c2")]
    assert wallet.api.post("/api/v1/events", json={"events": events}).status_code == 200
    wallet.clock.advance(dt.timedelta(minutes=31))
    wallet.run()
    # Both delivered; c1 follows the link and answers by reply
    for followup in wallet.followups():
        provider_id = followup["messages"][0]["attempts"][0]["provider_ref"]
        wallet.hook("first", "receipts", {"id": provider_id, "status": "delivered", "error": None, "at": None})
    reply = {"id": "in-9", "from": "+8613812341210", "to": "1069", "text": "10", "at": None}
    assert wallet.hook("first", "inbound", reply).status_code == 200
    wallet.run()  # marks the message answered, after the answer's own transaction
    funnel = wallet.api.get("/api/v1/metrics/funnel", params={"group_by": "channel"}).json()
    stages = {"queued": 2, "accepted": 2, "delivered": 2, "opened": 1, "answered": 1}
    assert funnel["groups"] == [{"key": "sms", **stages}]
    by_strategy = wallet.api.get("/api/v1/metrics/funnel", params={"group_by": "strategy"}).json()
    assert by_strategy["groups"] == [{"key": "after-large-transfer", **stages}]
    unknown = wallet.api.get("/api/v1/metrics/funnel", params={"strategy": "nope"})
    assert unknown.status_code == 404


def test_a_reply_holding_a_card_number_is_kept_scrubbed(wallet: Wallet) -> None:
    _sms_customer(wallet)
    make_survey(wallet.runtime)
    make_strategy(wallet.runtime, channels=["sms"])
    _invite(wallet)
    card, email = "６２２２　０２１２　３４５６　７８９０　１２８", "wang.wu.private@example.cn"
    # When the customer replies with a score and their card number, then writes again with more
    score = {"id": "in-s1", "from": PHONE, "to": "1069", "text": f"２分 扣了两次，卡号{card}", "at": None}
    more = {"id": "in-s2", "from": PHONE, "to": "1069", "text": f"CVV 123，邮箱 {email}，打 13912345678", "at": None}
    assert wallet.hook("first", "inbound", score).status_code == 200
    assert wallet.hook("first", "inbound", more).status_code == 200
    wallet.run()
    # Then both words are kept, scrubbed, sealed under the customer's key
    with wallet.runtime.read_session() as session:
        rows = session.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()
        kept = [
            (row.kind, read_comment(session, row.customer_id or 0, row.text_sealed, keys=wallet.runtime.keys))
            for row in rows
            if row.text_sealed is not None
        ]
    assert kept == [
        ("score", "扣了两次，卡号**** **** **** 0128"),
        ("comment", "CVV ***，邮箱 w***@example.cn，打 *******5678"),
    ]
    [response] = wallet.api.get("/api/v1/responses").json()["items"]
    assert response["nps"] == 2
    # And no table holds them in clear, sealed or not
    stored = every_stored_value(wallet.runtime)
    assert [value for value in (card, "6222021234567890128", email, "13912345678") if value.encode() in stored] == []
