"""Logs: an unexpected error is logged once, as fields, fast, and nothing personal reaches a line,
not even from a whole loop of event, message and answer."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from followup.app import create_app
from followup.kernel.logging import configure_logging, get_logger, scrub, unconfigure_logging
from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.worker import Worker
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.conftest import SmtpSink
from tests.helpers import survey_path

SECRET_EMAIL = "li.wei.private@example.cn"
SECRET_PHONE = "+86 138 0013 8000"


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """Logging configured as an operator would (JSON), writing into the captured stderr."""
    configure_logging(level="INFO", fmt="json")
    yield capsys
    unconfigure_logging()


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    captured = capsys.readouterr()
    return [json.loads(line) for line in (captured.err + captured.out).splitlines() if line.startswith("{")]


def test_scrub_hides_addresses_numbers_and_tokens_but_keeps_dates_and_names() -> None:
    text = (
        f"send to {SECRET_EMAIL} / {SECRET_PHONE} card 4111 1111 1111 1111 "
        "link /s/Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789abcd at 2026-11-23T02:00:00Z in plan_followups_for_events"
    )

    assert scrub(text) == (
        "send to <email> / <number> card <number> link /s/<redacted> at 2026-11-23T02:00:00Z in plan_followups_for_events"
    )


@given(
    local=st.from_regex(r"[a-z][a-z0-9._]{0,20}", fullmatch=True),
    domain=st.from_regex(r"[a-z][a-z0-9]{0,10}\.(cn|com|org)", fullmatch=True),
    prefix=st.text(max_size=20),
    suffix=st.text(max_size=20),
)
def test_no_email_survives_scrubbing(local: str, domain: str, prefix: str, suffix: str) -> None:
    address = f"{local}@{domain}"

    assert address not in scrub(f"{prefix} {address} {suffix}")


@given(digits=st.from_regex(r"1[3-9]\d{9}|\d{4}( \d{4}){3}|\d{4}(-\d{4}){3}", fullmatch=True))
def test_no_phone_or_card_number_survives_scrubbing(digits: str) -> None:
    assert digits not in scrub(f"value {digits} here")


def test_an_exception_is_one_line_of_fields_without_locals(json_logs: pytest.CaptureFixture[str]) -> None:
    def send_to_customer() -> None:
        decrypted = SECRET_EMAIL  # a local that a traceback with locals would print
        raise ValueError(f"refused recipient {decrypted}")

    try:
        send_to_customer()
    except ValueError:
        get_logger("test").exception("send_crashed", message_id=7)

    [line] = lines(json_logs)
    assert line["event"] == "send_crashed"
    assert line["message_id"] == 7
    assert line["error_type"] == "builtins.ValueError"
    assert line["error"] == "refused recipient <email>"
    assert isinstance(line["error_stack"], list)
    assert str(line["error_stack"][-1]).endswith("in send_to_customer")
    assert SECRET_EMAIL not in json.dumps(line)
    assert "exception" not in line


def test_an_unexpected_error_in_a_request_is_logged_once_and_answered_500_fast(
    runtime: Runtime, json_logs: pytest.CaptureFixture[str]
) -> None:
    app = create_app(runtime)

    def broken(customer: str) -> None:
        email = SECRET_EMAIL
        raise RuntimeError(f"bug while reading {email} for {customer}")

    app.add_api_route("/api/v1/broken/{customer}", broken)
    client = TestClient(app, raise_server_exceptions=False)
    json_logs.readouterr()

    began = time.perf_counter()
    response = client.get("/api/v1/broken/13800138000", headers={"X-Request-ID": "req-42"})
    elapsed = time.perf_counter() - began

    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "code": "internal_error",
            "message": "Something went wrong on our side; it has been logged as request req-42.",
            "field": None,
        }
    }
    assert response.headers["x-request-id"] == "req-42"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert elapsed < 1.0
    logged = lines(json_logs)
    errors = [line for line in logged if line["level"] == "error"]
    assert [line["event"] for line in errors] == ["unhandled_error"]
    assert errors[0]["request_id"] == "req-42"
    assert errors[0]["error_type"] == "builtins.RuntimeError"
    assert errors[0]["route"] == "/api/v1/broken/{customer}"
    assert [line["route"] for line in logged if line["event"] == "request"] == ["/api/v1/broken/{customer}"]
    text = json.dumps(logged)
    assert SECRET_EMAIL not in text
    assert "13800138000" not in text
    assert "Traceback" not in text


def test_the_access_line_names_the_route_template_not_the_token(
    api: TestClient, json_logs: pytest.CaptureFixture[str]
) -> None:
    token = "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa_-ZyXwVuT"

    response = api.get(f"/s/{token}?score=9")
    customer = api.get("/api/v1/customers/13800138000")

    assert response.status_code == 404
    assert customer.status_code == 404
    line, customer_line = [line for line in lines(json_logs) if line["event"] == "request"]
    assert customer_line["route"] == "/api/v1/customers/{customer_id}"
    assert line["route"] == "/s/{token}"
    assert line["status"] == 404
    assert line["method"] == "GET"
    assert token not in json.dumps(line)


def test_a_full_loop_logs_nothing_the_customer_typed_or_is_reached_at(
    runtime: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """An event in, a follow-up planned, an email sent, a comment with a card number, a phone and
    an email answered — with every logger at DEBUG, the most an operator can ask for."""
    configure_logging(level="DEBUG", fmt="json")
    try:
        card, phone, email = "6222 0212 3456 7890 128", "13912345678", "wang.wu.private@example.cn"
        comment = f"钱被扣了两次，卡号 {card}，电话 {phone}，邮箱 {email}"
        customer = {"email": SECRET_EMAIL, "phone": SECRET_PHONE, "consents": {"feedback": {"email": True}}}
        assert api.put("/api/v1/customers/c1", json=customer).status_code == 200
        assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
        assert api.post("/api/v1/strategies", json=strategy_body()).status_code == 201
        assert api.post("/api/v1/events", json={"events": [transfer("e1", "c1")]}).json()["accepted"] == 1
        clock.advance(dt.timedelta(minutes=31))
        Worker(runtime).run_until_idle()
        path = survey_path(smtp.wait_for(1)[0])
        assert api.post(path, data={"step": "rating", "nps": "2"}, follow_redirects=False).status_code == 303
        assert api.post(path, data={"step": "details", "comment": comment}).status_code == 200
        Worker(runtime).run_until_idle()
        logged = lines(capsys)
    finally:
        unconfigure_logging()

    # The loop was logged, so the search below reads its lines
    routes = {line.get("route") for line in logged if line["event"] == "request"}
    assert {"/api/v1/customers/{customer_id}", "/api/v1/events", "/s/{token}"} <= routes
    text = json.dumps(logged, ensure_ascii=False)
    national = SECRET_PHONE.removeprefix("+86 ")
    for value in (card, card.replace(" ", ""), phone, email, SECRET_EMAIL, national, national.replace(" ", "")):
        assert value not in text
    assert "钱被扣了两次" not in text  # nor the words around them
    assert path.removeprefix("/s/") not in text  # nor the link that answers as the customer
