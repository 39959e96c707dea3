"""Periodic strategies: a cron schedule in a time zone, one wave per firing, the audience found in
the database at that moment, a sticky sample per wave, a cooldown, a cap, and the follow-ups
spread over the wave's window. Waves are planned once, by one worker, and caught up once."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import sys
import threading
import zoneinfo
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from followup.followups.models import Followup
from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.strategies.models import Wave
from followup.strategies.schedule import next_firing
from followup.worker import Worker
from tests.builders.surveys import survey_body

UTC = dt.UTC
# START in conftest is 2026-11-23T02:00Z: 10:00 in Shanghai, inside sending hours.
FIRST_WAVE = dt.datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 on the 1st in Shanghai


def _periodic(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": "monthly-nps",
        "kind": "periodic",
        "schedule": {"cron": "0 10 1 * *", "time_zone": "Asia/Shanghai"},
        "audience": {"all": [{"field": "customer.attributes.panel", "op": "eq", "value": True}]},
        "sample_rate": 1.0,
        "max_per_wave": 5000,
        "cooldown_days": 0,
        "spread": "PT0S",
        "channels": ["email", "inapp"],
        "survey": "payment-csat",
        "expire_after": "P7D",
    }
    body.update(overrides)
    return body


def _customers(api: TestClient, count: int, *, panel: bool = True, prefix: str = "c") -> list[str]:
    ids = [f"{prefix}{n:03}" for n in range(count)]
    for customer_id in ids:
        body = {
            "email": f"{customer_id}@example.com",
            "attributes": {"panel": panel},
            "consents": {"feedback": {"email": True, "inapp": True}},
        }
        assert api.put(f"/api/v1/customers/{customer_id}", json=body).status_code == 200
    return ids


def _setup(api: TestClient, count: int = 10, **strategy: Any) -> dict[str, Any]:
    _customers(api, count)
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    created = api.post("/api/v1/strategies", json=_periodic(**strategy))
    assert created.status_code == 201, created.text
    return dict(created.json())


def _followups(runtime: Runtime) -> list[Any]:
    """Every follow-up as a row: customer_id, run_key, status, reason, due_at."""
    columns = (Followup.customer_id, Followup.run_key, Followup.status, Followup.reason, Followup.due_at)
    with runtime.read_session() as session:
        return list(session.execute(select(*columns).order_by(Followup.id)))


def _waves(api: TestClient, key: str = "monthly-nps") -> list[dict[str, Any]]:
    answer = api.get(f"/api/v1/strategies/{key}/waves")
    assert answer.status_code == 200
    return list(answer.json()["items"])


def test_the_first_wave_is_the_next_firing_and_plans_the_audience_then(
    api: TestClient, runtime: Runtime, clock: ManualClock
) -> None:
    # Given a monthly panel created on 23 November, and a customer outside its audience
    created = _setup(api, 10)
    _customers(api, 3, panel=False, prefix="x")
    assert created["next_run_at"] == "2026-12-01T02:00:00Z"
    # When the worker runs before the first firing, no wave is planned (none at once)
    Worker(runtime).run_until_idle()
    assert _followups(runtime) == []
    # When the firing comes
    clock.set(FIRST_WAVE)
    Worker(runtime).run_until_idle()
    # Then the audience, found at that moment, is followed up once each, under the wave's run key
    followups = _followups(runtime)
    assert len(followups) == 10
    assert {f.run_key for f in followups} == {"wave:2026-12-01T02:00Z"}
    assert {f.status for f in followups} == {"invited"}
    (wave,) = _waves(api)
    assert wave | {"run_at": None} == {
        "fired_at": "2026-12-01T02:00:00Z",
        "run_at": None,
        "strategy_version": 1,
        "missed": 0,
        "audience": 10,
        "in_cooldown": 0,
        "sampled": 10,
        "capped": 0,
        "planned": 10,
        "suppressed": 0,
    }
    assert api.get("/api/v1/strategies/monthly-nps").json()["next_run_at"] == "2027-01-01T02:00:00Z"
    # And running the worker again plans nothing more
    Worker(runtime).run_until_idle()
    assert len(_followups(runtime)) == 10


def _expected_sample(key: str, wave: str, customer_ids: list[str], rate: float) -> set[str]:
    """The sample as the documentation defines it, computed here independently."""
    chosen = set()
    for customer_id in customer_ids:
        digest = hashlib.sha256(f"wave|{key}|{wave}|{customer_id}".encode()).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 < rate:
            chosen.add(customer_id)
    return chosen


def test_the_sample_is_fixed_by_strategy_wave_and_customer(
    api: TestClient, runtime: Runtime, clock: ManualClock
) -> None:
    ids = _customers(api, 60)
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=_periodic(sample_rate=0.3)).status_code == 201
    clock.set(FIRST_WAVE)
    Worker(runtime).run_until_idle()
    with runtime.read_session() as session:
        from followup.customers import service as customers

        names = customers.external_ids(session, [f.customer_id for f in _followups(runtime)])
    expected = _expected_sample("monthly-nps", "2026-12-01T02:00Z", ids, 0.3)
    assert set(names.values()) == expected
    assert 5 < len(expected) < 35
    # And another process draws the same: nothing in the draw depends on the process
    script = (
        "from followup.strategies.sampling import bucket;"
        f"print(sorted(c for c in {ids!r} if bucket('wave', 'monthly-nps|2026-12-01T02:00Z', c) < 0.3))"
    )
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert other.stdout.strip() == str(sorted(expected))


def test_a_wave_keeps_to_its_cap_and_spreads_its_followups_evenly(
    api: TestClient, runtime: Runtime, clock: ManualClock
) -> None:
    _setup(api, 12, max_per_wave=8, spread="PT4H", channels=["inapp"])
    clock.set(FIRST_WAVE)
    Worker(runtime).tick()  # plans the wave and invites those due now; the rest wait their turn
    followups = _followups(runtime)
    assert len(followups) == 8
    assert _waves(api)[0]["capped"] == 4
    due = sorted((f.due_at if f.status == "planned" else FIRST_WAVE) for f in followups)
    # 4 hours over 8 follow-ups: one every 30 minutes from the firing
    assert [(at - FIRST_WAVE) for at in due] == [dt.timedelta(minutes=30 * n) for n in range(8)]
    assert sum(f.status == "invited" for f in followups) == 1


def _weekly(api: TestClient, runtime: Runtime, clock: ManualClock, *, cooldown_days: int) -> dt.datetime:
    """A weekly panel of six, its first wave planned; returns that wave's firing."""
    _setup(api, 6, schedule={"cron": "0 10 * * 1", "time_zone": "Asia/Shanghai"}, cooldown_days=cooldown_days)
    first = next_firing("0 10 * * 1", "Asia/Shanghai", clock.now())
    clock.set(first)
    Worker(runtime).run_until_idle()
    assert len(_followups(runtime)) == 6
    return first


def test_cooldown_leaves_recent_customers_out_before_the_sample(
    api: TestClient, runtime: Runtime, clock: ManualClock
) -> None:
    # Given a weekly panel with a 10-day cooldown, whose first wave reached everyone
    first = _weekly(api, runtime, clock, cooldown_days=10)
    # When the next waves fire a week and three weeks later
    clock.set(first + dt.timedelta(days=7))
    Worker(runtime).run_until_idle()
    clock.set(first + dt.timedelta(days=14))
    Worker(runtime).run_until_idle()
    clock.set(first + dt.timedelta(days=21))
    Worker(runtime).run_until_idle()
    waves = list(reversed(_waves(api)))
    # Then a week later everyone is inside the cooldown: left out before sampling, no follow-up at all
    assert [(w["audience"], w["in_cooldown"], w["sampled"], w["planned"]) for w in waves[1:2]] == [(6, 6, 0, 0)]
    # And two weeks later (out of the cooldown, planned nothing since) they are drawn again
    assert (waves[2]["in_cooldown"], waves[2]["sampled"]) == (0, 6)
    # And a week after that, those the third wave reached are in its cooldown again
    assert waves[3]["in_cooldown"] == waves[2]["planned"]


def test_outside_the_cooldown_the_fatigue_budget_still_decides(
    api: TestClient, runtime: Runtime, clock: ManualClock
) -> None:
    # Given a weekly panel with a 3-day cooldown and the budget of one follow-up in 14 days
    first = _weekly(api, runtime, clock, cooldown_days=3)
    # When its next wave fires a week later
    clock.set(first + dt.timedelta(days=7))
    Worker(runtime).run_until_idle()
    # Then the cooldown lets everyone through, and the budget suppresses each with its reason
    second = _waves(api)[0]
    assert (second["in_cooldown"], second["sampled"], second["planned"], second["suppressed"]) == (0, 6, 0, 6)
    run = "wave:" + second["fired_at"][:16] + "Z"
    assert {(f.status, f.reason) for f in _followups(runtime) if f.run_key == run} == {("suppressed", "fatigue")}


def test_a_worker_that_was_down_catches_up_once(api: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    # Given a daily panel whose worker was down for three firings
    _setup(api, 3, schedule={"cron": "0 10 * * *", "time_zone": "Asia/Shanghai"}, cooldown_days=0)
    first = next_firing("0 10 * * *", "Asia/Shanghai", clock.now())
    clock.set(first + dt.timedelta(days=2, hours=5))
    # When it comes back
    Worker(runtime).run_until_idle()
    # Then one wave is planned, for the latest firing, standing for the two it missed
    (wave,) = _waves(api)
    assert (wave["fired_at"], wave["missed"]) == ((first + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ"), 2)
    assert len(_followups(runtime)) == 3
    # And the next wave is the next firing from now
    expected = (first + dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert api.get("/api/v1/strategies/monthly-nps").json()["next_run_at"] == expected


def test_two_workers_on_one_wave_plan_it_once(api: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    _setup(api, 40, channels=["inapp"])
    clock.set(FIRST_WAVE)
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
        assert session.scalar(select(func.count()).select_from(Wave)) == 1
        count = session.scalar(select(func.count()).select_from(Followup))
        distinct = session.scalar(select(func.count(func.distinct(Followup.customer_id))))
    assert (count, distinct) == (40, 40)


def test_a_paused_strategy_sends_no_wave_and_resumes_from_the_next_firing(
    api: TestClient, runtime: Runtime, clock: ManualClock
) -> None:
    _setup(api, 3)
    assert api.patch("/api/v1/strategies/monthly-nps", json={"status": "paused"}).status_code == 200
    assert api.get("/api/v1/strategies/monthly-nps").json()["next_run_at"] is None
    clock.set(FIRST_WAVE + dt.timedelta(days=3))
    Worker(runtime).run_until_idle()
    assert _followups(runtime) == []
    resumed = api.patch("/api/v1/strategies/monthly-nps", json={"status": "active"}).json()
    assert resumed["next_run_at"] == "2027-01-01T02:00:00Z"
    Worker(runtime).run_until_idle()
    assert _followups(runtime) == []


@pytest.mark.parametrize(
    ("zone", "cron", "start", "expected"),
    [
        # Shanghai has no daylight saving time: 10:00 local is 02:00 UTC all year
        ("Asia/Shanghai", "0 10 1 * *", "2026-12-15T00:00Z", ["2027-01-01T02:00Z", "2027-02-01T02:00Z"]),
        # London springs forward at 01:00 GMT on 28 March 2027: 01:30 does not exist that night and
        # fires once, when it would have been (02:30 BST); the next night it is 01:30 BST
        ("Europe/London", "30 1 * * *", "2027-03-27T12:00Z", ["2027-03-28T01:30Z", "2027-03-29T00:30Z"]),
        # London falls back at 02:00 BST on 25 October 2026: 01:30 comes twice and fires once
        ("Europe/London", "30 1 * * *", "2026-10-24T12:00Z", ["2026-10-25T00:30Z", "2026-10-26T01:30Z"]),
        # New York: hourly through the spring-forward night fires once an hour of real time
        (
            "America/New_York",
            "0 * * * *",
            "2026-03-08T05:30Z",
            ["2026-03-08T06:00Z", "2026-03-08T07:00Z", "2026-03-08T08:00Z"],
        ),
        # New York: hourly through the fall-back night fires the repeated 01:00 once
        (
            "America/New_York",
            "0 * * * *",
            "2026-11-01T03:30Z",
            ["2026-11-01T04:00Z", "2026-11-01T05:00Z", "2026-11-01T07:00Z"],
        ),
        # A daily 09:00 in New York moves by an hour of UTC across the change, staying 09:00 local
        ("America/New_York", "0 9 * * *", "2026-10-31T12:00Z", ["2026-10-31T13:00Z", "2026-11-01T14:00Z"]),
    ],
)
def test_firings_across_daylight_saving_time(zone: str, cron: str, start: str, expected: list[str]) -> None:
    at = dt.datetime.strptime(start, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)
    firings = []
    for _ in expected:
        at = next_firing(cron, zone, at)
        firings.append(at.strftime("%Y-%m-%dT%H:%MZ"))
    assert firings == expected


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/London", "America/New_York"])
def test_waves_across_a_daylight_saving_change_fire_at_the_local_hour(
    api: TestClient, runtime: Runtime, clock: ManualClock, zone: str
) -> None:
    # Given a daily 09:00 panel in the zone, over the autumn change of 2026
    clock.set(dt.datetime(2026, 10, 23, 12, tzinfo=UTC))
    _setup(api, 2, schedule={"cron": "0 9 * * *", "time_zone": zone}, channels=["inapp"])
    # When the worker runs every hour for ten days
    for _ in range(24 * 10):
        clock.advance(dt.timedelta(hours=1))
        Worker(runtime).run_timers()
    # Then there is one wave a day, each at 09:00 on the zone's clock
    local = [
        dt.datetime.strptime(w["fired_at"], "%Y-%m-%dT%H:%M:%SZ")
        .replace(tzinfo=UTC)
        .astimezone(zoneinfo.ZoneInfo(zone))
        for w in _waves(api)
    ]
    assert len(local) == 10
    assert {(t.hour, t.minute) for t in local} == {(9, 0)}
    assert len({t.date() for t in local}) == 10


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"schedule": {"cron": "0 10 * *", "time_zone": "Asia/Shanghai"}}, "schedule.cron", "five fields"),
        ({"schedule": {"cron": "61 10 * * *", "time_zone": "Asia/Shanghai"}}, "schedule.cron", "cron"),
        ({"schedule": {"cron": "0 10 1 * *", "time_zone": "Mars/Olympus"}}, "schedule.time_zone", "IANA"),
        ({"schedule": {"cron": "*/5 * * * *", "time_zone": "Asia/Shanghai"}}, "schedule.cron", "an hour apart"),
        ({"spread": "P40D"}, "spread", "before the next one fires"),
        ({"schedule": None}, "schedule", "needs a schedule"),
        ({"trigger": {"event_types": ["payment.succeeded"]}}, "trigger", "no trigger"),
        ({"max_per_wave": 0}, "max_per_wave", ""),
        (
            {"audience": {"field": "customer.stats.payments_1d", "op": "gte", "value": 1}},
            "audience",
            "not a customer stat",
        ),
        (
            {"audience": {"field": "event.amount", "op": "gte", "value": 100}},
            "audience",
            "periodic strategy's audience selects customers by customer.* fields only",
        ),
    ],
)
def test_a_bad_periodic_strategy_is_refused_and_nothing_is_stored(
    api: TestClient, change: dict[str, Any], field: str, words: str
) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    answer = api.post("/api/v1/strategies", json=_periodic(**change))
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field, error
    assert words in error["message"]
    assert api.get("/api/v1/strategies").json()["total"] == 0
