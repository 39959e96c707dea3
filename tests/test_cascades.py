"""Timed cascades: each next channel is tried only if its condition still holds when its time
comes, inside the customer's allowed hours, and the whole follow-up spends one unit of the budget."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient

from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.worker import Worker
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy, strategy_body
from tests.builders.surveys import make_survey, survey_body


def _followups(api: TestClient) -> dict[str, dict[str, Any]]:
    return {item["customer_id"]: item for item in api.get("/api/v1/followups").json()["items"]}


def _start(runtime: Runtime, api: TestClient, clock: ManualClock, channels: list[Any]) -> None:
    for customer in ("c1", "c2"):
        make_customer(runtime, customer)
    make_survey(runtime)
    make_strategy(runtime, channels=channels, remind_after=None)
    events = [transfer("e1", "c1"), transfer("e2", "c2")]
    assert api.post("/api/v1/events", json={"events": events}).status_code == 200
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()


def test_the_next_channel_goes_only_to_whoever_did_not_open_in_time(
    runtime: Runtime, api: TestClient, clock: ManualClock, smtp: Any
) -> None:
    _start(runtime, api, clock, [{"channel": "inapp"}, {"channel": "email", "if_not_opened_within": "PT2H"}])
    # c1 reads the inbox item; c2 does not
    [item] = api.get("/api/v1/customers/c1/inbox").json()
    assert api.post(f"/api/v1/customers/c1/inbox/{item['id']}/read").status_code == 200
    # Before two hours nothing more goes out
    clock.advance(dt.timedelta(minutes=119))
    Worker(runtime).run_until_idle()
    assert smtp.messages == []
    # After them, c2 is emailed and c1 is not
    clock.advance(dt.timedelta(minutes=2))
    Worker(runtime).run_until_idle()
    assert [message["To"] for message in smtp.messages] == ["c2@example.com"]
    followups = _followups(api)
    assert [m["channel"] for m in followups["c2"]["messages"]] == ["inapp", "email"]
    assert [m["channel"] for m in followups["c1"]["messages"]] == ["inapp"]
    assert followups["c2"]["channel"] == "email"
    actions = [h["action"] for h in followups["c1"]["history"]]
    assert "cascade_skipped" in actions
    # One follow-up each, one unit of the budget each
    assert len(followups) == 2


def test_an_answer_stops_the_if_not_answered_step_and_quiet_hours_hold_it(
    runtime: Runtime, api: TestClient, clock: ManualClock, smtp: Any
) -> None:
    _start(runtime, api, clock, [{"channel": "inapp"}, {"channel": "email", "if_not_answered_within": "PT10H"}])
    # c1 answers through the inbox item's link
    [item] = api.get("/api/v1/customers/c1/inbox").json()
    token = item["link"].rsplit("/", 1)[1]
    api.post(f"/s/{token}", data={"nps": "8"}, follow_redirects=False)
    # Ten hours after 10:31 Shanghai time is 20:31, before quiet hours (21:00): c2 is emailed then
    clock.advance(dt.timedelta(hours=10, minutes=1))
    Worker(runtime).run_until_idle()
    assert [message["To"] for message in smtp.messages] == ["c2@example.com"]
    assert _followups(api)["c1"]["status"] == "responded"


def test_a_step_falling_in_quiet_hours_waits_for_the_morning(
    runtime: Runtime, api: TestClient, clock: ManualClock, smtp: Any
) -> None:
    _start(runtime, api, clock, [{"channel": "inapp"}, {"channel": "email", "if_not_opened_within": "PT11H"}])
    # 10:31 + 11h = 21:31 in Shanghai: inside quiet hours, so the email waits until 08:00
    clock.advance(dt.timedelta(hours=11, minutes=1))
    Worker(runtime).run_until_idle()
    assert smtp.messages == []
    clock.advance(dt.timedelta(hours=11))  # 08:32 the next morning
    Worker(runtime).run_until_idle()
    assert sorted(message["To"] for message in smtp.messages) == ["c1@example.com", "c2@example.com"]


def test_a_cascade_is_checked_when_the_strategy_is_written(api: TestClient) -> None:
    api.post("/api/v1/surveys", json=survey_body())
    first_waits = strategy_body(channels=[{"channel": "inapp", "if_not_opened_within": "PT1H"}, "email"])
    both = strategy_body(
        channels=["inapp", {"channel": "email", "if_not_opened_within": "PT1H", "if_not_answered_within": "P1D"}]
    )
    too_soon = strategy_body(channels=["inapp", {"channel": "email", "if_not_opened_within": "PT10S"}])
    for body in (first_waits, both, too_soon):
        answer = api.post("/api/v1/strategies", json=body)
        assert answer.status_code == 422, answer.text
