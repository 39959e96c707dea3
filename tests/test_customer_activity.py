"""Customer activity: kept at ingest in the batch, exact over whole UTC days, readable by rules as
`customer.stats.*`, and rebuilt identically by `followup customers recompute-stats`."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from followup.customers.models import CustomerActivity, CustomerActivityDay
from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.worker import Worker
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.conftest import MASTER_KEY, SmtpSink
from tests.helpers import survey_path

FOLLOWUP = Path(sys.prefix) / "bin" / "followup"
DAY = dt.timedelta(days=1)


def _event(event_id: str, type_: str, at: dt.datetime, amount: int | None = None, **attributes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"event_id": event_id, "type": type_, "customer_id": "c1", "occurred_at": at.isoformat()}
    if amount is not None:
        event.update(amount=amount, currency="CNY")
    if attributes:
        event["attributes"] = attributes
    return event


def _reachable(api: TestClient, *customer_ids: str) -> None:
    """Customers with an email address and consent to be asked by email, and the survey to ask."""
    for customer_id in customer_ids:
        body = {"email": f"{customer_id}@example.com", "consents": {"feedback": {"email": True}}}
        assert api.put(f"/api/v1/customers/{customer_id}", json=body).status_code == 200
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201


def _stats(api: TestClient, customer_id: str = "c1") -> dict[str, Any]:
    answer = api.get(f"/api/v1/customers/{customer_id}")
    assert answer.status_code == 200, answer.text
    stats: dict[str, Any] = answer.json()["stats"]
    return stats


def test_stats_count_every_kind_over_whole_utc_days(api: TestClient, clock: ManualClock) -> None:
    # Given events of every kind, at the edges of the 30- and 90-day windows (today is 2026-11-23 UTC)
    now = clock.now()
    today = dt.datetime.combine(now.date(), dt.time(), tzinfo=dt.UTC)
    events = [
        _event("p1", "payment.succeeded", now - dt.timedelta(hours=1), 100),
        _event("t1", "transfer.succeeded", today - 29 * DAY, 200),  # first day inside 30
        _event("u1", "topup.succeeded", today - 29 * DAY - dt.timedelta(seconds=1), 300),  # last second outside
        _event("w1", "withdrawal.succeeded", today - 2 * DAY, 999),  # an event, not volume
        _event("f1", "payment.failed", today - DAY, 50),
        _event("d1", "dispute.opened", today - 89 * DAY),  # first day inside 90
        _event("d2", "dispute.opened", today - 90 * DAY),  # outside 90
        _event("q1", "feature.first_used", today - 3 * DAY, feature="qr_pay"),
        _event("q2", "feature.first_used", today - 2 * DAY, feature="qr_pay"),
        _event("q3", "feature.first_used", today - 2 * DAY, feature=7),  # not a feature name
    ]
    # When they arrive over two batches, one of them repeated
    assert api.post("/api/v1/events", json={"events": events[5:]}).json()["accepted"] == 5
    assert api.post("/api/v1/events", json={"events": events}).json() == {
        "accepted": 5,
        "duplicates": 5,
        "rejected": [],
    }
    # Then each stat counts exactly what it says
    stats = _stats(api)
    assert stats == {
        "events_30d": 7,  # p1 t1 w1 f1 q1 q2 q3
        "payments_30d": 1,
        "volume_30d": 300,  # p1 + t1; the withdrawal and the failed payment do not count
        "volume_90d": 600,  # + u1
        "failed_payments_30d": 1,
        "disputes_90d": 1,
        "active_days_30d": 5,  # today (p1), -1 (f1), -2 (w1 q2 q3), -3 (q1), -29 (t1)
        "first_seen_at": (today - 90 * DAY).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "last_active_at": (now - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tx_types": sorted(
            {
                "payment.succeeded",
                "transfer.succeeded",
                "topup.succeeded",
                "withdrawal.succeeded",
                "payment.failed",
                "dispute.opened",
                "feature.first_used",
            }
        ),
        "features_used": ["qr_pay"],
        "last_followup_at": None,
        "last_nps": None,
        "responses_by_channel": {},
    }
    # And a day later the windows have moved on by a day
    clock.advance(DAY)
    later = _stats(api)
    assert (later["events_30d"], later["volume_30d"], later["volume_90d"], later["disputes_90d"]) == (6, 100, 600, 0)


def test_active_days_count_days_not_events(api: TestClient, clock: ManualClock) -> None:
    now = clock.now()
    today = dt.datetime.combine(now.date(), dt.time(), tzinfo=dt.UTC)
    events = [_event(f"e{n}", "payment.succeeded", today + dt.timedelta(minutes=n), 1) for n in range(5)]
    events.append(_event("y", "payment.succeeded", today - dt.timedelta(seconds=1), 1))
    api.post("/api/v1/events", json={"events": events})
    stats = _stats(api)
    assert (stats["events_30d"], stats["active_days_30d"]) == (6, 2)


def test_a_rule_over_stats_chooses_who_is_followed_up(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock
) -> None:
    # Given a strategy for customers who used the QR feature and paid at least twice this month
    _reachable(api, "c1", "c2")
    audience = {
        "all": [
            {"field": "customer.stats.features_used", "op": "contains", "value": "qr_pay"},
            {"field": "customer.stats.payments_30d", "op": "gte", "value": 2},
        ]
    }
    strategy = strategy_body(audience=audience, channels=["email"])
    assert api.post("/api/v1/strategies", json=strategy).status_code == 201, strategy
    now = clock.now()
    events = []
    for customer_id in ("c1", "c2"):
        events += [
            {**_event(f"{customer_id}-q", "feature.first_used", now, feature="qr_pay"), "customer_id": customer_id},
            {**_event(f"{customer_id}-p", "payment.succeeded", now, 10), "customer_id": customer_id},
        ]
    events.append({**_event("c1-p2", "payment.succeeded", now, 10)})
    assert api.post("/api/v1/events", json={"events": events}).json()["accepted"] == 5
    # When a transfer triggers the strategy for both (the batch's own events already count)
    transfers = [transfer("t1", "c1"), transfer("t2", "c2")]
    assert api.post("/api/v1/events", json={"events": transfers}).json()["accepted"] == 2
    # Then only the customer who paid twice is followed up
    followups = api.get("/api/v1/followups").json()["items"]
    assert [(f["customer_id"], f["status"]) for f in followups] == [("c1", "planned")]


def test_a_rule_naming_an_unknown_stat_is_refused_at_save(api: TestClient) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    audience = {"field": "customer.stats.payments_7d", "op": "gte", "value": 1}
    answer = api.post("/api/v1/strategies", json=strategy_body(audience=audience))
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "unknown_field"
    assert "payments_7d" in answer.json()["error"]["message"]
    assert "payments_30d" in answer.json()["error"]["message"]
    assert api.get("/api/v1/strategies").json()["total"] == 0


def test_preferred_channel_and_value_tier_are_set_cleared_and_checked(api: TestClient) -> None:
    body = {"preferred_channel": "inapp", "value_tier": "gold"}
    assert api.put("/api/v1/customers/c1", json=body).json() | body == api.get("/api/v1/customers/c1").json()
    assert api.put("/api/v1/customers/c1", json={"locale": "en"}).json()["preferred_channel"] == "inapp"
    cleared = api.put("/api/v1/customers/c1", json={"preferred_channel": None}).json()
    assert (cleared["preferred_channel"], cleared["value_tier"]) == (None, "gold")
    refused = api.put("/api/v1/customers/c1", json={"preferred_channel": "pigeon"})
    assert refused.status_code == 422
    assert api.put("/api/v1/customers/c1", json={"value_tier": "a\nb"}).status_code == 422
    assert api.get("/api/v1/customers/c1").json()["value_tier"] == "gold"


def _activity(runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    with runtime.read_session() as session:
        return {
            "buckets": sorted(tuple(row) for row in session.execute(select(CustomerActivityDay.__table__))),
            "summary": [
                (
                    row.customer_id,
                    row.last_followup_at,
                    row.last_nps,
                    row.last_nps_at,
                    json.dumps(row.responses_by_channel, sort_keys=True),
                )
                for row in session.scalars(select(CustomerActivity).order_by(CustomerActivity.customer_id))
            ],
        }


def test_recompute_stats_gives_exactly_what_ingest_and_answers_kept(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock
) -> None:
    # Given customers followed up, answering, and events in several batches, out of order and repeated
    _reachable(api, "c1", "c2")
    assert api.post("/api/v1/strategies", json=strategy_body(channels=["email"])).status_code == 201
    now = clock.now()
    kinds = ["payment.succeeded", "payment.failed", "topup.succeeded", "dispute.opened", "feature.first_used"]
    events = [
        {
            **_event(f"e{n}", kinds[n % 5], now - dt.timedelta(hours=7 * n), 10 * n, feature=f"f{n % 3}"),
            "customer_id": f"c{n % 2 + 1}",
        }
        for n in range(40)
    ]
    for start in (20, 0, 10):
        api.post("/api/v1/events", json={"events": events[start : start + 15]})
    api.post("/api/v1/events", json={"events": [transfer("t1", "c1"), transfer("t2", "c2")]})
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()
    first, _ = smtp.wait_for(2)
    assert api.post(survey_path(first), data={"step": "rating", "nps": "9"}, follow_redirects=False).status_code == 303
    Worker(runtime).run_until_idle()  # counts the answer for the customer's channel statistics
    kept = _activity(runtime)
    assert len(kept["buckets"]) > 20
    assert any(row[1] is not None and row[2] == 9 for row in kept["summary"])  # last follow-up and NPS kept
    # When the stats are recomputed from the logs by the command an operator runs
    env = {name: value for name, value in os.environ.items() if not name.startswith("FOLLOWUP_")}
    env.update(FOLLOWUP_DATABASE_URL=runtime.settings.database_url, FOLLOWUP_MASTER_KEY=MASTER_KEY)
    done = subprocess.run(
        [str(FOLLOWUP), "customers", "recompute-stats"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"events": 37}  # e0 to e34 and the two transfers
    # Then every row is what ingest, the worker and the answer had kept
    assert _activity(runtime) == kept
