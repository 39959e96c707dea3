"""Bad input, as a wallet's engineers will send it by mistake: every class of it gets a 4xx with
`{"error": {"code", "message", "field"}}`, a stable code, a sentence a person can act on, and
nothing half-written — the database is byte-for-byte what it was before the request."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from followup.models import metadata
from followup.runtime import Runtime
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy, strategy_body
from tests.builders.surveys import make_survey, survey_body

Rows = dict[str, list[tuple[Any, ...]]]

DURATION_HINT = "is not an ISO 8601 duration such as PT30M, PT2H or P7D (months and years are not fixed lengths and are not accepted)"
OFFSET_HINT = "occurred_at: occurred_at must be an RFC 3339 time with an offset, e.g. 2026-11-23T10:15:00+08:00"
MISSING_KEY = (
    "Send your API key as 'Authorization: Bearer <key>'. Create one with `followup apikey create --name NAME`."
)
WRONG_KEY = "This API key is not valid or was revoked."


def database_rows(runtime: Runtime) -> Rows:
    """Every row of every table, in primary-key order: what "nothing half-written" compares. An
    API key's last use is left out: the key's own bookkeeping, written once a minute whatever the
    request came to, not something the request wrote."""
    with runtime.read_session() as session:
        return {
            table.name: [
                tuple(value for column, value in row._mapping.items() if (table.name, column) != _KEY_USE)
                for row in session.execute(table.select().order_by(*table.primary_key.columns))
            ]
            for table in metadata.sorted_tables
        }


_KEY_USE = ("api_keys", "last_used_at")


def assert_error(response: Any, status: int, code: str, field: str | None, message: str | None = None) -> str:
    """The one error shape of the API; returns the message for further checks."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    assert sorted(body["error"]) == ["code", "field", "message"]
    error = body["error"]
    assert (error["code"], error["field"]) == (code, field), error
    assert isinstance(error["message"], str)
    assert error["message"].strip() == error["message"] != ""
    assert "Value error" not in error["message"], "pydantic's internals leak into the message"
    if message is not None:
        assert error["message"] == message
    return str(error["message"])


@pytest.fixture
def anonymous(api: TestClient) -> Iterator[TestClient]:
    """The same app, called without any API key."""
    with TestClient(api.app) as client:
        yield client


@pytest.fixture
def existing(runtime: Runtime) -> Rows:
    """A customer, a survey and a strategy already there; returns the rows they left."""
    make_customer(runtime, "c1", phone="+8613812341234")
    make_survey(runtime)
    make_strategy(runtime)
    return database_rows(runtime)


# -- the body itself ---------------------------------------------------------------------------

WRITES = [
    ("PUT", "/api/v1/customers/c1"),
    ("POST", "/api/v1/events"),
    ("POST", "/api/v1/surveys"),
    ("POST", "/api/v1/strategies"),
    ("PATCH", "/api/v1/strategies/after-large-transfer"),
]


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_malformed_json_is_400_and_writes_nothing(
    api: TestClient, runtime: Runtime, existing: Rows, method: str, path: str
) -> None:
    for raw in [b'{"email": ', b"{'key': 'single quotes'}", b'{"a": 1,}', b"\xff\xfe{}", b"[" * 5000]:
        response = api.request(method, path, content=raw, headers={"Content-Type": "application/json"})

        assert_error(response, 400, "malformed_json", None, "The request body is not valid JSON.")
    assert database_rows(runtime) == existing


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_missing_body_is_400_and_writes_nothing(
    api: TestClient, runtime: Runtime, existing: Rows, method: str, path: str
) -> None:
    for headers in ({"Content-Type": "application/json"}, {}):
        response = api.request(method, path, content=b"", headers=headers)

        assert_error(response, 400, "missing_body", None, "This request needs a JSON body.")
    assert database_rows(runtime) == existing


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_a_body_that_is_not_an_object_is_422(
    api: TestClient, runtime: Runtime, existing: Rows, method: str, path: str
) -> None:
    for body in [None, [], [{"email": "a@example.com"}], "text", 42, True]:
        response = api.request(method, path, content=json.dumps(body), headers={"Content-Type": "application/json"})

        assert_error(response, 422, "invalid_body", None, "The request body must be a JSON object.")
    assert database_rows(runtime) == existing


def test_json_sent_as_another_content_type_is_not_read(api: TestClient, runtime: Runtime, existing: Rows) -> None:
    response = api.post(
        "/api/v1/surveys", content=json.dumps(survey_body("other")).encode(), headers={"Content-Type": "text/plain"}
    )

    assert_error(response, 422, "invalid_body", None, "The request body must be a JSON object.")
    assert database_rows(runtime) == existing


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers_are_refused_everywhere_json_is_stored(
    api: TestClient, runtime: Runtime, existing: Rows, literal: bytes
) -> None:
    # Python's parser accepts these, JSON does not, and PostgreSQL refuses to store them.
    customer = api.put(
        "/api/v1/customers/c1",
        content=b'{"locale": "en", "attributes": {"score": ' + literal + b"}}",
        headers={"Content-Type": "application/json"},
    )
    strategy = api.post(
        "/api/v1/strategies",
        content=json.dumps(strategy_body("nan-rule", audience={"field": "event.amount", "op": "gt", "value": 0}))
        .replace('"value": 0', '"value": ' + literal.decode())
        .encode(),
        headers={"Content-Type": "application/json"},
    )
    events = api.post(
        "/api/v1/events",
        content=json.dumps({"events": [transfer("e-nan", "c-nan", attributes={"fee": 0})]})
        .replace('"fee": 0', '"fee": ' + literal.decode())
        .encode(),
        headers={"Content-Type": "application/json"},
    )

    assert_error(customer, 422, "invalid_field", "attributes.score")
    assert_error(strategy, 422, "invalid_field", "audience.value")
    assert events.status_code == 200
    assert events.json() == {
        "accepted": 0,
        "duplicates": 0,
        "rejected": [
            {
                "index": 0,
                "event_id": "e-nan",
                "code": "invalid_event",
                "message": "attributes: attributes must hold only finite numbers and valid Unicode text",
            }
        ],
    }
    assert database_rows(runtime) == existing


# -- customers ---------------------------------------------------------------------------------


def test_unknown_field_is_named_and_nothing_changes(api: TestClient, runtime: Runtime, existing: Rows) -> None:
    response = api.put("/api/v1/customers/c1", json={"locale": "en", "emial": "new@example.com"})

    assert_error(response, 422, "unknown_field", "emial", "'emial' is not a field this request accepts")
    assert database_rows(runtime) == existing
    assert api.get("/api/v1/customers/c1").json()["locale"] == "zh-CN"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            {"time_zone": "Mars/Olympus"},
            "time_zone",
            "time_zone: 'Mars/Olympus' is not an IANA time zone, e.g. Asia/Shanghai or Europe/London",
        ),
        (
            {"time_zone": "../../etc/passwd"},
            "time_zone",
            "time_zone: '../../etc/passwd' is not an IANA time zone, e.g. Asia/Shanghai or Europe/London",
        ),
        ({"time_zone": ""}, "time_zone", "time_zone: '' is not an IANA time zone, e.g. Asia/Shanghai or Europe/London"),
        # Files beside the zones on many hosts, the tz database's placeholder, and a name with a space
        *[
            (
                {"time_zone": name},
                "time_zone",
                f"time_zone: {name!r} is not an IANA time zone, e.g. Asia/Shanghai or Europe/London",
            )
            for name in ("posixrules", "localtime", "Factory", "UTC ", " Asia/Shanghai")
        ],
        ({"locale": "fr-FR"}, "locale", "locale: Input should be 'zh-CN' or 'en'"),
        ({"locale": "zh_CN"}, "locale", "locale: Input should be 'zh-CN' or 'en'"),
        ({"attributes": "gold"}, "attributes", "attributes: Input should be a valid dictionary"),
        ({"attributes": {"tier": {"nested": 1}}}, "attributes.tier", None),
        ({"email": 42}, "email", "email: Input should be a valid string"),
        ({"consents": {"marketing": {"email": True}}}, "consents.marketing", None),
        ({"consents": {"feedback": {"fax": True}}}, "consents.feedback.fax", None),
        ({"consents": {"feedback": {"email": "yes please"}}}, "consents.feedback.email", None),
    ],
)
def test_wrong_values_for_a_customer_are_422_and_nothing_changes(
    api: TestClient, runtime: Runtime, existing: Rows, *, body: dict[str, Any], field: str, message: str | None
) -> None:
    # A valid change rides along in the same request: it must not be applied either.
    response = api.put("/api/v1/customers/c1", json={"locale": "en", "email": "changed@example.com", **body})

    assert_error(response, 422, "invalid_field", field, message)
    assert database_rows(runtime) == existing
    customer = api.get("/api/v1/customers/c1").json()
    assert (customer["locale"], customer["email"]) == ("zh-CN", "c***@example.com")


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"email": "not-an-email"}, "email", "not a valid email address, e.g. name@example.com"),
        ({"email": "zhang san@example.com"}, "email", "not a valid email address, e.g. name@example.com"),
        ({"phone": "12345"}, "phone", "not a valid phone number; give it in E.164 form, e.g. +8613812341234"),
        ({"phone": "call me"}, "phone", "not a valid phone number; give it in E.164 form, e.g. +8613812341234"),
    ],
)
def test_bad_contact_points_are_422_and_nothing_changes(
    api: TestClient, runtime: Runtime, existing: Rows, *, body: dict[str, Any], field: str, message: str
) -> None:
    # The locale and the consent come before the bad contact point: neither may be kept.
    response = api.put(
        "/api/v1/customers/c1", json={"locale": "en", "consents": {"feedback": {"email": False}}, **body}
    )

    assert_error(response, 422, "invalid_field", field, message)
    assert database_rows(runtime) == existing


def test_a_new_customer_with_a_bad_phone_is_not_created(api: TestClient, runtime: Runtime, existing: Rows) -> None:
    response = api.put(
        "/api/v1/customers/c2",
        json={"email": "li.si@example.com", "phone": "12345", "consents": {"feedback": {"email": True}}},
    )

    assert_error(response, 422, "invalid_field", "phone")
    assert database_rows(runtime) == existing
    assert_error(api.get("/api/v1/customers/c2"), 404, "customer_not_found", "customer_id", "No customer with id 'c2'.")


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/api/v1/customers/" + "x" * 129, 422, "customer_id"),
        ("/api/v1/customers/a%00b", 400, None),
    ],
)
def test_bad_customer_ids_in_the_url(
    api: TestClient, runtime: Runtime, existing: Rows, *, path: str, status: int, field: str | None
) -> None:
    put = api.put(path, json={"locale": "en"})
    get = api.get(path)

    code = "invalid_field" if status == 422 else "invalid_character"
    assert_error(put, status, code, field)
    assert_error(get, status, code, field)
    assert database_rows(runtime) == existing


# -- unknown things ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/customers/ghost",
        "/api/v1/customers/ghost/inbox",
        "/api/v1/customers/ghost/rewards",
        "/api/v1/followups?customer_id=ghost",
        "/api/v1/cases?customer_id=ghost",
        "/api/v1/responses?customer_id=ghost",
    ],
)
def test_unknown_customer_is_404(api: TestClient, runtime: Runtime, existing: Rows, path: str) -> None:
    assert_error(api.get(path), 404, "customer_not_found", "customer_id", "No customer with id 'ghost'.")
    assert database_rows(runtime) == existing


def test_unknown_strategy_and_survey_are_404(api: TestClient, runtime: Runtime, existing: Rows) -> None:
    assert_error(
        api.get("/api/v1/strategies/ghost"), 404, "strategy_not_found", "strategy", "No strategy with key 'ghost'."
    )
    assert_error(
        api.patch("/api/v1/strategies/ghost", json={"status": "paused"}),
        404,
        "strategy_not_found",
        "strategy",
        "No strategy with key 'ghost'.",
    )
    assert_error(
        api.get("/api/v1/surveys/ghost"),
        404,
        "survey_not_found",
        "survey",
        "No survey with key 'ghost'. Create it with POST /api/v1/surveys first.",
    )
    assert_error(
        api.get("/api/v1/responses?survey=ghost"),
        404,
        "survey_not_found",
        "survey",
        "No survey with key 'ghost'. Create it with POST /api/v1/surveys first.",
    )
    assert database_rows(runtime) == existing


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/api/v2/customers/c1", "/nothing", "/api/v1/customers/c1/x"])
def test_unknown_routes_are_json_404(api: TestClient, anonymous: TestClient, path: str) -> None:
    for client in (api, anonymous):
        assert_error(client.get(path), 404, "not_found", None, "No such resource.")
        assert_error(client.post(path, json={}), 404, "not_found", None, "No such resource.")


def test_a_method_a_route_does_not_take_is_json_405(api: TestClient, runtime: Runtime, existing: Rows) -> None:
    assert_error(
        api.delete("/api/v1/customers/c1"), 405, "method_not_allowed", None, "This method is not allowed here."
    )
    assert_error(api.put("/api/v1/events", json={"events": []}), 405, "method_not_allowed", None)
    assert database_rows(runtime) == existing


# -- authentication ----------------------------------------------------------------------------


def _api_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every operation the API publishes in its OpenAPI document, with its path filled in."""
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    filled = {"customer_id": "c1", "key": "after-large-transfer"}
    return [
        (method.upper(), re.sub(r"\{(\w+)\}", lambda m: filled.get(m.group(1), "1"), path))
        for path, operations in sorted(paths.items())
        for method in sorted(operations)
    ]


VALID_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/api/v1/customers/c1"): {"email": "intruder@example.com", "consents": {"feedback": {"email": False}}},
    ("POST", "/api/v1/events"): {"events": [transfer("e-intruder", "c-intruder")]},
    ("POST", "/api/v1/surveys"): survey_body("intruder"),
    ("POST", "/api/v1/strategies"): strategy_body("intruder"),
    ("PATCH", "/api/v1/strategies/after-large-transfer"): {"status": "paused"},
}


def test_the_401_test_sees_every_route_of_the_contract(api: TestClient) -> None:
    routes = set(_api_routes(api))
    assert set(VALID_BODIES) <= routes
    assert {
        ("GET", "/api/v1/customers/c1"),
        ("GET", "/api/v1/customers/c1/inbox"),
        ("GET", "/api/v1/customers/c1/rewards"),
        ("GET", "/api/v1/surveys"),
        ("GET", "/api/v1/surveys/after-large-transfer"),
        ("GET", "/api/v1/responses"),
        ("GET", "/api/v1/strategies"),
        ("GET", "/api/v1/strategies/after-large-transfer"),
        ("GET", "/api/v1/followups"),
        ("GET", "/api/v1/cases"),
        ("GET", "/api/v1/metrics/summary"),
    } <= routes


@pytest.mark.parametrize(
    ("authorization", "code", "message"),
    [
        (None, "missing_api_key", MISSING_KEY),
        ("", "missing_api_key", MISSING_KEY),
        ("fu_notakey", "missing_api_key", MISSING_KEY),
        ("Basic dXNlcjpwYXNz", "missing_api_key", MISSING_KEY),
        ("Bearer ", "invalid_api_key", WRONG_KEY),
        ("Bearer fu_notakey", "invalid_api_key", WRONG_KEY),
        ("bearer fu_notakey", "invalid_api_key", WRONG_KEY),  # the scheme is case-insensitive
    ],
)
def test_every_api_route_needs_a_valid_key_and_writes_nothing_without_one(
    api: TestClient,
    anonymous: TestClient,
    runtime: Runtime,
    existing: Rows,
    *,
    authorization: str | None,
    code: str,
    message: str,
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in _api_routes(api):
        body = VALID_BODIES.get((method, path), {} if method != "GET" else None)
        response = anonymous.request(method, path, json=body, headers=headers)
        assert_error(response, 401, code, None, message)
    assert database_rows(runtime) == existing
    # The same requests with the key do work, so the 401s above were about the key alone.
    assert api.get("/api/v1/customers/c1").status_code == 200


def test_a_valid_key_of_another_deployment_is_refused(anonymous: TestClient, existing: Rows) -> None:
    other = "fu_" + "A" * 43
    response = anonymous.get("/api/v1/cases", headers={"Authorization": f"Bearer {other}"})
    assert_error(response, 401, "invalid_api_key", None, WRONG_KEY)


# -- events ------------------------------------------------------------------------------------


def test_a_batch_over_10000_events_is_413_and_none_is_stored(api: TestClient, runtime: Runtime, existing: Rows) -> None:
    events = [transfer(f"e{i}", f"c{i % 50}") for i in range(10_001)]

    response = api.post("/api/v1/events", json={"events": events})

    assert_error(
        response,
        413,
        "batch_too_large",
        "events",
        "A batch holds at most 10000 events; split it and send the rest in another call.",
    )
    assert database_rows(runtime) == existing
    assert api.get("/api/v1/followups").json()["total"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"events": "e1"},
        {"events": {"event_id": "e1"}},
        {"events": [], "extra": 1},
    ],
)
def test_an_events_body_of_the_wrong_shape_is_422(
    api: TestClient, runtime: Runtime, existing: Rows, body: dict[str, Any]
) -> None:
    response = api.post("/api/v1/events", json=body)

    assert response.status_code == 422
    assert response.json()["error"]["code"] in {"missing_field", "invalid_field", "unknown_field"}
    assert response.json()["error"]["field"] in {"events", "extra"}
    assert database_rows(runtime) == existing


@pytest.mark.parametrize(
    ("occurred_at", "message"),
    [
        ("2026-11-23T10:00:00", OFFSET_HINT),
        ("2026-11-23 10:00", OFFSET_HINT),
        ("2026-11-23", OFFSET_HINT),
        ("yesterday", OFFSET_HINT),
        (1763863200, OFFSET_HINT),
        (None, OFFSET_HINT),
        ("2026-13-45T10:00:00+08:00", "occurred_at: month must be in 1..12"),
        ("9999-12-31T23:59:59-23:59", "occurred_at: occurred_at must be in the years 1970 to 2999"),
        ("0001-01-01T00:00:00+08:00", "occurred_at: occurred_at must be in the years 1970 to 2999"),
        ("1969-12-31T23:59:59Z", "occurred_at: occurred_at must be in the years 1970 to 2999"),
    ],
)
def test_an_event_with_a_bad_occurred_at_is_rejected_and_not_stored(
    api: TestClient, runtime: Runtime, existing: Rows, occurred_at: Any, message: str
) -> None:
    event = {**transfer("e-bad", "c-bad"), "occurred_at": occurred_at}

    response = api.post("/api/v1/events", json={"events": [event]})

    assert response.status_code == 200
    assert response.json() == {
        "accepted": 0,
        "duplicates": 0,
        "rejected": [{"index": 0, "event_id": "e-bad", "code": "invalid_event", "message": message}],
    }
    assert database_rows(runtime) == existing
    assert api.get("/api/v1/customers/c-bad").status_code == 404


def test_a_mixed_batch_keeps_the_good_events_and_lists_each_bad_one(
    api: TestClient, runtime: Runtime, existing: Rows
) -> None:
    events: list[Any] = [
        transfer("good-1", "c1", amount=100),
        {**transfer("bad-offset", "c-offset"), "occurred_at": "2026-11-23T10:00:00"},
        "not an event",
        {key: value for key, value in transfer("ignored", "c-missing").items() if key != "event_id"},
        transfer("good-2", "c-new", amount=100),
        {**transfer("bad-amount", "c-amount"), "amount": "600000"},
        {**transfer("bad-type", "c-type"), "type": "Transfer Succeeded"},
        {**transfer("bad-extra", "c-extra"), "merchant": "x"},
        transfer("good-1", "c1", amount=100),
        {**transfer(42, "c-number")},  # type: ignore[arg-type]
    ]

    response = api.post("/api/v1/events", json={"events": events})

    assert response.status_code == 200
    assert response.json() == {
        "accepted": 2,
        "duplicates": 1,
        "rejected": [
            {"index": 1, "event_id": "bad-offset", "code": "invalid_event", "message": OFFSET_HINT},
            {
                "index": 2,
                "event_id": None,
                "code": "invalid_event",
                "message": "event: Input should be a valid dictionary",
            },
            {"index": 3, "event_id": None, "code": "invalid_event", "message": "event_id: Field required"},
            {
                "index": 5,
                "event_id": "bad-amount",
                "code": "invalid_event",
                "message": "amount: Input should be a valid integer",
            },
            {
                "index": 6,
                "event_id": "bad-type",
                "code": "invalid_event",
                "message": "type: String should match pattern '^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$'",
            },
            {
                "index": 7,
                "event_id": "bad-extra",
                "code": "invalid_event",
                "message": "merchant: Extra inputs are not permitted",
            },
            {
                "index": 9,
                "event_id": None,
                "code": "invalid_event",
                "message": "event_id: Input should be a valid string",
            },
        ],
    }
    # The good ones are stored and counted against their customers; the bad ones left no trace.
    assert api.get("/api/v1/customers/c1").json()["event_count"] == 1
    assert api.get("/api/v1/customers/c-new").json()["event_count"] == 1
    for ghost in ("c-offset", "c-missing", "c-amount", "c-type", "c-extra", "c-number"):
        assert api.get(f"/api/v1/customers/{ghost}").status_code == 404
    events_table = database_rows(runtime)["events"]
    assert sorted(row[1] for row in events_table) == ["good-1", "good-2"]


def test_an_event_id_or_customer_id_with_control_characters_is_rejected(
    api: TestClient, runtime: Runtime, existing: Rows
) -> None:
    events = [transfer("e\x00nul", "c2"), transfer("e2", "c\x00nul"), transfer("e3", "c\nnewline")]

    response = api.post("/api/v1/events", json={"events": events})

    assert response.status_code == 200
    assert response.json()["accepted"] == 0
    assert [(r["index"], r["message"]) for r in response.json()["rejected"]] == [
        (0, "event_id: event_id must not contain control characters"),
        (1, "customer_id: customer_id must not contain control characters"),
        (2, "customer_id: customer_id must not contain control characters"),
    ]
    assert database_rows(runtime) == existing


# -- surveys -----------------------------------------------------------------------------------

NPS = {"id": "nps", "type": "nps", "prompt": {"en": "How likely?"}}
TEXT = {"id": "comment", "type": "text", "required": False, "prompt": {"en": "Anything else?"}}


@pytest.mark.parametrize(
    ("overrides", "code", "field", "message"),
    [
        (
            {"questions": [TEXT]},
            "invalid_field",
            "questions",
            "questions: a survey needs at least one rating question (nps, csat or ces) or a yes_no question: "
            "the first one is what the one-click links answer",
        ),
        (
            {"questions": [NPS, {**TEXT, "id": "nps"}]},
            "invalid_field",
            "questions",
            "questions: question ids must be unique within a survey",
        ),
        (
            {"questions": []},
            "invalid_field",
            "questions",
            "questions: List should have at least 1 item after validation, not 0",
        ),
        ({"questions": [{**NPS, "type": "stars"}]}, "invalid_field", "questions.0", None),
        (
            {"questions": [{"id": "nps", "type": "nps"}]},
            "missing_field",
            "questions.0.prompt",
            "'questions.0.prompt' is required",
        ),
        ({"questions": [{**NPS, "prompt": {}}]}, "invalid_field", "questions.0.prompt", None),
        ({"questions": [{**NPS, "prompt": {"fr": "Bonjour"}}]}, "unknown_field", "questions.0.prompt.fr", None),
        ({"questions": [{**NPS, "id": "Has Spaces"}]}, "invalid_field", "questions.0.id", None),
        (
            {
                "questions": [
                    NPS,
                    {
                        "id": "why",
                        "type": "choice",
                        "prompt": {"en": "Why?"},
                        "options": [{"id": "a", "label": {"en": "A"}}],
                    },
                ]
            },
            "invalid_field",
            "questions.1.options",
            None,
        ),
        (
            {
                "questions": [
                    NPS,
                    {
                        "id": "why",
                        "type": "choice",
                        "prompt": {"en": "Why?"},
                        "options": [{"id": "a", "label": {"en": "A"}}, {"id": "a", "label": {"en": "B"}}],
                    },
                ]
            },
            "invalid_field",
            "questions.1.options",
            "questions.1.options: option ids must be unique within a question",
        ),
        ({"title": {}}, "invalid_field", "title", "title: give the text in at least one locale: zh-CN or en"),
        ({"title": "Your payment"}, "invalid_field", "title", None),
        ({"key": "Payment CSAT"}, "invalid_field", "key", None),
        ({"colour": "blue"}, "unknown_field", "colour", "'colour' is not a field this request accepts"),
    ],
)
def test_invalid_surveys_are_422_and_not_stored(
    api: TestClient,
    runtime: Runtime,
    existing: Rows,
    *,
    overrides: dict[str, Any],
    code: str,
    field: str,
    message: str | None,
) -> None:
    response = api.post("/api/v1/surveys", json={**survey_body("new-survey"), **overrides})

    assert_error(response, 422, code, field, message)
    assert database_rows(runtime) == existing
    assert api.get("/api/v1/surveys").json()["total"] == 1


def test_a_survey_missing_its_title_is_named(api: TestClient, runtime: Runtime, existing: Rows) -> None:
    body = survey_body("new-survey")
    del body["title"]

    assert_error(api.post("/api/v1/surveys", json=body), 422, "missing_field", "title", "'title' is required")
    assert database_rows(runtime) == existing


def test_a_duplicate_survey_key_is_409_and_keeps_the_first(api: TestClient, runtime: Runtime, existing: Rows) -> None:
    response = api.post("/api/v1/surveys", json=survey_body(title={"en": "Replaced"}))

    assert_error(response, 409, "survey_exists", "key", "A survey with key 'payment-csat' already exists.")
    assert database_rows(runtime) == existing
    assert api.get("/api/v1/surveys/payment-csat").json()["title"] == {"zh-CN": "支付体验回访", "en": "Your payment"}


# -- strategies --------------------------------------------------------------------------------

CONDITION = {"field": "event.amount", "op": "gte", "value": 1}
RULE_SHAPE = (
    "audience: a rule is an object with 'all', 'any' or 'not', a segment reference {'segment': key}, "
    "or a condition with 'field', 'op' and 'value'"
)


def _nested(levels: int) -> dict[str, Any]:
    rule: dict[str, Any] = CONDITION
    for _ in range(levels - 1):
        rule = {"not": rule}
    return rule


@pytest.mark.parametrize(
    ("audience", "code", "field", "message"),
    [
        (
            {"field": "event.amount", "op": "like", "value": 1},
            "invalid_field",
            "audience.op",
            "audience.op: Input should be 'eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'not_in', 'contains' or 'exists'",
        ),
        (
            {"field": "amount", "op": "eq", "value": 1},
            "invalid_field",
            "audience.field",
            "audience.field: field must be a dotted path starting with event. or customer., "
            "e.g. event.amount or customer.attributes.tier",
        ),
        ({"field": "event.amount", "value": 1}, "missing_field", "audience.op", "'audience.op' is required"),
        (
            {"all": []},
            "invalid_field",
            "audience.all",
            "audience.all: List should have at least 1 item after validation, not 0",
        ),
        ({"any": [CONDITION, {**CONDITION, "fields": "event.amount"}]}, "unknown_field", "audience.any.1.fields", None),
        (
            {"any": [CONDITION, {"op": "eq", "value": 1}]},
            "missing_field",
            "audience.any.1.field",
            "'audience.any.1.field' is required",
        ),
        ([CONDITION], "invalid_field", "audience", RULE_SHAPE),
        ("event.amount > 1", "invalid_field", "audience", RULE_SHAPE),
        (
            {"all": [CONDITION, 7]},
            "invalid_field",
            "audience.all.1",
            RULE_SHAPE.replace("audience", "audience.all.1", 1),
        ),
        ({"not": [CONDITION]}, "invalid_field", "audience.not", RULE_SHAPE.replace("audience", "audience.not", 1)),
        (
            {"field": "event.type", "op": "in", "value": "transfer.succeeded"},
            "invalid_field",
            "audience",
            "audience: 'in' needs a non-empty list as value",
        ),
        (
            {"field": "event.type", "op": "in", "value": []},
            "invalid_field",
            "audience",
            "audience: 'in' needs a non-empty list as value",
        ),
        (
            {"field": "customer.email", "op": "exists", "value": "yes"},
            "invalid_field",
            "audience",
            "audience: 'exists' needs true or false as value",
        ),
        (
            {"field": "event.amount", "op": "gt", "value": True},
            "invalid_field",
            "audience",
            "audience: 'gt' compares numbers or strings, not booleans",
        ),
        (
            {"field": "event.amount", "op": "eq"},
            "invalid_field",
            "audience",
            "audience: 'eq' needs a single value (string, number or boolean)",
        ),
        (_nested(13), "invalid_field", "audience", "audience: the audience rule is nested deeper than 12 levels"),
    ],
)
def test_invalid_rule_trees_are_422_and_not_stored(
    api: TestClient,
    runtime: Runtime,
    existing: Rows,
    *,
    audience: Any,
    code: str,
    field: str,
    message: str | None,
) -> None:
    response = api.post("/api/v1/strategies", json=strategy_body("new-strategy", audience=audience))

    assert_error(response, 422, code, field, message)
    assert database_rows(runtime) == existing
    assert api.get("/api/v1/strategies").json()["total"] == 1


def test_a_rule_tree_at_the_depth_limit_is_accepted(api: TestClient, existing: Rows) -> None:
    response = api.post("/api/v1/strategies", json=strategy_body("deep-but-fine", audience=_nested(12)))
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("value", ["P1M", "P1Y", "PT-5M", "-PT5M", "soon", "", "P", "PT", "30 minutes", "P1DT"])
def test_bad_durations_are_422_and_not_stored(api: TestClient, runtime: Runtime, existing: Rows, value: str) -> None:
    for field in ("delay", "remind_after", "expire_after"):
        response = api.post("/api/v1/strategies", json=strategy_body("new-strategy", **{field: value}))

        assert_error(response, 422, "invalid_field", field, f"{field}: '{value}' {DURATION_HINT}")
    assert database_rows(runtime) == existing


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"delay": 1800}, "delay", "delay: a duration is an ISO 8601 string such as PT30M or P2D"),
        ({"delay": "P99999999999D"}, "delay", "delay: 'P99999999999D' is longer than any duration followup accepts"),
        (
            {"expire_after": "PT999999999999999H"},
            "expire_after",
            "expire_after: 'PT999999999999999H' is longer than any duration followup accepts",
        ),
        ({"delay": "P31D"}, None, "delay must be between PT0S and P30D"),
        ({"expire_after": "PT30M"}, None, "expire_after must be between PT1H and P90D"),
        ({"remind_after": "P8D"}, None, "remind_after must be at least PT10M and shorter than expire_after"),
        ({"remind_after": "PT5M"}, None, "remind_after must be at least PT10M and shorter than expire_after"),
    ],
)
def test_durations_out_of_range_are_422(
    api: TestClient, runtime: Runtime, existing: Rows, *, overrides: dict[str, Any], field: str | None, message: str
) -> None:
    response = api.post("/api/v1/strategies", json=strategy_body("new-strategy", **overrides))

    assert_error(response, 422, "invalid_field", field, message)
    assert database_rows(runtime) == existing


@pytest.mark.parametrize(
    ("overrides", "code", "field", "message"),
    [
        (
            {"survey": "no-such-survey"},
            "survey_not_found",
            "survey",
            "No survey with key 'no-such-survey'; create the survey first.",
        ),
        (
            {"kind": "periodic"},
            "invalid_field",
            "trigger",
            "trigger: a periodic strategy has no trigger; only event strategies do",
        ),
        (
            {"kind": "proactive", "trigger": None},
            "invalid_field",
            "cadence",
            "cadence: a proactive strategy needs a cadence, e.g. 'P90D': everyone in the audience once per 90 days",
        ),
        (
            {"channels": ["sms"]},
            "channel_not_available",
            "channels",
            "channel 'sms' is not configured here; available: email, inapp, phone.",
        ),
        (
            {"channels": ["email", "push"]},
            "channel_not_available",
            "channels",
            "channel 'push' is not configured here; available: email, inapp, phone.",
        ),
        (
            {"channels": ["fax"]},
            "channel_not_available",
            "channels",
            "channel 'fax' is not configured here; available: email, inapp, phone.",
        ),
        ({"channels": ["Fax!"]}, "invalid_field", "channels.0", None),
        ({"channels": []}, "invalid_field", "channels", None),
        (
            {"channels": ["email", "email"]},
            "invalid_field",
            "channels",
            "channels: each channel may appear once; the order is the order of preference",
        ),
        ({"kind": "cron"}, "invalid_field", "kind", "kind: Input should be 'event', 'periodic' or 'proactive'"),
        ({"trigger": None}, "invalid_field", None, "an event strategy needs a trigger with event_types"),
        ({"trigger": {"event_types": []}}, "invalid_field", "trigger.event_types", None),
        ({"trigger": {"event_types": ["Transfer"]}}, "invalid_field", "trigger.event_types.0", None),
        ({"sample_rate": 1.5}, "invalid_field", "sample_rate", "sample_rate: Input should be less than or equal to 1"),
        ({"sample_rate": "high"}, "invalid_field", "sample_rate", None),
        ({"holdout_percent": -1}, "invalid_field", "holdout_percent", None),
        ({"recontact_days": 1.5}, "invalid_field", "recontact_days", None),
        ({"reward": {"points": 0}}, "invalid_field", "reward.points", None),
        (
            {"reward": {"points": 10, "coins": 5}},
            "unknown_field",
            "reward.coins",
            "'coins' is not a field this request accepts",
        ),
        ({"key": "After Large Transfer"}, "invalid_field", "key", None),
        ({"status": "deleted"}, "invalid_field", "status", "status: Input should be 'active' or 'paused'"),
    ],
)
def test_invalid_strategies_are_4xx_and_not_stored(
    api: TestClient,
    runtime: Runtime,
    existing: Rows,
    *,
    overrides: dict[str, Any],
    code: str,
    field: str | None,
    message: str | None,
) -> None:
    response = api.post("/api/v1/strategies", json={**strategy_body("new-strategy"), **overrides})

    assert_error(response, 422, code, field, message)
    assert database_rows(runtime) == existing
    assert api.get("/api/v1/strategies").json()["total"] == 1


def test_a_strategy_missing_its_channels_is_named(api: TestClient, runtime: Runtime, existing: Rows) -> None:
    body = strategy_body("new-strategy")
    del body["channels"]

    assert_error(api.post("/api/v1/strategies", json=body), 422, "missing_field", "channels", "'channels' is required")
    assert database_rows(runtime) == existing


def test_a_duplicate_strategy_key_is_409_and_keeps_the_first(api: TestClient, runtime: Runtime, existing: Rows) -> None:
    response = api.post("/api/v1/strategies", json=strategy_body(channels=["inapp"], status="paused"))

    assert_error(response, 409, "strategy_exists", "key", "A strategy with key 'after-large-transfer' already exists.")
    assert database_rows(runtime) == existing
    kept = api.get("/api/v1/strategies/after-large-transfer").json()
    assert (kept["channels"], kept["status"]) == (["email", "inapp"], "active")


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"status": "deleted"}, "invalid_field", "status"),
        ({}, "missing_field", "status"),
        ({"status": "paused", "channels": ["inapp"]}, "unknown_field", "channels"),
        ({"status": None}, "invalid_field", "status"),
    ],
)
def test_invalid_strategy_updates_are_422_and_change_nothing(
    api: TestClient, runtime: Runtime, existing: Rows, *, body: dict[str, Any], code: str, field: str
) -> None:
    response = api.patch("/api/v1/strategies/after-large-transfer", json=body)

    assert_error(response, 422, code, field)
    assert database_rows(runtime) == existing


# -- query strings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field", "message"),
    [
        ("/api/v1/cases?limit=0", "limit", "limit: Input should be greater than or equal to 1"),
        ("/api/v1/cases?limit=501", "limit", "limit: Input should be less than or equal to 500"),
        (
            "/api/v1/followups?limit=ten",
            "limit",
            "limit: Input should be a valid integer, unable to parse string as an integer",
        ),
        ("/api/v1/followups?offset=-1", "offset", "offset: Input should be greater than or equal to 0"),
        ("/api/v1/followups?status=lost", "status", None),
        ("/api/v1/cases?priority=urgent", "priority", "priority: Input should be 'security', 'high' or 'normal'"),
        (
            "/api/v1/metrics/summary?group_by=weekday",
            "group_by",
            "group_by: Input should be 'channel', 'event_type', 'locale' or 'variant'",
        ),
        (
            "/api/v1/metrics/summary?from=2026-11-01T00:00:00",
            "from",
            "from: give an RFC 3339 time with an offset, such as 2026-11-01T00:00:00Z or 2026-11-01T08:00:00+08:00",
        ),
        # Numbers are not times, nor is a date alone
        (
            "/api/v1/metrics/summary?to=0.5",
            "to",
            "to: give an RFC 3339 time with an offset, such as 2026-11-01T00:00:00Z or 2026-11-01T08:00:00+08:00",
        ),
        (
            "/api/v1/responses?from=1764547200",
            "from",
            "from: give an RFC 3339 time with an offset, such as 2026-11-01T00:00:00Z or 2026-11-01T08:00:00+08:00",
        ),
        (
            "/api/v1/responses?from=2026-11-01",
            "from",
            "from: give an RFC 3339 time with an offset, such as 2026-11-01T00:00:00Z or 2026-11-01T08:00:00+08:00",
        ),
        (
            "/api/v1/responses?to=2026-11-01T00:00Z",
            "to",
            "to: give an RFC 3339 time with an offset, such as 2026-11-01T00:00:00Z or 2026-11-01T08:00:00+08:00",
        ),
        ("/api/v1/responses?to=next-week", "to", None),
        ("/api/v1/responses?to=9999-12-31T23:59:59-23:59", "to", "to: the time is outside the years 1 to 9999 in UTC"),
        (
            "/api/v1/metrics/summary?from=0001-01-01T00:00:00%2B23:59",
            "from",
            "from: the time is outside the years 1 to 9999 in UTC",
        ),
    ],
)
def test_bad_query_strings_are_422(
    api: TestClient, runtime: Runtime, existing: Rows, *, path: str, field: str, message: str | None
) -> None:
    assert_error(api.get(path), 422, "invalid_field", field, message)
    assert database_rows(runtime) == existing


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/followups?customer_id=c%00",
        "/api/v1/cases?customer_id=%00",
        "/api/v1/metrics/summary?strategy=a%00",
        "/api/v1/strategies/a%00b",
        "/api/v1/surveys/a%00b",
    ],
)
def test_a_nul_character_in_a_url_is_400(api: TestClient, path: str) -> None:
    # PostgreSQL text cannot hold NUL; no identifier here has one, so it is refused up front.
    where = "query string" if "?" in path else "URL path"
    assert_error(
        api.get(path),
        400,
        "invalid_character",
        None,
        f"The {where} contains a control character (U+0000); remove it and send the request again.",
    )


@pytest.mark.parametrize(
    "when",
    [
        "2026-11-01T00:00:00Z",
        "2026-11-01t08:00:00.5+08:00",
        "2026-11-01 00:00:00-05:00",
        "2026-11-01T00:00:00.123456789z",
    ],
)
def test_rfc_3339_times_are_taken_as_filters(api: TestClient, when: str) -> None:
    answer = api.get("/api/v1/responses", params={"from": when, "to": "2026-12-01T00:00:00Z"})

    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    "zone", ["Asia/Shanghai", "Asia/Calcutta", "UTC", "Etc/GMT-8", "America/Argentina/Buenos_Aires"]
)
def test_every_zone_of_the_tz_database_is_taken(api: TestClient, zone: str) -> None:
    answer = api.put("/api/v1/customers/tz-1", json={"time_zone": zone})

    assert answer.status_code == 200, answer.text
    assert answer.json()["time_zone"] == zone


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/v1/followups?costumer_id=c1", "costumer_id"),  # a misspelt filter would answer every row
        ("/api/v1/surveys?limit=5&page=2", "page"),
        ("/api/v1/customers/c1?fields=email", "fields"),
        ("/api/v1/metrics/summary?=x", ""),
    ],
)
def test_a_query_parameter_the_route_does_not_take_is_named(
    api: TestClient, runtime: Runtime, existing: Rows, path: str, name: str
) -> None:
    assert_error(api.get(path), 422, "unknown_field", name, f"'{name}' is not a parameter this request accepts")
    assert database_rows(runtime) == existing
