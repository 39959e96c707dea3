"""Preview before going live: what a strategy would do, written nowhere, and equal to what a real
run then plans on the same data and clock."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from followup.followups.models import Followup
from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.worker import Worker
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.conftest import START
from tests.test_api_errors import database_rows

UTC = dt.UTC


def _customers(api: TestClient, count: int, *, consent_every: int = 4) -> list[str]:
    """Customers c000…; every `consent_every`-th has no consent; every fifth is staff."""
    ids = [f"c{n:03}" for n in range(count)]
    for n, customer_id in enumerate(ids):
        body = {
            "email": f"{customer_id}@example.com",
            "attributes": {"tier": "staff" if n % 5 == 4 else "gold", "panel": True},
            "consents": {"feedback": {"email": n % consent_every != 0, "inapp": False}},
        }
        assert api.put(f"/api/v1/customers/{customer_id}", json=body).status_code == 200
    return ids


def _transfers(ids: list[str], prefix: str) -> list[dict[str, Any]]:
    """One transfer each, an hour apart, the last an hour ago; every third is too small."""
    count = len(ids)
    return [
        transfer(
            f"{prefix}-{customer_id}",
            customer_id,
            amount=100 if n % 3 == 2 else 700_000,
            occurred_at=START - dt.timedelta(hours=count - n),
        )
        for n, customer_id in enumerate(ids)
    ]


def _planned(runtime: Runtime) -> int:
    with runtime.read_session() as session:
        return int(
            session.scalar(select(func.count()).select_from(Followup).where(Followup.status != "suppressed")) or 0
        )


def test_an_event_strategy_preview_writes_nothing_and_equals_the_real_run(api: TestClient, runtime: Runtime) -> None:
    # Given customers and a day of their transfers, stored before any strategy exists
    ids = _customers(api, 24)
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/events", json={"events": _transfers(ids, "old")}).json()["accepted"] == 24
    body = strategy_body(channels=["email"], delay="PT0S", recontact_days=0)
    # When the strategy is previewed, not saved
    before = database_rows(runtime)
    answer = api.post("/api/v1/strategies/preview", json={"strategy": body, "days": 30})
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    # Then nothing was written
    assert database_rows(runtime) == before
    # And it says what the rule and the policy would do with those transfers
    large = [c for n, c in enumerate(ids) if n % 3 != 2]
    matched = [c for c in large if int(c[1:]) % 5 != 4]  # staff are not in the audience
    refused = [c for c in matched if int(c[1:]) % 4 == 0]  # no consent
    assert preview["matched"] == len(matched)
    assert preview["would_contact"] == len(matched) - len(refused)
    assert preview["refused"] == {"no_consent": len(refused)}
    assert preview["by_channel"] == {"email": preview["would_contact"]}
    assert sum(day["count"] for day in preview["by_day"]) == preview["would_contact"]
    assert len(preview["sample"]) == min(20, preview["would_contact"])
    assert all(s["email"].endswith("***@example.com") for s in preview["sample"])  # masked
    # When it is saved and the same transfers happen again, on the same clock
    assert api.post("/api/v1/strategies", json=body).status_code == 201
    assert api.post("/api/v1/events", json={"events": _transfers(ids, "new")}).json()["accepted"] == 24
    # Then the real run planned exactly what the preview said
    assert _planned(runtime) == preview["would_contact"]


def test_a_periodic_preview_is_its_next_wave(api: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    # Given a monthly panel saved on 23 November, previewed when its first wave comes
    _customers(api, 30)
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    panel = {
        "key": "monthly-nps",
        "kind": "periodic",
        "schedule": {"cron": "0 10 1 * *", "time_zone": "Asia/Shanghai"},
        "audience": {"field": "customer.attributes.tier", "op": "eq", "value": "gold"},
        "sample_rate": 0.5,
        "spread": "PT4H",
        "channels": ["email"],
        "survey": "payment-csat",
    }
    assert api.post("/api/v1/strategies", json=panel).status_code == 201
    clock.set(dt.datetime(2026, 12, 1, 2, 0, tzinfo=UTC))
    before = database_rows(runtime)
    answer = api.post("/api/v1/strategies/monthly-nps/preview", json={})
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert database_rows(runtime) == before
    assert preview["matched"] == 24  # the gold customers: all but every fifth
    assert 0 < preview["would_contact"] < preview["matched"]
    assert sum(preview["by_channel"].values()) == preview["would_contact"]
    # When the worker plans the wave on the same data and clock
    Worker(runtime).run_timers()
    # Then it plans what the preview said
    assert _planned(runtime) == preview["would_contact"]


def test_a_proactive_preview_is_its_period_spread_over_its_days(api: TestClient, runtime: Runtime) -> None:
    _customers(api, 40, consent_every=1_000)
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    body = {
        "key": "gold-care",
        "kind": "proactive",
        "audience": {"field": "customer.attributes.tier", "op": "eq", "value": "gold"},
        "cadence": "P30D",
        "channels": ["email"],
        "survey": "payment-csat",
    }
    before = database_rows(runtime)
    answer = api.post("/api/v1/strategies/preview", json={"strategy": body})
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert database_rows(runtime) == before
    # 32 gold customers; c000 has no consent (every 1,000th)
    assert (preview["matched"], preview["would_contact"], preview["refused"]) == (32, 31, {"no_consent": 1})
    assert len(preview["by_day"]) >= 10  # spread over the month, not on its first day
    assert all(START.date() <= dt.date.fromisoformat(day["date"]) for day in preview["by_day"])


def test_a_bad_preview_is_refused(api: TestClient, runtime: Runtime) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    before = database_rows(runtime)
    bad = api.post("/api/v1/strategies/preview", json={"strategy": strategy_body(channels=["sms"])})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "channel_not_available")
    days = api.post("/api/v1/strategies/preview", json={"strategy": strategy_body(), "days": 0})
    assert (days.status_code, days.json()["error"]["field"]) == (422, "days")
    assert api.post("/api/v1/strategies/nothing/preview", json={}).status_code == 404
    assert database_rows(runtime) == before
    assert api.post("/api/v1/strategies", json=strategy_body()).status_code == 201
    taken = api.post("/api/v1/strategies/preview", json={"strategy": strategy_body()})
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "strategy_exists")
