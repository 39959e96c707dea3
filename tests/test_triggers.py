"""Event-driven strategies: the first time a customer does something, bursts debounced into one
follow-up, stale events recorded and never sent, and a trigger's `match` read from stored events
by SQL that means what the rule means in Python."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from followup.events.models import Event
from followup.events.repository import EventRepository, event_where
from followup.kernel.time import ManualClock
from followup.rules.tree import compile_rule
from followup.runtime import Runtime
from followup.strategies.segments import RULE as RULE_ADAPTER
from followup.worker import Worker
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.conftest import START, SmtpSink

QR = {"field": "event.attributes.mode", "op": "eq", "value": "qr"}


def _payment(
    event_id: str, customer_id: str, at: dt.datetime, *, mode: str = "qr", amount: int = 2500
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "payment.succeeded",
        "customer_id": customer_id,
        "occurred_at": at.isoformat(),
        "amount": amount,
        "currency": "CNY",
        "attributes": {"mode": mode},
    }


def _customer(api: TestClient, customer_id: str) -> None:
    body = {"email": f"{customer_id}@example.com", "consents": {"feedback": {"email": True, "inapp": True}}}
    assert api.put(f"/api/v1/customers/{customer_id}", json=body).status_code == 200


def _strategy(api: TestClient, **fields: Any) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    body = strategy_body(
        "first-qr",
        trigger={"event_types": ["payment.succeeded"], "match": QR, "first_time": True},
        audience=None,
        delay="PT0S",
        channels=["email"],
    )
    body.update(fields)
    answer = api.post("/api/v1/strategies", json=body)
    assert answer.status_code == 201, answer.text


def _send(api: TestClient, *events: dict[str, Any]) -> None:
    answer = api.post("/api/v1/events", json={"events": list(events)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == len(events), answer.text


def _followups(api: TestClient, customer_id: str) -> list[dict[str, Any]]:
    answer = api.get("/api/v1/followups", params={"customer_id": customer_id, "limit": 100})
    assert answer.status_code == 200, answer.text
    return sorted(answer.json()["items"], key=lambda item: item["id"])


def test_the_first_qr_payment_is_followed_up_and_no_later_one(api: TestClient) -> None:
    # Given a customer who has paid by card only, and another who paid by QR before the strategy existed
    for customer_id in ("card-only", "veteran"):
        _customer(api, customer_id)
    _send(
        api,
        _payment("p1", "card-only", START - dt.timedelta(hours=5), mode="card"),
        _payment("p2", "veteran", START - dt.timedelta(days=40)),
    )
    _strategy(api)
    # When each pays by QR now, the first of them twice in one batch (the earlier listed last)
    _send(
        api,
        _payment("p3", "card-only", START - dt.timedelta(minutes=5)),
        _payment("p4", "card-only", START - dt.timedelta(minutes=50)),
        _payment("p5", "veteran", START - dt.timedelta(minutes=5)),
        _payment("p6", "card-only", START - dt.timedelta(minutes=1), mode="card"),
    )
    # Then only the card customer's first QR payment, the earliest of the batch, has a follow-up
    first = _followups(api, "card-only")
    assert [(f["event_id"], f["status"]) for f in first] == [("p4", "planned")]
    assert _followups(api, "veteran") == []
    # And a later QR payment, in another batch, is not a first time
    _send(api, _payment("p7", "card-only", START))
    assert [f["event_id"] for f in _followups(api, "card-only")] == ["p4"]


def test_a_first_time_left_out_by_the_sample_stays_the_only_one(api: TestClient) -> None:
    # Given a first-time strategy that samples no one
    _customer(api, "c1")
    _strategy(api, sample_rate=0.0)
    # When the customer's first QR payment comes, then a second
    _send(api, _payment("p1", "c1", START - dt.timedelta(minutes=30)))
    _send(api, _payment("p2", "c1", START))
    # Then the first is recorded as not sampled, and the second is no first time
    assert [(f["event_id"], f["reason"]) for f in _followups(api, "c1")] == [("p1", "not_sampled")]


def test_match_without_first_time_filters_each_event(api: TestClient) -> None:
    _customer(api, "c1")
    _strategy(api, trigger={"event_types": ["payment.succeeded"], "match": QR}, recontact_days=0)
    _send(
        api,
        _payment("p1", "c1", START - dt.timedelta(minutes=30)),
        _payment("p2", "c1", START - dt.timedelta(minutes=20), mode="card"),
        _payment("p3", "c1", START - dt.timedelta(minutes=10)),
    )
    assert [f["event_id"] for f in _followups(api, "c1")] == ["p1", "p3"]


def test_a_burst_is_followed_up_once_after_its_last_event(
    api: TestClient, runtime: Runtime, clock: ManualClock, smtp: SmtpSink
) -> None:
    # Given a strategy on failed payments that waits an hour after the last of a burst
    _customer(api, "c1")
    _strategy(
        api,
        trigger={"event_types": ["payment.failed"]},
        debounce="PT1H",
        delay="PT5M",
        recontact_days=30,
    )

    def failed(event_id: str, minutes: int) -> dict[str, Any]:
        return {**_payment(event_id, "c1", START + dt.timedelta(minutes=minutes)), "type": "payment.failed"}

    # When three failures arrive in one batch (out of order), and a fourth in a later batch
    _send(api, failed("f1", -20), failed("f3", 0), failed("f2", -10))
    after_first = _followups(api, "c1")
    clock.advance(dt.timedelta(minutes=30))
    _send(api, failed("f4", 25))
    # Then the batch kept its last failure and suppressed the others as debounced
    assert [(f["event_id"], f["status"], f["reason"]) for f in after_first] == [
        ("f1", "suppressed", "debounced"),
        ("f3", "planned", None),
        ("f2", "suppressed", "debounced"),
    ]
    # And the later failure took the waiting follow-up's place (its contact given back, so the
    # recontact rule does not refuse the new one), due an hour and five minutes after it
    now = {f["event_id"]: f for f in _followups(api, "c1")}
    assert (now["f3"]["status"], now["f3"]["reason"]) == ("suppressed", "debounced")
    assert (now["f4"]["status"], now["f4"]["reason"]) == ("planned", None)
    due = dt.datetime.fromisoformat(now["f4"]["due_at"])
    assert due == START + dt.timedelta(minutes=25 + 65)
    # When a failure from inside the burst arrives late
    _send(api, failed("f0", 5))
    # Then it does not replace the later one
    late = {f["event_id"]: f for f in _followups(api, "c1")}["f0"]
    assert (late["status"], late["reason"]) == ("suppressed", "debounced")
    # And once due, exactly one message goes out, about the last failure
    clock.advance(dt.timedelta(hours=2))
    Worker(runtime).run_until_idle()
    assert len(smtp.messages) == 1
    statuses = {f["event_id"]: f["status"] for f in _followups(api, "c1")}
    assert statuses["f4"] == "invited"
    assert sorted(statuses.values()).count("invited") == 1


def test_a_stale_event_is_recorded_and_contacts_nobody(
    api: TestClient, runtime: Runtime, clock: ManualClock, smtp: SmtpSink
) -> None:
    # Given the default max_event_age (three days) and a strategy that allows a week
    _customer(api, "c1")
    _customer(api, "c2")
    _strategy(api, trigger={"event_types": ["payment.succeeded"]}, recontact_days=0)
    body = strategy_body(
        "patient",
        trigger={"event_types": ["payment.succeeded"]},
        audience={"field": "customer.id", "op": "eq", "value": "c2"},
        delay="PT0S",
        channels=["email"],
        max_event_age="P7D",
    )
    assert api.post("/api/v1/strategies", json=body).status_code == 201
    # When a backfill brings payments four days old, and one from an hour ago
    _send(
        api,
        _payment("old-1", "c1", START - dt.timedelta(days=4)),
        _payment("old-2", "c2", START - dt.timedelta(days=4)),
        _payment("new-1", "c1", START - dt.timedelta(hours=1)),
    )
    # Then the old ones are suppressed as stale_event, visible in the API, except under P7D
    suppressed = api.get("/api/v1/followups", params={"status": "suppressed"}).json()["items"]
    assert {(f["customer_id"], f["event_id"], f["reason"]) for f in suppressed} == {
        ("c1", "old-1", "stale_event"),
        ("c2", "old-2", "stale_event"),
    }
    planned = api.get("/api/v1/followups", params={"status": "planned"}).json()["items"]
    assert {(f["strategy"], f["event_id"]) for f in planned} == {("first-qr", "new-1"), ("patient", "old-2")}
    # And the worker sends only for the planned ones
    clock.advance(dt.timedelta(minutes=1))
    Worker(runtime).run_until_idle()
    assert sorted(message["To"] for message in smtp.messages) == ["c1@example.com", "c2@example.com"]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (
            {
                "trigger": {
                    "event_types": ["payment.succeeded"],
                    "match": {"field": "customer.locale", "op": "eq", "value": "en"},
                }
            },
            "trigger.match",
            "event.* fields only",
        ),
        ({"trigger": {"event_types": ["payment.succeeded"], "match": {"segment": "vip"}}}, "trigger.match", "segment"),
        (
            {
                "trigger": {
                    "event_types": ["payment.succeeded"],
                    "match": {"field": "event.amount", "op": "near", "value": 1},
                }
            },
            "trigger.match.op",
            "",
        ),
        ({"debounce": "PT10S"}, "debounce", "between PT1M and P7D"),
        ({"max_event_age": "PT5M"}, "max_event_age", "between PT1H and P365D"),
        ({"max_event_age": "soon"}, "max_event_age", "ISO 8601"),
    ],
)
def test_a_bad_trigger_is_refused_and_nothing_is_stored(
    api: TestClient, change: dict[str, Any], field: str, words: str
) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    answer = api.post("/api/v1/strategies", json=strategy_body(**change))
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"].startswith(field), error
    assert words in error["message"], error
    assert api.get("/api/v1/strategies").json()["total"] == 0


def test_only_event_strategies_debounce(api: TestClient) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    periodic = {
        "key": "panel",
        "kind": "periodic",
        "schedule": {"cron": "0 10 1 * *", "time_zone": "Asia/Shanghai"},
        "channels": ["email"],
        "survey": "payment-csat",
        "debounce": "PT1H",
    }
    answer = api.post("/api/v1/strategies", json=periodic)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == "debounce"


STORED = [
    {"amount": 2500, "currency": "CNY", "attributes": {"mode": "qr", "n": 3, "ok": True, "tags": ["a", "b"]}},
    {"amount": None, "currency": None, "attributes": {"mode": "card", "n": 3.5, "ok": False}},
    {"amount": 100, "currency": "USD", "attributes": {"mode": None, "n": "3", "tags": [1, "a"]}},
    {"amount": 0, "currency": "CNY", "attributes": {"nested": {"mode": "qr"}}},
]
RULES = [
    QR,
    {"field": "event.amount", "op": "gte", "value": 100},
    {"field": "event.amount", "op": "ne", "value": 2500},
    {"field": "event.amount", "op": "exists", "value": False},
    {"field": "event.currency", "op": "in", "value": ["CNY", "EUR"]},
    {"field": "event.attributes.n", "op": "gt", "value": 3},
    {"field": "event.attributes.n", "op": "eq", "value": "3"},
    {"field": "event.attributes.ok", "op": "eq", "value": True},
    {"field": "event.attributes.tags", "op": "contains", "value": "a"},
    {"field": "event.attributes.nested.mode", "op": "eq", "value": "qr"},
    {"not": {"field": "event.attributes.mode", "op": "exists", "value": True}},
    {"any": [{"field": "event.type", "op": "eq", "value": "payment.succeeded"}, QR]},
    {"field": "event.event_id", "op": "contains", "value": "-2"},
]


@pytest.mark.parametrize("rule", RULES, ids=[str(n) for n in range(len(RULES))])
def test_a_match_reads_stored_events_as_the_rule_reads_them(api: TestClient, runtime: Runtime, rule: Any) -> None:
    # Given stored events of several shapes, one customer each
    events = []
    for n, shape in enumerate(STORED):
        _customer(api, f"c{n}")
        event = _payment(f"e-{n}", f"c{n}", START)
        event.update({key: value for key, value in shape.items() if value is not None})
        for key in ("amount", "currency"):
            if shape[key] is None:
                event.pop(key)
        events.append(event)
    _send(api, *events)
    node = RULE_ADAPTER.validate_python(rule)
    # When the database finds the customers with a matching event
    with runtime.read_session() as session:
        ids = {row.customer_id: row.event_id for row in session.scalars(select(Event))}
        found = EventRepository(session).customers_with_match(ids.keys(), {"payment.succeeded"}, node, excluding=[])
        where = event_where(node, dialect=session.get_bind().dialect.name)
        stored = set(session.scalars(select(Event.customer_id).where(where)))
    # Then it finds exactly the events the rule accepts in Python
    predicate = compile_rule(node)
    expected = {
        cid
        for cid, event_id in ids.items()
        for event in events
        if event["event_id"] == event_id
        and predicate(
            {
                "event": {
                    "type": event["type"],
                    "event_id": event["event_id"],
                    "amount": event.get("amount"),
                    "currency": event.get("currency"),
                    "attributes": event["attributes"],
                }
            }
        )
    }
    assert found == expected
    assert stored == expected
