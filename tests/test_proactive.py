"""Proactive strategies: everyone in an audience once per cadence period, spread across the period;
newcomers picked up, leavers' unsent follow-ups cancelled, the owner's name on the email."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from email.utils import parseaddr
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from followup.customers.models import Customer
from followup.followups.models import Followup
from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.worker import Worker
from tests.builders.surveys import survey_body
from tests.conftest import START, SmtpSink

UTC = dt.UTC
OWNER = {"name": "王芳 Wang Fang", "email": "wang.fang@wallet.example"}


def _proactive(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": "top-tier-care",
        "kind": "proactive",
        "audience": {"segment": "top-tier"},
        "cadence": "P7D",
        "channels": ["email"],
        "survey": "payment-csat",
        "owner": OWNER,
        "expire_after": "P3D",
    }
    body.update(overrides)
    return body


def _customer(api: TestClient, customer_id: str, *, tier: str = "top", time_zone: str = "Asia/Shanghai") -> None:
    body = {
        "email": f"{customer_id}@example.com",
        "time_zone": time_zone,
        "value_tier": tier,
        "consents": {"feedback": {"email": True, "inapp": True}},
    }
    assert api.put(f"/api/v1/customers/{customer_id}", json=body).status_code == 200


def _setup(api: TestClient, count: int, **strategy: Any) -> dict[str, Any]:
    for n in range(count):
        _customer(api, f"c{n:03}")
    segment = {
        "key": "top-tier",
        "name": "Top value tier",
        "rule": {"field": "customer.value_tier", "op": "eq", "value": "top"},
    }
    assert api.post("/api/v1/segments", json=segment).status_code == 201
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    created = api.post("/api/v1/strategies", json=_proactive(**strategy))
    assert created.status_code == 201, created.text
    return dict(created.json())


def _followups(runtime: Runtime) -> list[Any]:
    columns = (Customer.external_id, Followup.run_key, Followup.status, Followup.reason, Followup.planned_at)
    with runtime.read_session() as session:
        query = select(*columns).join(Customer, Customer.id == Followup.customer_id).order_by(Followup.id)
        return list(session.execute(query))


def _run(runtime: Runtime, clock: ManualClock, *, until: dt.datetime, step: dt.timedelta) -> None:
    while clock.now() < until:
        clock.advance(step)
        Worker(runtime).run_until_idle()


def test_everyone_is_asked_once_a_period_spread_across_it(
    api: TestClient, runtime: Runtime, clock: ManualClock
) -> None:
    # Given 120 top-tier customers and a weekly proactive strategy created now
    created = _setup(api, 120)
    assert created["next_run_at"] == START.strftime("%Y-%m-%dT%H:%M:%SZ")
    # When the worker runs every six hours for two weeks
    Worker(runtime).run_until_idle()
    _run(runtime, clock, until=START + dt.timedelta(days=14), step=dt.timedelta(hours=6))
    rows = _followups(runtime)
    # Then each customer has exactly one follow-up in each period
    per_period = Counter(row.run_key for row in rows)
    assert per_period == {"period:0": 120, "period:1": 120}
    assert len({(row.external_id, row.run_key) for row in rows}) == 240
    # And the first period's follow-ups are spread over its seven days, not bunched on its first
    # (the slots after its last six-hourly sweep are planned by the first sweep of the next)
    first_period = [row.planned_at for row in rows if row.run_key == "period:0"]
    assert all(START <= at <= START + dt.timedelta(days=7) for at in first_period)
    by_day = Counter(min(6, int((at - START) / dt.timedelta(days=1))) for at in first_period)
    assert sorted(by_day) == list(range(7))
    assert max(by_day.values()) <= 35, by_day
    # And each customer is asked a cadence apart (to the sweep's six-hour step)
    at: dict[str, list[dt.datetime]] = {}
    for row in rows:
        at.setdefault(row.external_id, []).append(row.planned_at)
    gaps = {b - a for a, b in at.values()}
    assert all(dt.timedelta(days=7) - dt.timedelta(hours=6) <= gap <= dt.timedelta(days=7, hours=6) for gap in gaps)


def test_a_newcomer_is_picked_up_and_a_leaver_is_not_sent(
    api: TestClient, runtime: Runtime, clock: ManualClock
) -> None:
    # Given a weekly proactive strategy over ten customers, swept through its first period's end
    _setup(api, 10)
    _run(runtime, clock, until=START + dt.timedelta(days=6, hours=23), step=dt.timedelta(hours=1))
    assert len(_followups(runtime)) == 10
    # When a customer joins the audience in the period's last hour, after their slot has passed
    _customer(api, "late")
    clock.advance(dt.timedelta(minutes=90))
    Worker(runtime).run_until_idle()
    # Then the first sweep after the period's end still plans them in that period
    late = [row for row in _followups(runtime) if row.external_id == "late" and row.run_key == "period:0"]
    assert [row.status for row in late] == ["invited"]
    # When a customer, deferred by quiet hours (01:00 where they live), leaves the audience
    _customer(api, "night", time_zone="Europe/London")
    clock.set(START + dt.timedelta(days=13, hours=23))  # 01:00 in London, late in the second period
    Worker(runtime).run_until_idle()
    (night,) = [row for row in _followups(runtime) if row.external_id == "night" and row.run_key == "period:1"]
    assert night.status == "planned"  # held until morning
    _customer(api, "night", tier="mass", time_zone="Europe/London")
    clock.advance(dt.timedelta(hours=1))
    Worker(runtime).run_until_idle()
    # Then their follow-up is suppressed before it is sent
    (night,) = [row for row in _followups(runtime) if row.external_id == "night" and row.run_key == "period:1"]
    assert (night.status, night.reason) == ("suppressed", "left_audience")


def test_the_email_comes_from_the_owner(api: TestClient, runtime: Runtime, clock: ManualClock, smtp: SmtpSink) -> None:
    _setup(api, 3)
    _run(runtime, clock, until=START + dt.timedelta(days=7), step=dt.timedelta(hours=6))
    assert len(smtp.messages) == 3
    for message in smtp.messages:
        (sender,) = message["From"].addresses
        assert sender.display_name == OWNER["name"]
        assert sender.addr_spec == parseaddr(runtime.settings.smtp_from)[1]
        assert str(message["Reply-To"]) == OWNER["email"]


def test_two_workers_sweep_once(api: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    _setup(api, 40, channels=["inapp"])
    clock.advance(dt.timedelta(days=7) - dt.timedelta(minutes=1))  # every slot of the first period has come
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait(timeout=10)
            Worker(runtime).run_timers()
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with runtime.read_session() as session:
        count = session.scalar(select(func.count()).select_from(Followup))
        distinct = session.scalar(select(func.count(func.distinct(Followup.customer_id))))
    assert (count, distinct) == (40, 40)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"cadence": None}, "cadence", "needs a cadence"),
        ({"cadence": "P1D"}, "cadence", "between P7D and P366D"),
        ({"cadence": "P2Y"}, "cadence", "ISO 8601"),
        ({"owner": {"name": "A", "email": "not-an-address"}}, "owner.email", ""),
        ({"owner": {"name": "A\r\nBcc: x@y.z", "email": "a@b.example"}}, "owner.name", ""),
        ({"channels": ["wechat"]}, "channels", "available: email, inapp, phone"),
        ({"audience": {"field": "event.amount", "op": "gt", "value": 1}}, "audience", "customer.* fields only"),
        ({"kind": "event", "trigger": {"event_types": ["payment.succeeded"]}}, "cadence", "no cadence"),
    ],
)
def test_a_bad_proactive_strategy_is_refused_and_nothing_is_stored(
    api: TestClient, change: dict[str, Any], field: str, words: str
) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    segment = {"key": "top-tier", "name": "Top", "rule": {"field": "customer.value_tier", "op": "eq", "value": "top"}}
    assert api.post("/api/v1/segments", json=segment).status_code == 201
    body = {key: value for key, value in _proactive(**change).items() if value is not None}
    answer = api.post("/api/v1/strategies", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field, error
    assert words in error["message"], error
    assert api.get("/api/v1/strategies").json()["total"] == 0
