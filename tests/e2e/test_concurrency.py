"""One invitation token raced by 50 concurrent one-click POSTs against the real served app."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import httpx
from fastapi.testclient import TestClient

from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.worker import Worker
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey
from tests.conftest import LiveServer, SmtpSink
from tests.helpers import survey_path

RACERS = 50
REWARD_POINTS = 10  # the builder strategy's reward


def test_one_token_posted_by_50_concurrent_requests_records_exactly_one_answer(
    runtime: Runtime, api: TestClient, smtp: SmtpSink, live_server: LiveServer, clock: ManualClock
) -> None:
    # Given a customer who received an invitation email with a one-click link
    make_customer(runtime, "c1")
    make_survey(runtime)
    make_strategy(runtime, reward={"points": REWARD_POINTS})
    assert api.post("/api/v1/events", json={"events": [transfer("e1", "c1")]}).json()["accepted"] == 1
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()
    [email] = smtp.wait_for(1)
    path = survey_path(email)

    # When 50 clients POST the same rating on that link at the same moment
    start = threading.Barrier(RACERS, timeout=30)
    statuses: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def answer() -> None:
        try:
            with httpx.Client(base_url=live_server.url, timeout=30) as client:
                start.wait()
                status = client.post(path, data={"step": "rating", "nps": "9"}).status_code
            with lock:
                statuses.append(status)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            with lock:
                errors.append(exc)

    racers = [threading.Thread(target=answer) for _ in range(RACERS)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=60)
    assert not any(racer.is_alive() for racer in racers), "a request never finished"
    assert errors == []

    # Then exactly one request recorded the answer; all others got the plain 404 page
    assert Counter(statuses) == Counter({303: 1, 404: RACERS - 1})

    # And there is one response, one reward ledger entry, and the points were granted once
    responses = api.get("/api/v1/responses").json()
    assert responses["total"] == 1
    assert (responses["items"][0]["customer_id"], responses["items"][0]["nps"]) == ("c1", 9)
    rewards = api.get("/api/v1/customers/c1/rewards").json()
    assert rewards["balance"] == REWARD_POINTS
    assert [entry["delta"] for entry in rewards["entries"]] == [REWARD_POINTS]

    # And, once the worker has done what the answer left to it, the follow-up is answered once,
    # with no case opened for a promoter, and no second email
    Worker(runtime).run_until_idle()
    [followup] = api.get("/api/v1/followups", params={"customer_id": "c1"}).json()["items"]
    assert followup["status"] == "responded"
    assert [h["action"] for h in followup["history"]].count("responded") == 1
    assert api.get("/api/v1/cases").json()["total"] == 0
    assert len(smtp.wait_for(2, timeout=0.3)) == 1
