"""Ingest: customer activity adds up, the last event time only moves forward, large batches are
stored whole, and the collector pause leaves the process as it found it."""

from __future__ import annotations

import datetime as dt
import gc
import json

from fastapi.testclient import TestClient
from sqlalchemy import text

from followup.kernel.collector import collector_paused
from followup.runtime import Runtime
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def test_activity_counts_every_new_event_and_keeps_the_latest_time_whatever_the_order(api: TestClient) -> None:
    # Given events of one customer arriving out of order, across two batches, with a replay
    late = dt.datetime(2026, 11, 20, 18, 0, tzinfo=SHANGHAI)
    early = dt.datetime(2026, 11, 2, 9, 0, tzinfo=SHANGHAI)
    middle = dt.datetime(2026, 11, 10, 12, 0, tzinfo=SHANGHAI)
    first = api.post(
        "/api/v1/events",
        json={"events": [transfer("e1", "c9", occurred_at=middle), transfer("e2", "c9", occurred_at=late)]},
    )
    second = api.post(
        "/api/v1/events",
        json={"events": [transfer("e3", "c9", occurred_at=early), transfer("e2", "c9", occurred_at=late)]},
    )

    # Then each new event counts once and the last event time is the latest one, in UTC
    assert (first.json()["accepted"], second.json()["accepted"], second.json()["duplicates"]) == (2, 1, 1)
    customer = api.get("/api/v1/customers/c9").json()
    assert customer["event_count"] == 3
    assert customer["last_event_at"] == "2026-11-20T10:00:00Z"


def test_a_full_batch_is_stored_counted_and_planned_across_statement_chunks(api: TestClient, runtime: Runtime) -> None:
    # Given a strategy, a reachable customer and the largest batch the API takes: 10,000 events of
    # 4,000 customers, more bound values than one statement may carry on either database
    make_survey(runtime)
    make_strategy(runtime)
    make_customer(runtime, "c-0000")
    base = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)
    events = [
        transfer(
            f"e-{n:05d}",
            f"c-{n % 4000:04d}",
            amount=600000 if n % 4000 == 0 else 1000,
            occurred_at=base + dt.timedelta(seconds=n),
            attributes={"note": "转账 ✓", "n": n},
        )
        for n in range(10_000)
    ]

    response = api.post("/api/v1/events", json={"events": events})

    # Then every event is stored once, every customer's activity adds up, and only the large
    # transfers of the one customer who can be reached led to a planned follow-up
    assert response.status_code == 200
    assert response.json() == {"accepted": 10_000, "duplicates": 0, "rejected": []}
    with runtime.read_session() as session:
        stored = session.execute(text("SELECT count(*), count(DISTINCT customer_id) FROM events")).one()
        counts = session.execute(
            text("SELECT sum(event_count), min(event_count), max(event_count) FROM customers")
        ).one()
        statuses = dict(session.execute(text("SELECT status, count(*) FROM followups GROUP BY status")).all())
        attributes = session.execute(text("SELECT attributes FROM events WHERE event_id = 'e-09999'")).scalar_one()
    assert tuple(stored) == (10_000, 4000)
    assert tuple(counts) == (10_000, 2, 3)
    assert statuses == {"planned": 1, "suppressed": 2}  # c-0000's 2nd and 3rd large transfer: duplicate
    assert (json.loads(attributes) if isinstance(attributes, str) else attributes) == {"note": "转账 ✓", "n": 9999}
    customer = api.get("/api/v1/customers/c-0001").json()
    assert (customer["event_count"], customer["last_event_at"]) == (3, "2026-11-20T10:13:21Z")


def test_the_collector_rests_during_a_batch_and_comes_back_as_it_was(api: TestClient) -> None:
    # Given the cyclic collector switched on, then off
    seen: list[bool] = []
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            with collector_paused():
                with collector_paused():  # nested, as a batch inside a batch would be
                    inside = gc.isenabled()
                after_inner = gc.isenabled()
            seen.append(inside or after_inner)
            # and a real batch, one that fails halfway through validation included
            api.post("/api/v1/events", json={"events": [transfer("g1", "c-gc"), {"event_id": "broken"}]})
            # Then the collector is as it was before each
            assert gc.isenabled() is enabled
        finally:
            gc.enable()
    assert seen == [False, False]
