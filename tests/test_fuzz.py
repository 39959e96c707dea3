"""Fuzzing the API with hypothesis: whatever a client sends, the answer is never a 500, every 4xx
carries the error shape, and a refused write leaves the database exactly as it was.

Inputs are arbitrary JSON values, valid bodies with parts replaced, removed or added, and random
query strings; JSON is encoded by hand so NaN, Infinity and lone surrogates reach the server, as
they would from a careless client.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.worker import Worker
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.test_api_errors import database_rows

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Strings that have broken parsers, databases and validators before.
NASTY = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "\u202e",
    "\n",
    "'; DROP TABLE customers; --",
    "%00",
    "%",
    "../../etc/passwd",
    "Mars/Olympus",
    "Asia/Shanghai",
    "zh-CN",
    "en",
    "P1M",
    "PT-5M",
    "P99999999999D",
    "PT999999999999999H",
    "PT30M",
    "P7D",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "2026-11-23T10:00:00",
    "2026-11-23T10:00:00+08:00",
    "2026-02-30T10:00:00Z",
    "1e400",
    "NaN",
    "-1",
    "0",
    "99999999999999999999",
    "x" * 300,
    "支付体验",
    "a@b.c",
    "+8613812341234",
    "email",
    "inapp",
    "sms",
    "event",
    "periodic",
    "payment-csat",
    "transfer.succeeded",
]
KNOWN_KEYS = [
    "email", "phone", "locale", "time_zone", "attributes", "consents", "feedback", "inapp", "events", "event_id",
    "type", "customer_id", "occurred_at", "amount", "currency", "key", "title", "questions", "id", "prompt",
    "required", "options", "label", "kind", "trigger", "event_types", "audience", "all", "any", "not", "field",
    "op", "value", "sample_rate", "holdout_percent", "delay", "channels", "survey", "reward", "points",
    "remind_after", "expire_after", "recontact_days", "status", "name", "zh-CN", "en",
]  # fmt: skip

texts = st.one_of(st.text(max_size=20), st.sampled_from(NASTY))
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    texts,
)
json_values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=8)), children, max_size=5),
    ),
    max_leaves=15,
)


def _slots(value: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key or index) inside a JSON value, to pick one to change."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield value, key
            yield from _slots(child)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield value, index
            yield from _slots(child)


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """A valid body with one to three parts replaced, removed or added."""
    body = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        slots = list(_slots(body))
        container, key = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            container[key] = draw(json_values)
        elif action == "delete":
            del container[key]
        elif isinstance(container, dict):
            container[draw(st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=8)))] = draw(json_values)
        else:
            container.append(draw(json_values))
        if not list(_slots(body)):
            break
    return body


def bodies(base: dict[str, Any]) -> st.SearchStrategy[Any]:
    return st.one_of(json_values, mutated(base), mutated(base), mutated(base))


def in_url(text: str) -> str:
    # Lone surrogates become invalid UTF-8 in the URL, which a client can send too.
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def send_json(client: TestClient, method: str, path: str, body: Any) -> Any:
    # Encoded here, not by httpx: NaN, Infinity and lone surrogates must reach the server.
    return client.request(method, path, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})


def check_answer(response: Any) -> None:
    assert response.status_code < 500, response.text
    event(f"status {response.status_code}")  # shown by --hypothesis-show-statistics
    if response.status_code >= 400:
        body = response.json()
        event(f"code {body['error']['code']}")
        assert list(body) == ["error"], body
        error = body["error"]
        assert sorted(error) == ["code", "field", "message"], body
        assert isinstance(error["code"], str), body
        assert error["code"], body
        assert isinstance(error["message"], str), body
        assert error["message"], body
        assert error["field"] is None or isinstance(error["field"], str), body


def check_write(runtime: Runtime, before: dict[str, Any], response: Any) -> None:
    check_answer(response)
    if response.status_code >= 400:
        assert database_rows(runtime) == before, f"a refused write changed the database: {response.text}"


CUSTOMER = {
    "email": "zhang.san@example.com",
    "phone": "+8613812341234",
    "locale": "zh-CN",
    "time_zone": "Asia/Shanghai",
    "attributes": {"tier": "gold", "tags": ["a", 1]},
    "consents": {"feedback": {"email": True, "sms": False, "inapp": True}},
}
STRATEGY = strategy_body("fuzzed")


@pytest.fixture
def world(api: TestClient) -> TestClient:
    """A survey, a strategy and a customer for the fuzzed requests to run into."""
    assert send_json(api, "POST", "/api/v1/surveys", survey_body()).status_code == 201
    assert send_json(api, "POST", "/api/v1/strategies", strategy_body()).status_code == 201
    assert send_json(api, "PUT", "/api/v1/customers/c1", CUSTOMER).status_code == 200
    return api


@FUZZ
@given(customer_id=st.one_of(st.just("c1"), texts), body=bodies(CUSTOMER))
def test_put_customer_never_fails(world: TestClient, runtime: Runtime, customer_id: str, body: Any) -> None:
    before = database_rows(runtime)
    response = send_json(world, "PUT", f"/api/v1/customers/{in_url(customer_id)}", body)
    check_write(runtime, before, response)


@FUZZ
@given(
    body=st.one_of(
        json_values,
        mutated({"events": [transfer("e1", "c1"), transfer("e2", "c2")]}),
        st.lists(st.one_of(json_values, mutated(transfer("e3", "c1"))), max_size=5).map(lambda e: {"events": e}),
    )
)
def test_post_events_never_fails(world: TestClient, runtime: Runtime, body: Any) -> None:
    before = database_rows(runtime)
    response = send_json(world, "POST", "/api/v1/events", body)
    check_write(runtime, before, response)
    if response.status_code == 200:
        # Every event is accounted for exactly once: accepted, duplicate or rejected.
        result = response.json()
        rejected = [r["index"] for r in result["rejected"]]
        assert rejected == sorted(set(rejected))
        assert result["accepted"] + result["duplicates"] + len(rejected) == len(body["events"])


@FUZZ
@given(body=bodies(survey_body("fuzzed")))
def test_post_surveys_never_fails(world: TestClient, runtime: Runtime, body: Any) -> None:
    before = database_rows(runtime)
    check_write(runtime, before, send_json(world, "POST", "/api/v1/surveys", body))


@settings(FUZZ, max_examples=150)
@given(body=bodies(STRATEGY))
def test_post_strategies_never_fails(world: TestClient, runtime: Runtime, body: Any) -> None:
    before = database_rows(runtime)
    check_write(runtime, before, send_json(world, "POST", "/api/v1/strategies", body))


@FUZZ
@given(key=st.one_of(st.just("after-large-transfer"), texts), body=bodies({"status": "paused"}))
def test_patch_strategies_never_fails(world: TestClient, runtime: Runtime, key: str, body: Any) -> None:
    before = database_rows(runtime)
    check_write(runtime, before, send_json(world, "PATCH", f"/api/v1/strategies/{in_url(key)}", body))


QUERY_NAMES = [
    "customer_id", "status", "priority", "limit", "offset", "survey", "strategy", "from", "to", "group_by",
]  # fmt: skip
query_values = st.one_of(
    texts,
    st.integers().map(str),
    st.sampled_from(["c1", "open", "closed", "security", "channel", "locale", "event_type", "invited", "responded"]),
    st.datetimes(timezones=st.timezones()).map(dt.datetime.isoformat),
)


@FUZZ
@given(
    path=st.sampled_from(["/api/v1/followups", "/api/v1/responses", "/api/v1/cases", "/api/v1/metrics/summary"]),
    params=st.lists(st.tuples(st.one_of(st.sampled_from(QUERY_NAMES), st.text(max_size=6)), query_values), max_size=5),
)
def test_query_strings_never_fail(world: TestClient, path: str, params: list[tuple[str, str]]) -> None:
    query = "&".join(f"{in_url(name)}={in_url(value)}" for name, value in params)
    check_answer(world.get(f"{path}?{query}"))


@FUZZ
@given(name=st.sampled_from(QUERY_NAMES), raw=st.binary(max_size=40), tail=st.binary(max_size=20))
def test_raw_query_bytes_never_fail(world: TestClient, name: str, raw: bytes, tail: bytes) -> None:
    # Percent-encoded bytes that need not be UTF-8, and a raw tail with its own & and =.
    query = f"{name}={quote(raw, safe='')}&{quote(tail, safe='=&%+')}"
    for path in ("/api/v1/followups", "/api/v1/responses", "/api/v1/cases", "/api/v1/metrics/summary"):
        check_answer(world.get(f"{path}?{query}"))


# -- rule trees that validate, then meet events ---------------------------------------------------

FIELDS = [
    "event.amount", "event.type", "event.currency", "event.attributes.channel", "event.attributes.fee",
    "customer.attributes.tier", "customer.locale", "customer.event_count", "customer.attributes.tags",
]  # fmt: skip
scalars = st.one_of(
    st.integers(-(10**16), 10**16), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), texts
)


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists"]))
    field = draw(st.sampled_from(FIELDS))
    if op in ("in", "not_in"):
        value: Any = draw(st.lists(scalars, min_size=1, max_size=3))
    elif op == "exists":
        value = draw(st.booleans())
    elif op == "contains":
        value = draw(st.one_of(scalars, st.lists(scalars, min_size=1, max_size=2)))
    elif op in ("gt", "gte", "lt", "lte"):
        value = draw(st.one_of(st.integers(-(10**16), 10**16), st.floats(allow_nan=False, allow_infinity=False), texts))
    else:
        value = draw(scalars)
    return {"field": field, "op": op, "value": value}


rule_trees = st.recursive(
    conditions(),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"all": c}),
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"any": c}),
        children.map(lambda c: {"not": c}),
    ),
    max_leaves=8,
)
fuzzed_events = st.builds(
    lambda i, kind, amount, attributes: transfer(f"r{i}", f"c{i % 3}", amount=amount, type=kind, attributes=attributes),
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["transfer.succeeded", "payment.failed"]),
    st.integers(-(10**15), 10**15),
    st.dictionaries(st.sampled_from(["channel", "fee", "tier", "x"]), scalars, max_size=3),
)
_keys = iter(range(10**9))


@settings(FUZZ, max_examples=120)
@given(audience=rule_trees, events=st.lists(fuzzed_events, min_size=1, max_size=4))
def test_random_rule_trees_are_stored_as_sent_and_evaluate_without_failing(
    world: TestClient, audience: dict[str, Any], events: list[dict[str, Any]]
) -> None:
    key = f"rule-{next(_keys)}"
    body = strategy_body(key, audience=audience, trigger={"event_types": ["transfer.succeeded", "payment.failed"]})

    created = send_json(world, "POST", "/api/v1/strategies", body)

    check_answer(created)
    if created.status_code == 201:
        # What was accepted reads back exactly as sent, and as a valid tree.
        stored = world.get(f"/api/v1/strategies/{key}")
        assert stored.status_code == 200, stored.text
        assert stored.json()["audience"] == json.loads(json.dumps(audience))
    check_answer(send_json(world, "POST", "/api/v1/events", {"events": events}))


# -- the hosted survey page --------------------------------------------------------------------


@pytest.fixture
def survey_links(api: TestClient, runtime: Runtime, clock: ManualClock) -> list[str]:
    """Live /s/{token} links for five customers, delivered to their in-app inbox: the first three
    wait for a rating, the last two have it and wait for the optional questions."""
    questions = [
        *survey_body()["questions"],
        {
            "id": "why",
            "type": "choice",
            "multiple": True,
            "required": False,
            "prompt": {"en": "Why?"},
            "options": [{"id": "speed", "label": {"en": "Speed"}}, {"id": "fees", "label": {"en": "Fees"}}],
        },
    ]
    assert api.post("/api/v1/surveys", json=survey_body(questions=questions)).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body(channels=["inapp"], delay="PT0S")).status_code == 201
    customers = [f"c{i}" for i in range(5)]
    for customer in customers:
        consent = {"locale": "en", "consents": {"feedback": {"inapp": True}}}
        assert api.put(f"/api/v1/customers/{customer}", json=consent).status_code == 200
    events = [transfer(f"e-{customer}", customer) for customer in customers]
    assert api.post("/api/v1/events", json={"events": events}).json()["accepted"] == 5
    clock.advance(dt.timedelta(minutes=1))
    Worker(runtime).run_until_idle()
    links = []
    for customer in customers:
        inbox = api.get(f"/api/v1/customers/{customer}/inbox").json()
        assert len(inbox) == 1
        links.append("/s/" + inbox[0]["link"].rsplit("/s/", 1)[1])
    for link in links[3:]:
        assert api.post(link, data={"step": "rating", "nps": "7"}, follow_redirects=False).status_code == 303
    return links


form_names = st.one_of(st.sampled_from(["step", "nps", "csat", "comment", "why", "skip"]), st.text(max_size=8))
form_values = st.one_of(st.sampled_from(["rating", "details", "0", "10", "11", "-1", "5", "speed", "fees", "1"]), texts)


answers = st.fixed_dictionaries(
    {"step": st.sampled_from(["rating", "details"])},
    optional={
        "nps": form_values,
        "csat": form_values,
        "comment": texts,
        "why": st.lists(form_values, max_size=3),
        "skip": st.just("1"),
    },
).map(lambda answer: list(answer.items()))


@settings(FUZZ, max_examples=150)
@given(
    which=st.integers(min_value=0, max_value=4),
    fields=st.one_of(
        answers,
        st.lists(st.tuples(form_names, st.one_of(form_values, st.lists(form_values, max_size=3))), max_size=6),
    ),
    raw=st.one_of(
        st.none(),
        st.tuples(
            st.binary(max_size=80),
            st.sampled_from(
                [
                    "application/x-www-form-urlencoded",
                    "multipart/form-data; boundary=xyz",
                    "multipart/form-data",
                    "text/plain",
                ]
            ),
        ),
    ),
)
def test_hosted_survey_form_never_fails(
    api: TestClient,
    survey_links: list[str],
    which: int,
    fields: list[tuple[str, Any]],
    raw: tuple[bytes, str] | None,
) -> None:
    if raw is None:  # a form as a browser encodes it, repeated names included
        pairs = [(name, item) for name, value in fields for item in (value if isinstance(value, list) else [value])]
        body = "&".join(f"{in_url(name)}={in_url(item)}" for name, item in pairs).encode()
        content_type = "application/x-www-form-urlencoded"
    else:  # bytes no browser would send
        body, content_type = raw
    response = api.post(
        survey_links[which], content=body, headers={"Content-Type": content_type}, follow_redirects=False
    )

    event(f"status {response.status_code}")
    assert response.status_code in {200, 303, 400, 404, 422}, response.text
    if response.status_code == 400 and response.headers["content-type"] == "application/json":
        check_answer(response)  # a form no browser would send: the API's error shape
        assert response.json()["error"]["code"] == "malformed_form"
    elif response.status_code != 303:
        assert response.headers["content-type"].startswith("text/html")


@FUZZ
@given(which=st.integers(min_value=0, max_value=4), score=st.one_of(texts, st.integers().map(str)))
def test_hosted_survey_page_never_fails(api: TestClient, survey_links: list[str], which: int, score: str) -> None:
    response = api.get(f"{survey_links[which]}?score={in_url(score)}")

    event(f"status {response.status_code}")
    assert response.status_code in {200, 400, 404}, response.text
    assert response.headers["content-type"].startswith("text/html")
    if response.status_code == 400:  # control characters are refused at the door, with a page
        assert any(0 <= ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in score)
