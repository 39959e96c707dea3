"""One interview slot raced by 50 customers booking it at the same moment against the real served
app: the database lets exactly one have it."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections import Counter

import httpx
from fastapi.testclient import TestClient

from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.worker import Worker
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.conftest import LiveServer, SmtpSink
from tests.test_interviews import TEN, TWO, interview_survey

RACERS = 50
_LINK = re.compile(r"/s/[A-Za-z0-9_-]+")


def test_50_concurrent_bookings_of_one_slot_book_it_once(
    runtime: Runtime, api: TestClient, smtp: SmtpSink, live_server: LiveServer, clock: ManualClock
) -> None:
    # Given 50 customers, each invited in-app and past the rating, on the page offering 10:00
    customers = [f"c{n:02d}" for n in range(RACERS)]
    for customer_id in customers:
        body = {
            "email": f"{customer_id}@example.com",
            "locale": "en",
            "time_zone": "Asia/Shanghai",
            "consents": {"feedback": {"email": True, "inapp": True}},
        }
        assert api.put(f"/api/v1/customers/{customer_id}", json=body).status_code == 200
    assert api.post("/api/v1/surveys", json=interview_survey()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body(channels=["inapp"])).status_code == 201
    events = [transfer(f"e-{customer_id}", customer_id) for customer_id in customers]
    assert api.post("/api/v1/events", json={"events": events}).json()["accepted"] == RACERS
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()
    paths = []
    for customer_id in customers:
        [item] = api.get(f"/api/v1/customers/{customer_id}/inbox").json()
        match = _LINK.search(item["link"])
        assert match
        paths.append(match.group())
        assert api.post(match.group(), data={"step": "rating", "nps": "9"}).status_code == 200

    # When all 50 post 10:00 at the same moment
    start = threading.Barrier(RACERS, timeout=30)
    statuses: dict[str, int] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def book(path: str) -> None:
        try:
            with httpx.Client(base_url=live_server.url, timeout=60) as client:
                start.wait()
                status = client.post(path, data={"step": "details", "talk": TEN.isoformat()}).status_code
            with lock:
                statuses[path] = status
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            with lock:
                errors.append(exc)

    racers = [threading.Thread(target=book, args=(path,)) for path in paths]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=90)
    assert not any(racer.is_alive() for racer in racers), "a request never finished"
    assert errors == []

    # Then exactly one got it; the 49 others were told it was taken
    assert Counter(statuses.values()) == Counter({200: 1, 409: RACERS - 1})
    [interview] = api.get("/api/v1/interviews").json()["items"]
    [winner] = [path for path, status in statuses.items() if status == 200]
    assert interview["customer_id"] == customers[paths.index(winner)]
    assert interview["slot"] == TEN.isoformat()

    # And nothing of the losers' step was kept: their page still offers the other times, not 10:00
    loser = next(path for path, status in statuses.items() if status == 409)
    page = api.get(loser)
    assert page.status_code == 200
    assert re.findall(r'name="talk" value="([^"]+)"', page.text)[:1] == [TWO.isoformat()]
    completed = [r for r in api.get("/api/v1/responses", params={"limit": 100}).json()["items"] if r["completed_at"]]
    assert [r["customer_id"] for r in completed] == [interview["customer_id"]]

    # And one confirmation email goes out, to the winner only
    Worker(runtime).run_until_idle()
    assert [str(email["To"]) for email in smtp.wait_for(2, timeout=1.0)] == [f"{interview['customer_id']}@example.com"]
