"""The guard in front of every route: bounded bodies, no control characters, answers in the
caller's language (JSON for the API, a page for people)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from followup.app import create_app
from followup.config import Settings
from followup.runtime import Runtime, build_runtime
from followup.surveys import service as surveys
from tests.builders.events import transfer
from tests.builders.surveys import survey_body
from tests.conftest import LiveServer
from tests.test_api_errors import Rows, assert_error, database_rows


@pytest.fixture
def existing(runtime: Runtime) -> Rows:
    return database_rows(runtime)


def survey_count(runtime: Runtime) -> int:
    with runtime.read_session() as session:
        return surveys.list_surveys(session, limit=100, offset=0)[1]


def test_a_body_over_the_limit_is_413_before_it_is_read_whole(api: TestClient, runtime: Runtime) -> None:
    padding = "x" * (runtime.settings.max_body_bytes + 1)

    response = api.post("/api/v1/surveys", json=survey_body(key="big", padding=padding))

    assert_error(
        response,
        413,
        "body_too_large",
        None,
        "The request body is larger than 1,048,576 bytes, the most this endpoint accepts.",
    )
    assert survey_count(runtime) == 0


def test_a_chunked_body_over_the_limit_is_413_too(api: TestClient, runtime: Runtime) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(300):
            yield b"x" * 4096  # 1.2 MB in all, with no Content-Length

    response = api.post("/api/v1/surveys", content=chunks(), headers={"Content-Type": "application/json"})

    assert_error(response, 413, "body_too_large", None)
    assert survey_count(runtime) == 0


def test_the_events_batch_has_its_own_larger_limit(settings: Settings, api_key: str) -> None:
    events = [
        {
            "event_id": f"e{i}",
            "type": "payment.succeeded",
            "customer_id": f"c{i % 50}",
            "occurred_at": "2026-11-23T01:00:00Z",
            "attributes": {"note": "n" * 150},
        }
        for i in range(6000)
    ]
    body = json.dumps({"events": events}).encode()
    assert settings.max_body_bytes < len(body) < settings.max_events_body_bytes
    small = build_runtime(settings.model_copy(update={"max_events_body_bytes": len(body) - 1}))
    try:
        with TestClient(create_app(small), headers={"Authorization": f"Bearer {api_key}"}) as client:
            refused = client.post("/api/v1/events", content=body, headers={"Content-Type": "application/json"})
    finally:
        small.close()
    roomy = build_runtime(settings)
    try:
        with TestClient(create_app(roomy), headers={"Authorization": f"Bearer {api_key}"}) as client:
            taken = client.post("/api/v1/events", content=body, headers={"Content-Type": "application/json"})
    finally:
        roomy.close()

    assert_error(refused, 413, "body_too_large", None)
    assert taken.status_code == 200, taken.text
    assert taken.json()["accepted"] == 6000


@pytest.mark.parametrize(
    "escaped",
    [r"\u0000", r"\u001b", r"\b", r"\f", r"\u007f", r"\u0085", r"\ud800", r"\udc00", r"\ud800x"],
)
def test_an_escaped_control_character_in_json_is_400_and_nothing_is_written(
    api: TestClient, runtime: Runtime, existing: Rows, escaped: str
) -> None:
    body = json.dumps(survey_body(key="escaped")).replace("Your payment", f"Your{escaped}payment")

    response = api.post("/api/v1/surveys", content=body.encode(), headers={"Content-Type": "application/json"})

    assert_error(response, 400, "invalid_character", None)
    assert database_rows(runtime) == existing


@pytest.mark.parametrize(
    ("written", "stored"),
    [(r"\\u0000", "\\u0000"), (r"\ud83d\ude00", "\U0001f600"), (r"line\nbreak", "line\nbreak")],
)
def test_text_that_only_looks_like_a_control_character_is_kept(
    api: TestClient, runtime: Runtime, written: str, stored: str
) -> None:
    body = json.dumps(survey_body(key="kept")).replace("Anything else?", f"Anything {written}?")

    response = api.post("/api/v1/surveys", content=body.encode(), headers={"Content-Type": "application/json"})

    assert response.status_code == 201, response.text
    [question] = [q for q in response.json()["questions"] if q["id"] == "comment"]
    assert question["prompt"]["en"] == f"Anything {stored}?"


def test_a_nul_in_the_console_sign_in_form_is_a_fast_400_page(runtime: Runtime) -> None:
    client = TestClient(create_app(runtime))
    form = client.get("/console/login")
    csrf = form.text.split('name="csrf" value="')[1].split('"')[0]

    began = time.perf_counter()
    response = client.post(
        "/console/login",
        content=f"email=a%00b@x&password=secret&csrf={csrf}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert time.perf_counter() - began < 1.0
    assert response.status_code == 400
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "control character (U+0000)" in response.text


@pytest.mark.parametrize("path", ["/s/abc%00def", "/s/abc?score=1%0b", "/u/x%1b", "/console/customers/a%00b"])
def test_control_characters_in_page_urls_get_a_400_page(api: TestClient, path: str) -> None:
    response = api.get(path)

    assert response.status_code == 400
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "请求无法处理" in response.text
    assert response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


def test_the_events_batch_refuses_each_bad_event_on_its_own(api: TestClient, runtime: Runtime) -> None:
    events = [
        transfer("e\ud800", "c1"),
        transfer("e2", "c\udc00"),
        {**transfer("e3", "c3"), "attributes": {"note": "a\ud800b"}},
        {**transfer("e4", "c4"), "attributes": {"note": "a\x00b"}},
        {**transfer("e5", "c5"), "attributes": {"note": "a\x85b"}},
        {**transfer("e6", "c6"), "attributes": {"note": "line\nbreak\tand tab"}},
    ]
    body = json.dumps({"events": events}).encode()

    response = api.post("/api/v1/events", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 200, response.text
    unicode = "must be valid Unicode text (a lone surrogate such as \\ud800 is not)"
    control = "attributes: attributes must not hold control characters (tab and line breaks are allowed)"
    assert response.json() == {
        "accepted": 1,
        "duplicates": 0,
        "rejected": [
            {"index": 0, "event_id": None, "code": "invalid_event", "message": f"event_id: event_id {unicode}"},
            {"index": 1, "event_id": "e2", "code": "invalid_event", "message": f"customer_id: customer_id {unicode}"},
            {
                "index": 2,
                "event_id": "e3",
                "code": "invalid_event",
                "message": "attributes: attributes must hold only finite numbers and valid Unicode text",
            },
            {"index": 3, "event_id": "e4", "code": "invalid_event", "message": control},
            {"index": 4, "event_id": "e5", "code": "invalid_event", "message": control},
        ],
    }


@pytest.mark.parametrize("chunked", [False, True])
def test_a_client_that_writes_the_whole_body_first_reads_the_413(
    live_server: LiveServer, api_key: str, runtime: Runtime, *, chunked: bool
) -> None:
    # Given a client that writes the whole body before it reads an answer, as the standard
    # library's does, and a body larger than the socket buffers hold
    body = b'{"key": "big", "padding": "' + b"x" * 30_000_000 + b'"}'
    connection = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=30)
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    if chunked:
        connection.request(
            "POST", "/api/v1/surveys", body=(body[i : i + 65536] for i in range(0, len(body), 65536)), headers=headers
        )
    else:
        connection.request("POST", "/api/v1/surveys", body=body, headers=headers)
    answer = connection.getresponse()

    # Then it reads the reason, not a reset connection
    assert answer.status == 413
    assert json.loads(answer.read())["error"]["code"] == "body_too_large"
    connection.close()
    assert survey_count(runtime) == 0
    # And the server goes on serving
    assert httpx.get(f"{live_server.url}/healthz").status_code == 200
