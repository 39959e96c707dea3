"""The whole loop, as a wallet and its customer live it: event in → email → link → answer →
response, reward and case visible through the API."""

from __future__ import annotations

import datetime as dt

import httpx
from fastapi.testclient import TestClient

from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.worker import Worker
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.conftest import LiveServer, SmtpSink
from tests.helpers import html_body, survey_path, text_body


def _set_up_through_api(api: TestClient) -> None:
    response = api.put(
        "/api/v1/customers/c1",
        json={
            "email": "zhang.san@example.com",
            "phone": "+8613812341234",
            "locale": "zh-CN",
            "time_zone": "Asia/Shanghai",
            "attributes": {"tier": "gold"},
            "consents": {"feedback": {"email": True, "sms": False, "inapp": True}},
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["email"] == "z***@example.com"
    assert response.json()["phone"] == "138****1234"
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body()).status_code == 201


def test_event_to_email_to_answer_to_reward_and_case(
    runtime: Runtime, api: TestClient, smtp: SmtpSink, live_server: LiveServer, clock: ManualClock
) -> None:
    # Given a consenting customer, a survey and a strategy after large transfers
    _set_up_through_api(api)

    # When the wallet reports a large transfer and the delay passes
    result = api.post("/api/v1/events", json={"events": [transfer("e1", "c1", amount=600000)]})
    assert result.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    worker = Worker(runtime)
    worker.run_until_idle()
    assert smtp.messages == [], "nothing is sent before the 30-minute delay"
    clock.advance(dt.timedelta(minutes=31))
    worker.run_until_idle()

    # Then exactly one email arrives, in Chinese, with one-click links and a one-click unsubscribe
    messages = smtp.wait_for(1)
    assert len(messages) == 1
    email = messages[0]
    assert email["To"] == "zhang.san@example.com"
    assert "支付体验回访" in str(email["Subject"])
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "?score=10" in text_body(email)
    assert "?score=0" in text_body(email)
    assert "?score=9" in html_body(email)
    path = survey_path(email)

    with httpx.Client(base_url=live_server.url) as customer:
        # A mail scanner's GET shows the page with the score chosen, and records nothing
        page = customer.get(f"{path}?score=3")
        assert page.status_code == 200
        assert 'value="3" required checked' in page.text
        assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert api.get("/api/v1/responses").json()["total"] == 0

        # A score off the scale is refused in the customer's language, naming the question
        wrong = customer.post(path, data={"step": "rating", "nps": "11"})
        assert wrong.status_code == 422
        assert "「您有多大可能向朋友推荐我们？」请选择 0 到 10 之间的分数。" in wrong.text

        # The customer's POST records the rating and leads to the optional questions
        posted = customer.post(path, data={"step": "rating", "nps": "3"})
        assert posted.status_code == 303
        details = customer.get(path)
        assert details.status_code == 200
        assert 'name="comment"' in details.text
        wrong = customer.post(path, data={"step": "details", "csat": "9"})
        assert wrong.status_code == 422
        assert "「您对这次支付满意吗？」请选择 1 到 5 之间的分数。" in wrong.text
        done = customer.post(path, data={"step": "details", "csat": "2", "comment": "转账后有人盗刷我的账户"})
        assert done.status_code == 200

        # And the link is used up: the same 404 page as an unknown link
        assert customer.get(path).status_code == 404
        assert customer.get("/s/" + "x" * 43).text == customer.get(path).text

    responses = api.get("/api/v1/responses").json()
    assert responses["total"] == 1
    answer = responses["items"][0]
    assert (answer["nps"], answer["csat"], answer["customer_id"]) == (3, 2, "c1")
    assert answer["answers"] == {"nps": 3, "csat": 2, "comment": "转账后有人盗刷我的账户"}

    rewards = api.get("/api/v1/customers/c1/rewards").json()
    assert rewards["balance"] == 10
    assert [entry["delta"] for entry in rewards["entries"]] == [10]

    cases = api.get("/api/v1/cases").json()["items"]
    assert sorted((case["kind"], case["priority"]) for case in cases) == [
        ("detractor", "high"),
        ("security", "security"),
    ]
    followups = api.get("/api/v1/followups", params={"customer_id": "c1"}).json()["items"]
    assert [(f["status"], f["channel"]) for f in followups] == [("responded", "email")]
    assert [m["status"] for m in followups[0]["messages"]] == ["sent"]

    summary = api.get("/api/v1/metrics/summary", params={"group_by": "channel"}).json()
    assert summary["total"]["invited"] == 1
    assert summary["total"]["responded"] == 1
    assert summary["total"]["nps"] == -100.0
    assert summary["groups"][0]["key"] == "email"


def test_same_event_three_times_gives_one_followup_one_email_one_reward(
    runtime: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock
) -> None:
    _set_up_through_api(api)
    answers = [api.post("/api/v1/events", json={"events": [transfer("e1", "c1")]}).json() for _ in range(3)]
    assert [(a["accepted"], a["duplicates"]) for a in answers] == [(1, 0), (0, 1), (0, 1)]

    clock.advance(dt.timedelta(hours=1))
    worker = Worker(runtime)
    worker.run_until_idle()
    worker.run_until_idle()
    assert len(smtp.wait_for(1)) == 1
    path = survey_path(smtp.messages[0])
    for _ in range(3):
        api.post(path, data={"step": "rating", "nps": "10"}, follow_redirects=False)

    assert api.get("/api/v1/followups").json()["total"] == 1
    assert len(smtp.wait_for(2, timeout=0.5)) == 1
    assert api.get("/api/v1/customers/c1/rewards").json()["balance"] == 10
    assert api.get("/api/v1/responses").json()["total"] == 1
    assert api.get("/api/v1/cases").json()["total"] == 0


def test_reminder_then_expiry_when_no_answer(
    runtime: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock
) -> None:
    _set_up_through_api(api)
    api.post("/api/v1/events", json={"events": [transfer("e1", "c1")]})
    worker = Worker(runtime)
    clock.advance(dt.timedelta(minutes=31))
    worker.run_until_idle()
    assert len(smtp.wait_for(1)) == 1

    clock.advance(dt.timedelta(days=2))
    worker.run_until_idle()
    messages = smtp.wait_for(2)
    assert len(messages) == 2
    assert "提醒" in str(messages[1]["Subject"])

    clock.advance(dt.timedelta(days=5, minutes=1))
    worker.run_until_idle()
    followup = api.get("/api/v1/followups").json()["items"][0]
    assert followup["status"] == "expired"
    assert [m["step"] for m in followup["messages"]] == ["invite", "remind"]
    assert api.get(survey_path(messages[1])).status_code == 404
    assert len(smtp.wait_for(3, timeout=0.3)) == 2
