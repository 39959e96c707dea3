"""Variants: each customer sticks to one variant (the same in every process), its words and survey
go out, and the metrics compare each variant's response rate and NPS with the first's."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import subprocess
import sys
from typing import Any

import pytest
from fastapi.testclient import TestClient

from followup.insights.metrics import nps_difference, two_proportion_test
from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.strategies.sampling import pick_variant
from followup.strategies.schemas import StrategyCreate
from followup.worker import Worker
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body

IDS = [f"c{n:03}" for n in range(80)]
VARIANTS = [
    {"key": "a", "weight": 3, "message": {"en": {"subject": "Variant A", "body": "Plain words."}}},
    {"key": "b", "weight": 1, "message": {"en": {"subject": "Variant B", "body": "Warmer words."}}},
]


def _spec(**fields: Any) -> StrategyCreate:
    return StrategyCreate.model_validate(strategy_body(variants=VARIANTS, **fields))


def _documented(customer_id: str) -> str:
    """The variant by the documented formula, computed here on its own."""
    digest = hashlib.sha256(f"variant|after-large-transfer|{customer_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * 4
    return "a" if point < 3 else "b"


def test_assignment_is_sticky_follows_the_weights_and_is_the_same_in_another_process() -> None:
    spec = _spec()
    here = {customer_id: pick_variant(spec, customer_id).key for customer_id in IDS}  # type: ignore[union-attr]
    assert here == {customer_id: _documented(customer_id) for customer_id in IDS}
    assert 40 <= sum(1 for key in here.values() if key == "a") <= 75
    script = (
        "from followup.strategies.sampling import pick_variant;"
        "from followup.strategies.schemas import StrategyCreate;"
        "from tests.builders.strategies import strategy_body;"
        f"spec = StrategyCreate.model_validate(strategy_body(variants={VARIANTS!r}));"
        f"print({{c: pick_variant(spec, c).key for c in {IDS!r}}})"
    )
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert other.stdout.strip() == str(here)


def test_each_customer_gets_their_variants_words_and_the_metrics_compare_them(
    api: TestClient, runtime: Runtime, clock: ManualClock
) -> None:
    # Given 80 customers reachable in-app, and a strategy with two variants
    for customer_id in IDS:
        body = {"locale": "en", "consents": {"feedback": {"inapp": True}}}
        assert api.put(f"/api/v1/customers/{customer_id}", json=body).status_code == 200
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    created = api.post("/api/v1/strategies", json=strategy_body(channels=["inapp"], delay="PT0S", variants=VARIANTS))
    assert created.status_code == 201, created.text
    # When each transfers and the worker sends
    events = [transfer(f"t-{customer_id}", customer_id) for customer_id in IDS]
    assert api.post("/api/v1/events", json={"events": events}).json()["accepted"] == len(IDS)
    clock.advance(dt.timedelta(minutes=1))
    Worker(runtime).run_until_idle()
    # Then each reads their own variant's words
    links = {}
    for customer_id in IDS:
        (item,) = api.get(f"/api/v1/customers/{customer_id}/inbox").json()
        assert item["title"] == f"Variant {_documented(customer_id).upper()}"
        links[customer_id] = "/s/" + item["link"].rsplit("/s/", 1)[1]
    # When variant b's customers all answer 10 and a's answer one in three, with a 5
    answered: dict[str, list[int]] = {"a": [], "b": []}
    for number, customer_id in enumerate(IDS):
        variant = _documented(customer_id)
        score = 10 if variant == "b" else 5
        if variant == "b" or number % 3 == 0:
            form = {"step": "rating", "nps": str(score)}
            assert api.post(links[customer_id], data=form, follow_redirects=False).status_code == 303
            answered[variant].append(score)
    # Then the summary gives each variant's rate and NPS, and b against a with its test
    summary = api.get("/api/v1/metrics/summary", params={"strategy": "after-large-transfer", "group_by": "variant"})
    assert summary.status_code == 200, summary.text
    body = summary.json()
    invited = {key: sum(1 for c in IDS if _documented(c) == key) for key in ("a", "b")}
    groups = {group["key"]: group for group in body["groups"]}
    assert {key: (g["invited"], g["responded"]) for key, g in groups.items()} == {
        key: (invited[key], len(answered[key])) for key in ("a", "b")
    }
    assert (groups["a"]["nps"], groups["b"]["nps"]) == (-100.0, 100.0)
    (comparison,) = body["comparisons"]
    assert (comparison["variant"], comparison["against"]) == ("b", "a")
    test = two_proportion_test(len(answered["a"]), invited["a"], len(answered["b"]), invited["b"])
    assert test is not None
    assert comparison["response_rate_difference"] == test.difference > 0
    assert comparison["z"] == test.z
    assert comparison["p_value"] == test.p_value < 0.05
    assert comparison["nps_difference"] == 200.0


def test_the_two_proportion_test_and_the_nps_interval_by_hand() -> None:
    # 30 of 100 against 45 of 100: pooled 0.375, se = sqrt(0.375 * 0.625 * 0.02) = 0.068465
    test = two_proportion_test(30, 100, 45, 100)
    assert test is not None
    assert test.difference == 0.15
    assert test.z == pytest.approx(0.15 / math.sqrt(0.375 * 0.625 * 0.02), abs=1e-3)
    assert test.p_value == pytest.approx(math.erfc(abs(test.z) / math.sqrt(2)), abs=1e-4)
    assert two_proportion_test(0, 10, 0, 10) == (0.0, None, None)
    assert two_proportion_test(0, 0, 1, 1) is None
    # a: 5 promoters, 5 detractors (NPS 0); b: 8 promoters, 2 passives (NPS 80)
    diff = nps_difference([10] * 5 + [3] * 5, [9] * 8 + [7] * 2)
    assert diff is not None
    var_a = 100**2 * (0.5 + 0.5 - 0.0) / 10
    var_b = 100**2 * (0.8 + 0.0 - 0.64) / 10
    margin = 1.959964 * math.sqrt(var_a + var_b)
    assert diff == (80.0, round(80 - margin, 1), round(80 + margin, 1))


@pytest.mark.parametrize(
    ("variants", "field"),
    [
        ([{"key": "a", "weight": 1}], "variants"),
        ([{"key": "a", "weight": 1}, {"key": "a", "weight": 2}], "variants"),
        ([{"key": "a", "weight": 0}, {"key": "b", "weight": 1}], "variants.0.weight"),
        ([{"key": "a", "weight": 1}, {"key": "b", "weight": 1, "survey": "nope"}], "variants.1.survey"),
        (
            [
                {"key": "a", "weight": 1},
                {"key": "b", "weight": 1, "message": {"en": {"subject": "{{ x }}", "body": "y"}}},
            ],
            "variants.1.message.en.subject",
        ),
    ],
)
def test_bad_variants_are_refused(api: TestClient, variants: list[dict[str, Any]], field: str) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    answer = api.post("/api/v1/strategies", json=strategy_body(variants=variants))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == field, answer.json()
    assert api.get("/api/v1/strategies").json()["total"] == 0
