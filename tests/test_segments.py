"""Segments: named audiences over customer.*, used in rules as {"segment": key}, previewed before
use, refused when they would loop or name what a segment cannot select, kept while in use."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body

GOLD = {"field": "customer.value_tier", "op": "eq", "value": "gold"}
ENGLISH = {"field": "customer.locale", "op": "eq", "value": "en"}


def _customer(api: TestClient, customer_id: str, **fields: Any) -> None:
    body = {"email": f"{customer_id}@example.com", "consents": {"feedback": {"email": True}}, **fields}
    assert api.put(f"/api/v1/customers/{customer_id}", json=body).status_code == 200


def _error(answer: Any) -> tuple[int, str, str]:
    error = answer.json()["error"]
    return answer.status_code, error["code"], error["message"]


def test_a_segment_is_created_read_listed_changed_and_versioned(api: TestClient) -> None:
    created = api.post("/api/v1/segments", json={"key": "gold", "name": "Gold tier", "rule": GOLD})
    assert created.status_code == 201, created.text
    assert created.json() | {"created_at": None, "updated_at": None} == {
        "key": "gold",
        "name": "Gold tier",
        "rule": GOLD,
        "version": 1,
        "used_by": [],
        "created_at": None,
        "updated_at": None,
    }
    assert api.get("/api/v1/segments/gold").json() == created.json()
    assert api.get("/api/v1/segments").json() == {"items": [created.json()], "total": 1}
    # A change of name keeps the rule; a change of rule keeps the name; each is a version
    renamed = api.patch("/api/v1/segments/gold", json={"name": "Gold customers"}).json()
    assert (renamed["name"], renamed["rule"], renamed["version"]) == ("Gold customers", GOLD, 2)
    rule = {"all": [GOLD, ENGLISH]}
    changed = api.patch("/api/v1/segments/gold", json={"rule": rule}).json()
    assert (changed["name"], changed["rule"], changed["version"]) == ("Gold customers", rule, 3)
    # The same values again change nothing
    assert api.patch("/api/v1/segments/gold", json={"rule": rule}).json()["version"] == 3
    # And a second segment with the key is a conflict, an unknown one a 404
    again = api.post("/api/v1/segments", json={"key": "gold", "name": "x", "rule": GOLD})
    assert _error(again)[:2] == (409, "segment_exists")
    assert _error(api.get("/api/v1/segments/silver"))[:2] == (404, "segment_not_found")
    assert _error(api.patch("/api/v1/segments/silver", json={"name": "x"}))[:2] == (404, "segment_not_found")


def test_the_preview_counts_groups_by_locale_and_shows_a_masked_sample(api: TestClient) -> None:
    # Given 23 gold customers (some English) and 2 others
    for n in range(25):
        tier = "gold" if n < 23 else "silver"
        _customer(api, f"c{n:02}", value_tier=tier, locale="en" if n % 4 == 0 else "zh-CN")
    api.post("/api/v1/segments", json={"key": "gold", "name": "Gold tier", "rule": GOLD})
    # When the segment is previewed
    preview = api.get("/api/v1/segments/gold/preview")
    assert preview.status_code == 200
    body = preview.json()
    # Then it counts every match, by locale, and shows the first 20 with contact points masked
    assert body["count"] == 23
    assert body["by_locale"] == {"en": 6, "zh-CN": 17}
    assert len(body["sample"]) == 20
    assert body["sample"][0] == {
        "customer_id": "c00",
        "locale": "en",
        "time_zone": "Asia/Shanghai",
        "value_tier": "gold",
        "email": "c***@example.com",
        "phone": None,
    }
    assert "c00@example.com" not in preview.text


def test_a_strategy_naming_a_segment_follows_its_current_rule(api: TestClient) -> None:
    # Given a strategy whose audience is the gold segment
    _customer(api, "c1", value_tier="gold")
    _customer(api, "c2", value_tier="silver")
    api.post("/api/v1/segments", json={"key": "vip", "name": "VIP", "rule": GOLD})
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    body = strategy_body(audience={"all": [{"segment": "vip"}]}, channels=["email"])
    assert api.post("/api/v1/strategies", json=body).status_code == 201
    assert api.get("/api/v1/segments/vip").json()["used_by"] == ["strategy:after-large-transfer"]
    # When both transfer, only the gold customer is followed up
    api.post("/api/v1/events", json={"events": [transfer("t1", "c1"), transfer("t2", "c2")]})
    assert [f["customer_id"] for f in api.get("/api/v1/followups").json()["items"]] == ["c1"]
    # And once the segment means silver, the next transfers follow that
    api.patch("/api/v1/segments/vip", json={"rule": {**GOLD, "value": "silver"}})
    api.post("/api/v1/events", json={"events": [transfer("t3", "c1"), transfer("t4", "c2")]})
    assert sorted(f["event_id"] for f in api.get("/api/v1/followups").json()["items"]) == ["t1", "t4"]


def test_segments_may_name_segments_but_never_in_a_circle(api: TestClient) -> None:
    api.post("/api/v1/segments", json={"key": "gold", "name": "Gold", "rule": GOLD})
    english_gold = {"all": [{"segment": "gold"}, ENGLISH]}
    assert api.post("/api/v1/segments", json={"key": "en-gold", "name": "x", "rule": english_gold}).status_code == 201
    # A segment naming itself, directly or through another, is refused and nothing changes
    itself = api.post("/api/v1/segments", json={"key": "loop", "name": "x", "rule": {"not": {"segment": "loop"}}})
    assert _error(itself)[:2] == (422, "segment_cycle")
    around = api.patch("/api/v1/segments/gold", json={"rule": {"any": [GOLD, {"segment": "en-gold"}]}})
    status, code, message = _error(around)
    assert (status, code) == (422, "segment_cycle")
    assert "gold → en-gold → gold" in message
    assert api.get("/api/v1/segments/gold").json()["rule"] == GOLD
    assert api.get("/api/v1/segments/loop").status_code == 404
    # An unknown segment is refused in a segment and in a strategy
    unknown = api.post("/api/v1/segments", json={"key": "x", "name": "x", "rule": {"segment": "platinum"}})
    assert _error(unknown)[:2] == (422, "segment_not_found")
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    strategy = api.post("/api/v1/strategies", json=strategy_body(audience={"segment": "platinum"}))
    assert _error(strategy)[:2] == (422, "segment_not_found")
    assert api.get("/api/v1/strategies").json()["total"] == 0


def test_a_segment_selects_by_customer_fields_only(api: TestClient) -> None:
    by_event = api.post(
        "/api/v1/segments",
        json={"key": "big", "name": "x", "rule": {"field": "event.amount", "op": "gt", "value": 1}},
    )
    status, code, message = _error(by_event)
    assert (status, code) == (422, "invalid_field")
    assert "event.amount" in message
    by_unknown_stat = api.post(
        "/api/v1/segments",
        json={"key": "big", "name": "x", "rule": {"field": "customer.stats.volume_7d", "op": "gt", "value": 1}},
    )
    assert _error(by_unknown_stat)[:2] == (422, "unknown_field")
    control = api.post("/api/v1/segments", json={"key": "big", "name": "a\x07b", "rule": GOLD})
    assert control.status_code == 400  # refused at the door, as every control character is
    assert api.get("/api/v1/segments").json()["total"] == 0


def test_a_segment_in_use_cannot_be_deleted(api: TestClient) -> None:
    api.post("/api/v1/segments", json={"key": "gold", "name": "Gold", "rule": GOLD})
    api.post("/api/v1/segments", json={"key": "en-gold", "name": "x", "rule": {"all": [{"segment": "gold"}, ENGLISH]}})
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body(audience={"segment": "en-gold"})).status_code == 201
    # While named by a segment or a strategy, it stays, and the answer says who names it
    status, code, message = _error(api.delete("/api/v1/segments/gold"))
    assert (status, code) == (409, "segment_in_use")
    assert "segment:en-gold" in message
    status, code, message = _error(api.delete("/api/v1/segments/en-gold"))
    assert (status, code) == (409, "segment_in_use")
    assert "strategy:after-large-transfer" in message
    # A segment nobody names goes, and is gone
    api.post("/api/v1/segments", json={"key": "spare", "name": "x", "rule": ENGLISH})
    deleted = api.delete("/api/v1/segments/spare")
    assert deleted.status_code == 204
    assert api.get("/api/v1/segments/spare").status_code == 404
    assert _error(api.delete("/api/v1/segments/spare"))[:2] == (404, "segment_not_found")
