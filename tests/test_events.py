"""Customer activity kept by ingest: counts add up and the last event time only moves forward."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from tests.builders.events import transfer

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
