"""/metrics opens only to its bearer token, and HSTS is sent when the public address is https."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from followup.app import create_app
from followup.runtime import Runtime

TOKEN = "m3tr1cs-" + "x" * 40


def client_with(runtime: Runtime, **settings: object) -> TestClient:
    runtime.settings = runtime.settings.model_copy(update=settings)
    return TestClient(create_app(runtime))


@pytest.fixture
def metrics_client(runtime: Runtime) -> Iterator[TestClient]:
    with client_with(runtime, metrics_token=SecretStr(TOKEN)) as client:
        yield client


def test_metrics_answer_the_right_bearer_token(metrics_client: TestClient) -> None:
    metrics_client.get("/healthz")
    answer = metrics_client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert "followup_http_requests_total" in answer.text


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN],
)
def test_metrics_refuse_a_missing_or_wrong_token(metrics_client: TestClient, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = metrics_client.get("/metrics", headers=headers)
    assert answer.status_code == 401
    assert answer.json() == {
        "error": {
            "code": "invalid_metrics_token",
            "message": "Send the metrics token as 'Authorization: Bearer <FOLLOWUP_METRICS_TOKEN>'.",
            "field": None,
        }
    }
    assert "followup_http_requests_total" not in answer.text


def test_metrics_are_off_when_no_token_is_set(runtime: Runtime) -> None:
    assert runtime.settings.metrics_token is None  # the default
    client = TestClient(create_app(runtime))
    for headers in ({}, {"Authorization": "Bearer anything"}):
        answer = client.get("/metrics", headers=headers)
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "metrics_disabled"
        assert "followup_http_requests_total" not in answer.text


@pytest.mark.parametrize("path", ["/healthz", "/console/login", "/api/v1/customers/c1", "/s/nope", "/console/nope"])
def test_every_response_carries_hsts_when_the_public_url_is_https(runtime: Runtime, path: str) -> None:
    client = client_with(runtime, public_url="https://feedback.wallet.example")
    answer = client.get(path, follow_redirects=False)
    assert answer.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_no_hsts_over_plain_http(runtime: Runtime) -> None:
    assert runtime.settings.public_url == "http://testserver"
    answer = TestClient(create_app(runtime)).get("/healthz")
    assert answer.status_code == 200
    assert "Strict-Transport-Security" not in answer.headers
