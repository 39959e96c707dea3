"""The personal channel (`"channels": "auto"`): the customer's preference first, then the only
channel reachable and consented, then what customers of the same value tier answered on (Thompson
sampling with a floor of exploration). A simulation with known response rates converges to the
best channel; through the API, real answers steer the next customers' channel."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient

from followup.followups.channel_choice import choose
from followup.followups.enums import ChannelReason
from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.worker import Worker
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body

RATES = {"push": 0.04, "sms": 0.08, "email": 0.22, "inapp": 0.12}


def test_the_simulation_converges_to_the_channel_that_answers_best() -> None:
    # Given four channels with known response rates and no evidence yet
    rng = random.Random(20261202)
    evidence: dict[tuple[str, str], tuple[int, int]] = {}
    chosen: list[tuple[str, ChannelReason]] = []
    # When 4,000 customers of one tier are asked one after the other, each answer counted
    for _ in range(4000):
        choice = choose(tuple(RATES), preferred=None, tier="gold", evidence=evidence, exploration=0.1, rng=rng)
        chosen.append(choice)
        invited, answered = evidence.get(("gold", choice.channel), (0, 0))
        evidence[("gold", choice.channel)] = (invited + 1, answered + (rng.random() < RATES[choice.channel]))
    # Then the last thousand go mostly to email, the best, and every channel is still measured
    late = chosen[-1000:]
    learned = [choice.channel for choice in late if choice.reason == ChannelReason.LEARNED]
    assert Counter(learned)["email"] / len(learned) > 0.9
    assert Counter(choice.channel for choice in late)["email"] / len(late) > 0.8
    explored = [choice for choice in late if choice.reason == ChannelReason.EXPLORE]
    assert 0.06 < len(explored) / len(late) < 0.14
    assert all(evidence[("gold", channel)][0] >= 30 for channel in RATES)
    # And a first draw without evidence is no better than a coin
    assert Counter(choice.channel for choice in chosen[:40]).most_common(1)[0][1] < 30


def test_preference_then_the_only_reachable_channel_come_before_learning() -> None:
    rng = random.Random(1)
    evidence = {("", "email"): (100, 90), ("", "inapp"): (100, 1)}
    assert choose(("email", "inapp"), preferred="inapp", tier="", evidence=evidence, exploration=1.0, rng=rng) == (
        "inapp",
        ChannelReason.PREFERENCE,
    )
    # a preference for a channel that is not allowed is passed over
    assert choose(("inapp",), preferred="email", tier="", evidence=evidence, exploration=1.0, rng=rng) == (
        "inapp",
        ChannelReason.ONLY_REACHABLE,
    )
    assert choose(("email", "inapp"), preferred="sms", tier="", evidence=evidence, exploration=0.0, rng=rng) == (
        "email",
        ChannelReason.LEARNED,
    )


def _customer(api: TestClient, customer_id: str, **fields: Any) -> None:
    body = {
        "email": f"{customer_id}@example.com",
        "locale": "en",
        "value_tier": "gold",
        "consents": {"feedback": {"email": True, "inapp": True}},
        **fields,
    }
    assert api.put(f"/api/v1/customers/{customer_id}", json=body).status_code == 200, body


def _followups(api: TestClient) -> dict[str, dict[str, Any]]:
    rows = api.get("/api/v1/followups", params={"limit": 500}).json()["items"]
    return {row["customer_id"]: row for row in rows}


def test_auto_is_stored_as_the_installed_channels_and_a_missing_one_is_named(api: TestClient) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    created = api.post("/api/v1/strategies", json=strategy_body(channels="auto"))
    assert created.status_code == 201, created.text
    assert created.json()["channels"] == {"auto": ["email", "inapp"]}
    refused = api.post("/api/v1/strategies", json=strategy_body(key="by-sms", channels={"auto": ["sms", "email"]}))
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert (error["code"], error["field"], error["message"]) == (
        "channel_not_available",
        "channels",
        "channel 'sms' is not configured here; available: email, inapp, phone.",
    )
    doubled = api.post("/api/v1/strategies", json=strategy_body(key="twice", channels={"auto": ["email", "email"]}))
    assert doubled.status_code == 422
    assert doubled.json()["error"]["field"] == "channels.auto", doubled.text
    assert api.get("/api/v1/strategies/by-sms").status_code == 404


def test_each_follow_up_records_its_channel_and_why(api: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    # Given one customer who prefers in-app, one with no email, one with both and no preference
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body(channels="auto", delay="PT0S")).status_code == 201
    _customer(api, "prefers", preferred_channel="inapp")
    _customer(api, "no-email", email=None)
    _customer(api, "either")
    events = [transfer(f"t-{c}", c) for c in ("prefers", "no-email", "either")]
    assert api.post("/api/v1/events", json={"events": events}).status_code == 200
    # Then each follow-up says which channel was chosen and why, before and after the invitation
    planned = _followups(api)
    assert (planned["prefers"]["chosen_channel"], planned["prefers"]["channel_reason"]) == ("inapp", "preference")
    assert (planned["no-email"]["chosen_channel"], planned["no-email"]["channel_reason"]) == (
        "inapp",
        "only_reachable",
    )
    assert planned["either"]["channel_reason"] in ("learned", "explore")
    assert planned["either"]["chosen_channel"] in ("email", "inapp")
    assert "(preference)" in planned["prefers"]["history"][0]["detail"]
    clock.advance(dt.timedelta(minutes=1))
    Worker(runtime).run_until_idle()
    invited = _followups(api)
    for customer_id, row in invited.items():
        assert row["channel"] == planned[customer_id]["chosen_channel"]


def _round(api: TestClient, runtime: Runtime, clock: ManualClock, ids: list[str]) -> dict[str, dict[str, Any]]:
    events = [transfer(f"t-{customer_id}", customer_id) for customer_id in ids]
    assert api.post("/api/v1/events", json={"events": events}).json()["accepted"] == len(ids)
    clock.advance(dt.timedelta(minutes=1))
    Worker(runtime).run_until_idle()
    rows = _followups(api)
    return {customer_id: rows[customer_id] for customer_id in ids}


@pytest.mark.parametrize("exploration", [0.1])
def test_answers_steer_the_next_customers_of_the_same_tier(
    api: TestClient, runtime: Runtime, clock: ManualClock, exploration: float
) -> None:
    assert runtime.settings.channel_exploration == exploration
    # Given gold customers reachable by email and in-app, and a strategy with the personal channel
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body(channels="auto", delay="PT0S")).status_code == 201
    first = [f"g{n:02}" for n in range(40)]
    second = [f"h{n:02}" for n in range(40)]
    silver = [f"s{n:02}" for n in range(40)]
    for customer_id in first + second:
        _customer(api, customer_id)
    for customer_id in silver:
        _customer(api, customer_id, value_tier="silver")
    # When the first forty are asked, with nothing learned yet, and those asked in-app all answer
    asked = _round(api, runtime, clock, first)
    channels = Counter(row["channel"] for row in asked.values())
    assert channels["email"] >= 5  # a flat prior splits them
    assert channels["inapp"] >= 5
    for customer_id, row in asked.items():
        if row["channel"] == "inapp":
            (item,) = api.get(f"/api/v1/customers/{customer_id}/inbox").json()
            link = "/s/" + item["link"].rsplit("/s/", 1)[1]
            answer = api.post(link, data={"step": "rating", "nps": "9"}, follow_redirects=False)
            assert answer.status_code == 303
    # Then the next forty gold customers are asked in-app, except where the floor explores
    clock.advance(dt.timedelta(hours=1))
    learned = _round(api, runtime, clock, second)
    reasons = Counter(row["channel_reason"] for row in learned.values())
    assert reasons["learned"] >= 28
    assert all(row["chosen_channel"] == "inapp" for row in learned.values() if row["channel_reason"] == "learned")
    # And silver customers, of whom nothing is known, are not steered by gold's answers
    unsteered = _round(api, runtime, clock, silver)
    assert Counter(row["chosen_channel"] for row in unsteered.values())["email"] >= 8


def test_a_panel_preview_chooses_the_channels_its_wave_then_chooses(
    api: TestClient, runtime: Runtime, clock: ManualClock
) -> None:
    # Given a monthly panel with the personal channel over thirty customers
    ids = [f"p{n:02}" for n in range(30)]
    for n, customer_id in enumerate(ids):
        _customer(api, customer_id, preferred_channel="email" if n % 5 == 0 else None)
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    panel = {
        "key": "monthly-nps",
        "kind": "periodic",
        "schedule": {"cron": "0 10 1 * *", "time_zone": "Asia/Shanghai"},
        "audience": {"field": "customer.value_tier", "op": "eq", "value": "gold"},
        "channels": "auto",
        "survey": "payment-csat",
    }
    assert api.post("/api/v1/strategies", json=panel).status_code == 201
    clock.set(dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC))
    preview = api.post("/api/v1/strategies/monthly-nps/preview", json={}).json()
    assert preview["would_contact"] == 30
    # When the worker plans the wave on the same data and clock
    Worker(runtime).run_timers()
    # Then each customer got the channel the preview chose for them
    rows = _followups(api)
    assert dict(Counter(row["chosen_channel"] for row in rows.values())) == preview["by_channel"]
    assert len(preview["by_channel"]) == 2
    assert {rows[customer_id]["channel_reason"] for customer_id in ids[::5]} == {"preference"}
