"""Personal content: a strategy's message templates per locale, rendered in a sandbox with the
customer's stats and the event, money and numbers in the customer's locale; bad templates refused
at save time; a preview renders one customer's message and writes nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient

from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.worker import Worker
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.conftest import START, SmtpSink
from tests.test_api_errors import database_rows

SUMMARY = {
    "zh-CN": {
        "subject": "{{ survey.title }}：您的钱包月报",
        "body": "本月你用钱包支付了 {{ stats.volume_30d | money('CNY') }}，共 {{ stats.payments_30d }} 笔。",
    },
    "en": {
        "subject": "Your month with the wallet",
        "body": "You paid {{ stats.volume_30d | money('CNY') }} in {{ stats.payments_30d }} payments. "
        "{% if event %}Thanks for trying {{ event.attributes.feature }}.{% endif %}",
    },
}


def _customer(api: TestClient, customer_id: str, locale: str) -> None:
    body = {"email": f"{customer_id}@example.com", "locale": locale, "consents": {"feedback": {"email": True}}}
    assert api.put(f"/api/v1/customers/{customer_id}", json=body).status_code == 200


def _strategy(api: TestClient, **fields: Any) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    body = strategy_body(
        "monthly-summary",
        trigger={"event_types": ["feature.first_used"]},
        audience=None,
        delay="PT0S",
        channels=["email"],
        message=SUMMARY,
    )
    body.update(fields)
    answer = api.post("/api/v1/strategies", json=body)
    assert answer.status_code == 201, answer.text


def _payments(customer_id: str, count: int, total: int) -> list[dict[str, Any]]:
    amounts = [total // count] * count
    amounts[0] += total - sum(amounts)
    return [
        {
            "event_id": f"{customer_id}-p{n}",
            "type": "payment.succeeded",
            "customer_id": customer_id,
            "occurred_at": (START - dt.timedelta(hours=n + 1)).isoformat(),
            "amount": amount,
            "currency": "CNY",
        }
        for n, amount in enumerate(amounts)
    ]


def _first_use(customer_id: str) -> dict[str, Any]:
    return {
        "event_id": f"{customer_id}-f",
        "type": "feature.first_used",
        "customer_id": customer_id,
        "occurred_at": START.isoformat(),
        "attributes": {"feature": "bill_split"},
    }


def _body_text(message: Any) -> str:
    return str(message.get_body(preferencelist=("plain",)).get_content())


def test_each_customer_reads_the_message_in_their_locale_with_their_numbers(
    api: TestClient, runtime: Runtime, clock: ManualClock, smtp: SmtpSink
) -> None:
    # Given a strategy with a summary in Chinese and in English, and two customers who paid
    _customer(api, "zh", "zh-CN")
    _customer(api, "en", "en")
    _strategy(api)
    events = [*_payments("zh", 23, 123450), *_payments("en", 3, 99900), _first_use("zh"), _first_use("en")]
    assert api.post("/api/v1/events", json={"events": events}).json()["accepted"] == len(events)
    # When the worker sends
    clock.advance(dt.timedelta(minutes=1))
    Worker(runtime).run_until_idle()
    # Then each message carries the customer's own figures, formatted for their locale
    sent = {message["To"]: message for message in smtp.messages}
    assert set(sent) == {"zh@example.com", "en@example.com"}
    assert str(sent["zh@example.com"]["Subject"]) == "支付体验回访：您的钱包月报"
    assert "本月你用钱包支付了 ¥1,234.50，共 23 笔。" in _body_text(sent["zh@example.com"])
    assert str(sent["en@example.com"]["Subject"]) == "Your month with the wallet"
    assert "You paid CN¥999.00 in 3 payments. Thanks for trying bill_split." in _body_text(sent["en@example.com"])
    # And the survey's rating links are still there
    assert "/s/" in _body_text(sent["zh@example.com"])


def test_a_template_that_does_not_fit_the_data_falls_back_to_the_surveys_words(
    api: TestClient, runtime: Runtime, clock: ManualClock, smtp: SmtpSink
) -> None:
    # Given a template that reads an attribute this customer does not have
    _customer(api, "c1", "en")
    broken = {"en": {"subject": "Hello {{ customer.attributes.nickname }}", "body": "Hi"}}
    _strategy(api, message=broken)
    assert api.post("/api/v1/events", json={"events": [_first_use("c1")]}).json()["accepted"] == 1
    clock.advance(dt.timedelta(minutes=1))
    Worker(runtime).run_until_idle()
    # Then the message still goes out, in the survey's words
    (message,) = smtp.messages
    assert str(message["Subject"]) == "How did we do? Your payment"


@pytest.mark.parametrize(
    ("template", "field", "code", "words"),
    [
        ({"en": {"subject": "Hi", "body": "{{ stats.volume_30d "}}, "message.en.body", "invalid_template", "compile"),
        ({"en": {"subject": "Hi", "body": "{{ wallet.name }}"}}, "message.en.body", "invalid_template", "'wallet'"),
        (
            {"en": {"subject": "Hi", "body": "{{ stats.volume_7d }}"}},
            "message.en.body",
            "invalid_template",
            "stats.volume_7d",
        ),
        ({"en": {"subject": "Hi", "body": "{{ 1 | shout }}"}}, "message.en.body", "invalid_template", "shout"),
        (
            {"en": {"subject": "{{ customer.__class__ }}", "body": "x"}},
            "message.en.subject",
            "invalid_template",
            "sandbox",
        ),
        (
            {"en": {"subject": "Hi", "body": '{{ "{0.__class__.__mro__}".format(customer) }}'}},
            "message.en.body",
            "invalid_template",
            "sandbox",
        ),
        (
            {"en": {"subject": "Hi", "body": "{{ customer.attributes.update({'a': 1}) }}"}},
            "message.en.body",
            "invalid_template",
            "sandbox",
        ),
        ({"en": {"subject": "Hi\r\nBcc: x@example.com", "body": "x"}}, "message.en.subject", "invalid_character", ""),
        ({"en": {"subject": "Hi", "body": "x" * 5001}}, "message.en.body", "limit_exceeded", "5000"),
        ({"fr": {"subject": "Salut", "body": "x"}}, "message.fr", "invalid_field", ""),
    ],
)
def test_a_bad_template_is_refused_at_save_and_nothing_is_stored(  # noqa: PLR0917 - one per parameter
    api: TestClient, runtime: Runtime, template: dict[str, Any], field: str, code: str, words: str
) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    before = database_rows(runtime)
    answer = api.post("/api/v1/strategies", json=strategy_body(message=template))
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == (code, field), error
    assert words in error["message"], error
    assert database_rows(runtime) == before


def test_the_preview_renders_one_customers_message_and_writes_nothing(api: TestClient, runtime: Runtime) -> None:
    _customer(api, "zh", "zh-CN")
    _strategy(api)
    events = _payments("zh", 23, 123450)
    assert api.post("/api/v1/events", json={"events": events}).json()["accepted"] == 23
    before = database_rows(runtime)
    answer = api.post("/api/v1/strategies/monthly-summary/preview-message", json={"customer_id": "zh"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "customer_id": "zh",
        "variant": None,
        "locale": "zh-CN",
        "subject": "支付体验回访：您的钱包月报",
        "body": "本月你用钱包支付了 ¥1,234.50，共 23 笔。",
    }
    assert database_rows(runtime) == before


def test_the_preview_takes_an_event_and_says_when_it_needs_one(api: TestClient) -> None:
    _customer(api, "en", "en")
    _strategy(api, message={"en": {"subject": "About {{ event.type }}", "body": "{{ event.amount | money }}"}})
    url = "/api/v1/strategies/monthly-summary/preview-message"
    needs = api.post(url, json={"customer_id": "en"})
    assert needs.status_code == 422, needs.text
    assert needs.json()["error"]["code"] == "template_not_rendered"
    assert "pass one as 'event'" in needs.json()["error"]["message"]
    event = {"type": "payment.failed", "amount": 5000, "currency": "CNY"}
    answer = api.post(url, json={"customer_id": "en", "event": event})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["subject"], answer.json()["body"]) == ("About payment.failed", "CN¥50.00")


def test_the_preview_refuses_what_it_cannot_render(api: TestClient) -> None:
    _customer(api, "en", "en")
    _strategy(api)
    unknown = api.post("/api/v1/strategies/monthly-summary/preview-message", json={"customer_id": "nobody"})
    assert unknown.status_code == 404
    assert api.post("/api/v1/strategies/nothing/preview-message", json={"customer_id": "en"}).status_code == 404
    plain = strategy_body("plain", audience=None)
    assert api.post("/api/v1/strategies", json=plain).status_code == 201
    none = api.post("/api/v1/strategies/plain/preview-message", json={"customer_id": "en"})
    assert none.status_code == 409
    assert none.json()["error"]["code"] == "no_message_template"
