""" "Was this you?": the yes_no question of examples/was-this-you.yaml, after a sign-in on a new
device. A "no" — on the page or by SMS reply — opens a security case in the answer's own
transaction, reaches the risk team's webhook signed, and shows the wallet's freeze instructions in
the customer's language; a "yes" opens nothing. Bad input is a clear 4xx."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
import yaml
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select, text
from standardwebhooks import Webhook

from followup.app import create_app
from followup.channels.sms.replies import read_yes_no
from followup.config import Settings
from followup.followups import service as followups
from followup.kernel.actors import SYSTEM
from followup.kernel.time import ManualClock
from followup.policy.models import ContactReservation
from followup.runtime import Runtime, build_runtime
from followup.staff import service as staff
from followup.strategies import as_code
from followup.surveys.service import AnswerInvalid
from followup.worker import Worker
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.conftest import SmtpSink, wipe
from tests.helpers import html_body, survey_path, text_body
from tests.sms_servers import LocalServer
from tests.test_cli import Cli, only_line
from tests.test_sms_channel import PHONE, Wallet, wallet  # noqa: F401 - the SMS wallet fixture

EXAMPLE = Path(__file__).parent.parent / "examples" / "was-this-you.yaml"
FREEZE_ZH = "请立即在 App 中「我的 → 安全中心 → 冻结账户」冻结账户，或拨打客服热线。"
FREEZE_EN = "Open the app, go to Me, Security, Freeze account; or call the number on the back of your card."
QUESTION = "was_it_you"


def _example(channels: list[str] | None = None) -> as_code.Bundle:
    """The example file as `followup strategies apply` reads it (its channels changed when given)."""
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    if channels is not None:
        document["strategies"][0]["channels"] = channels
    return as_code.read_documents([(str(EXAMPLE), document)])


def _apply_example(runtime: Runtime, channels: list[str] | None = None) -> None:
    with runtime.session() as session:
        as_code.apply(
            session,
            _example(channels),
            available_channels=set(runtime.channels),
            limits=runtime.settings.input_limits,
            actor=SYSTEM,
            now=runtime.clock.now(),
        )


def _new_device(event_id: str = "e1", customer: str = "c1") -> dict[str, Any]:
    return transfer(
        event_id, customer, type="login.new_device", amount=None, currency=None, attributes={"platform": "android"}
    )


@pytest.fixture
def receiver() -> Iterator[LocalServer]:
    server = LocalServer()
    yield server
    server.close()


@pytest.fixture
def wallet_app(settings: Settings, clock: ManualClock) -> Iterator[tuple[Runtime, TestClient]]:
    """The engine with the example applied, webhooks allowed to loopback, and English freeze
    instructions of the wallet's own."""
    configured = settings.model_copy(update={"webhooks_allow_private": True, "freeze_instructions_en": FREEZE_EN})
    runtime = build_runtime(configured, clock=clock)
    try:
        with runtime.session() as session:
            _, key = staff.create_api_key(session, name="tests", now=clock.now())
        _apply_example(runtime)
        with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {key}"}) as api:
            yield runtime, api
    finally:
        wipe(runtime.engine)
        runtime.close()


def _invited(runtime: Runtime, api: TestClient, smtp: SmtpSink, *, locale: str = "zh-CN") -> str:
    """A customer signs in on a new device; the check is emailed at once. The link's path."""
    make_customer(runtime, "c1", locale=locale)
    assert api.post("/api/v1/events", json={"events": [_new_device()]}).json()["accepted"] == 1
    Worker(runtime).run_until_idle()  # no clock moved: sent at once
    (email,) = smtp.wait_for(1)
    return survey_path(email)


def _cases(api: TestClient) -> list[tuple[str, str, str]]:
    return [(c["kind"], c["priority"], c["customer_id"]) for c in api.get("/api/v1/cases").json()["items"]]


def _verified(request: Any, secret: str, clock: ManualClock) -> dict[str, Any]:
    with time_machine.travel(clock.now(), tick=False):
        payload = Webhook(secret).verify(request.body, request.headers)
    assert isinstance(payload, dict)
    return payload


def _heading(page: Any) -> str:
    match = re.search(r"<h1>([^<]*)</h1>", page.text)
    assert match, page.text
    return match.group(1)


# ── the survey schema ────────────────────────────────────────────────────────────────────────────


def test_a_yes_no_survey_is_accepted_and_one_mixed_with_scales_is_refused_with_422(api: TestClient) -> None:
    question = {"id": "was_it_you", "type": "yes_no", "prompt": {"en": "Was it you?"}}
    made = api.post("/api/v1/surveys", json={"key": "check", "title": {"en": "Check"}, "questions": [question]})
    assert made.status_code == 201, made.text
    [stored] = api.get("/api/v1/surveys/check").json()["questions"]
    assert (stored["id"], stored["type"], stored["required"]) == ("was_it_you", "yes_no", True)

    nps = {"id": "nps", "type": "nps", "prompt": {"en": "Recommend us?"}}
    mixed = "questions: a yes_no question is a security check: its survey has one yes_no question and no nps, csat or ces question"
    refused = [
        ([question, nps], ("invalid_field", "questions", mixed)),
        ([question, {**question, "id": "again"}], ("invalid_field", "questions", mixed)),
        (
            [{**question, "options": [{"id": "y", "label": {"en": "Y"}}]}],
            ("unknown_field", "questions.0.options", "'options' is not a field this request accepts"),
        ),
    ]
    for questions, (code, field, message) in refused:
        answer = api.post("/api/v1/surveys", json={"key": "bad", "title": {"en": "Bad"}, "questions": questions})
        assert answer.status_code == 422
        assert answer.json()["error"] == {"code": code, "message": message, "field": field}
    assert api.get("/api/v1/surveys").json()["total"] == 1  # nothing of the refused ones stored


# ── on the page ──────────────────────────────────────────────────────────────────────────────────


def test_no_opens_a_security_case_at_once_tells_the_risk_team_and_shows_how_to_freeze_in_chinese(
    wallet_app: tuple[Runtime, TestClient], receiver: LocalServer, smtp: SmtpSink, clock: ManualClock
) -> None:
    runtime, api = wallet_app
    hook = api.post(
        "/api/v1/webhooks", json={"url": f"{receiver.url}/risk", "events": ["security.concern", "case.opened"]}
    ).json()
    # Given a zh-CN customer emailed "Was this you?" right after a sign-in on a new device
    path = _invited(runtime, api, smtp)
    email = smtp.messages[0]
    assert str(email["Subject"]) == "新设备登录提醒"
    assert "是我: http://testserver" in text_body(email)
    assert "不是我: http://testserver" in text_body(email)
    assert "?answer=no" in html_body(email)

    # When they open the "不是我" link, the page shows the two buttons, "no" marked; nothing recorded yet
    shown = api.get(f"{path}?answer=no")
    assert shown.status_code == 200
    assert "刚才在新设备上登录的是你吗？" in shown.text
    assert 'name="was_it_you" value="yes">是我</button>' in shown.text
    assert 'name="was_it_you" value="no" autofocus>不是我</button>' in shown.text
    assert _cases(api) == []

    # And they tap it
    posted = api.post(path, data={"step": "rating", QUESTION: "no"}, follow_redirects=False)
    assert posted.status_code == 303

    # Then a security case is open for them, on this answer, in the security queue
    [case] = api.get("/api/v1/cases").json()["items"]
    [response] = api.get("/api/v1/responses").json()["items"]
    assert (case["kind"], case["queue"], case["priority"], case["status"]) == (
        "security",
        "security",
        "security",
        "open",
    )
    assert (case["response_id"], case["customer_id"], case["opened_at"]) == (
        response["id"],
        "c1",
        response["created_at"],
    )
    # And the answer is stored as "no", counted in no metric
    assert (response["answers"], response["nps"], response["csat"], response["ces"]) == (
        {QUESTION: "no"},
        None,
        None,
        None,
    )
    assert api.get("/api/v1/followups").json()["items"][0]["status"] == "responded"

    # And the page after the redirect says so and shows the freeze instructions, prominently
    page = api.get(posted.headers["location"])
    assert page.status_code == 200
    assert _heading(page) == "我们已通知安全团队"
    assert f'<div class="alert" role="alert"><p><strong>{FREEZE_ZH}</strong></p></div>' in page.text

    # And the worker posts case.opened then security.concern to the risk team, signed
    Worker(runtime).run_until_idle()
    payloads = [_verified(request, hook["secret"], clock) for request in receiver.received]
    assert [p["type"] for p in payloads] == ["case.opened", "security.concern"]
    assert payloads[1]["data"]["case_id"] == case["id"]
    assert payloads[1]["data"]["kind"] == "security"


def test_the_freeze_instructions_come_in_english_from_the_setting_and_only_a_signed_receipt_shows_them(
    wallet_app: tuple[Runtime, TestClient], smtp: SmtpSink
) -> None:
    runtime, api = wallet_app
    path = _invited(runtime, api, smtp, locale="en")
    assert "Yes, it was me: http://testserver" in text_body(smtp.messages[0])
    posted = api.post(path, data={"step": "rating", QUESTION: "no"}, follow_redirects=False)
    target = posted.headers["location"]
    page = api.get(target)
    assert _heading(page) == "We have alerted our security team"
    assert FREEZE_EN in page.text
    # The answer is in the signed receipt: changing it, or dropping it, opens nothing
    receipt = parse_qs(urlsplit(target).query)["receipt"][0]
    expires, points, locale, said, mac = receipt.split(".")
    assert said == "no"
    for forged in (f"{expires}.{points}.{locale}.yes.{mac}", f"{expires}.{points}.{locale}.{mac}"):
        refused = api.get(path, params={"receipt": forged})
        assert refused.status_code == 404
        assert FREEZE_EN not in refused.text


def test_yes_closes_the_check_with_a_thank_you_and_no_case(
    wallet_app: tuple[Runtime, TestClient], receiver: LocalServer, smtp: SmtpSink
) -> None:
    runtime, api = wallet_app
    api.post("/api/v1/webhooks", json={"url": f"{receiver.url}/risk", "events": ["security.concern", "case.opened"]})
    path = _invited(runtime, api, smtp, locale="en")
    posted = api.post(path, data={"step": "rating", QUESTION: "yes"}, follow_redirects=False)
    page = api.get(posted.headers["location"])
    assert _heading(page) == "Thank you for confirming"
    assert FREEZE_EN not in page.text
    assert _cases(api) == []
    assert api.get("/api/v1/followups").json()["items"][0]["status"] == "responded"
    Worker(runtime).run_until_idle()
    assert receiver.received == []  # nothing for the risk team


def test_anything_but_yes_or_no_is_a_422_page_and_records_nothing(
    wallet_app: tuple[Runtime, TestClient], smtp: SmtpSink
) -> None:
    runtime, api = wallet_app
    path = _invited(runtime, api, smtp)
    for bad in ({QUESTION: "maybe"}, {QUESTION: ""}, {QUESTION: ["yes", "no"]}, {"nps": "3"}):
        page = api.post(path, data={"step": "rating", **bad})
        assert page.status_code == 422, bad
        assert 'value="no">不是我</button>' in page.text  # the buttons again
    assert "请选择「是我」或「不是我」" in api.post(path, data={"step": "rating", QUESTION: "maybe"}).text
    assert _cases(api) == []
    assert api.get("/api/v1/responses").json()["total"] == 0
    assert api.get("/api/v1/followups").json()["items"][0]["status"] == "invited"


def test_the_case_is_written_in_the_answer_s_transaction_and_rolls_back_with_it(
    wallet_app: tuple[Runtime, TestClient], smtp: SmtpSink
) -> None:
    runtime, api = wallet_app
    token = _invited(runtime, api, smtp).removeprefix("/s/")
    with runtime.session() as session:
        outcome = followups.record_rating(session, token, {QUESTION: "no"}, now=runtime.clock.now(), keys=runtime.keys)
        assert (outcome.said, len(outcome.case_ids)) == ("no", 1)
        assert session.execute(text("SELECT COUNT(*) FROM cases")).scalar() == 1
        session.rollback()
    assert _cases(api) == []
    assert api.get("/api/v1/responses").json()["total"] == 0
    with runtime.session() as session, pytest.raises(AnswerInvalid):
        followups.record_rating(session, token, {QUESTION: "perhaps"}, now=runtime.clock.now(), keys=runtime.keys)


# ── by SMS ───────────────────────────────────────────────────────────────────────────────────────


def test_an_sms_no_opens_the_case_and_the_reply_carries_the_freeze_instructions(wallet: Wallet) -> None:  # noqa: F811
    # Given the check sent by SMS to a zh-CN customer
    _apply_example(wallet.runtime, channels=["sms"])
    make_customer(wallet.runtime, "c1", phone=PHONE, consents={"feedback": {"sms": True}})
    assert wallet.api.post("/api/v1/events", json={"events": [_new_device()]}).json()["accepted"] == 1
    wallet.run()
    [invitation] = wallet.first.sent
    assert "回复1：是我；回复2：不是我" in str(invitation["text"])
    # When they reply 否
    reply = {"id": "in-1", "from": PHONE, "to": "10690000", "text": "否", "at": "2026-11-23T02:05:00Z"}
    assert wallet.hook("first", "inbound", reply).status_code == 200
    wallet.run()
    # Then the follow-up is answered "no" by SMS, and a security case is open
    [response] = wallet.api.get("/api/v1/responses").json()["items"]
    assert (response["answers"], response["source"]) == ({QUESTION: "no"}, "sms_reply")
    assert _cases(wallet.api) == [("security", "security", "c1")]
    # And the reply tells them how to freeze the account
    thanks = str(wallet.first.sent[1]["text"])
    assert thanks == f"【钱包】我们已通知安全团队，会尽快联系您。{FREEZE_ZH}"


@pytest.mark.parametrize(("words", "said"), [("2", "no"), ("NO", "no"), ("不是我", "no"), ("Y", "yes"), ("1", "yes")])
def test_an_sms_yes_or_no_in_its_other_forms(wallet: Wallet, words: str, said: str) -> None:  # noqa: F811
    _apply_example(wallet.runtime, channels=["sms"])
    make_customer(wallet.runtime, "c1", locale="en", phone=PHONE, consents={"feedback": {"sms": True}})
    wallet.api.post("/api/v1/events", json={"events": [_new_device()]})
    wallet.run()
    assert "Reply 1: Yes, it was me; Reply 2: No, it wasn't me" in str(wallet.first.sent[0]["text"])
    wallet.hook(
        "first", "inbound", {"id": "in-1", "from": PHONE, "to": "1069", "text": words, "at": "2026-11-23T02:05:00Z"}
    )
    wallet.run()
    [response] = wallet.api.get("/api/v1/responses").json()["items"]
    assert response["answers"] == {QUESTION: said}
    assert _cases(wallet.api) == ([("security", "security", "c1")] if said == "no" else [])


def test_an_sms_n_stays_an_opt_out_and_answers_nothing(wallet: Wallet) -> None:  # noqa: F811
    _apply_example(wallet.runtime, channels=["sms"])
    make_customer(wallet.runtime, "c1", phone=PHONE, consents={"feedback": {"sms": True}})
    wallet.api.post("/api/v1/events", json={"events": [_new_device()]})
    wallet.run()
    wallet.hook(
        "first", "inbound", {"id": "in-1", "from": PHONE, "to": "1069", "text": "N", "at": "2026-11-23T02:05:00Z"}
    )
    wallet.run()
    assert wallet.api.get("/api/v1/responses").json()["total"] == 0
    assert _cases(wallet.api) == []
    consents = wallet.api.get("/api/v1/customers/c1").json()["consents"]
    assert consents["feedback"]["sms"] is False


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        *[("1", "yes"), ("ｙｅｓ！", "yes"), ("是", "yes"), ("2", "no"), ("No.", "no"), ("否", "no"), ("不是我", "no")],
        *[("N", None), ("n", None), ("3", None), ("no thanks", None), ("TD", None), ("", None)],
    ],
)
def test_what_reads_as_yes_or_no(reply: str, said: str | None) -> None:
    assert read_yes_no(reply) == said


# ── the example and the setting ──────────────────────────────────────────────────────────────────


def test_the_example_applies_to_a_fresh_database_and_again_changes_nothing(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    assert cli("db", "upgrade").returncode == 0
    applied = cli("strategies", "apply", str(EXAMPLE), "--yes")
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines()[-1] == "applied 2 changes"
    assert cli.rows("SELECT key, kind, status FROM strategies") == [("was-this-you", "event", "active")]
    again = cli("strategies", "apply", str(EXAMPLE), "--yes")
    assert (again.returncode, again.stdout) == (0, "nothing to change\n")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("freeze_instructions_en", "Freeze it\nnow"),
        ("freeze_instructions_zh_cn", "冻结\x07"),
        ("freeze_instructions_en", "x" * 501),
        ("freeze_instructions_en", "  "),
    ],
)
def test_freeze_instructions_with_control_characters_or_too_long_are_refused(name: str, value: str) -> None:
    with pytest.raises(ValidationError, match="freeze instructions are one paragraph of 1 to 500 characters"):
        Settings(_env_file=None, **{name: value})  # type: ignore[call-arg]


def test_a_bad_freeze_instruction_stops_every_command_with_one_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    result = cli("db", "upgrade", FOLLOWUP_FREEZE_INSTRUCTIONS_ZH_CN="冻结\u2028账户")
    assert result.returncode == 2
    assert only_line(result.stderr) == (
        "error: setting FOLLOWUP_FREEZE_INSTRUCTIONS_ZH_CN: Value error, freeze instructions are one paragraph "
        "of 1 to 500 characters without control characters (line breaks included)"
    )


def test_the_check_goes_out_at_night_past_a_spent_fatigue_budget_and_spends_none(
    wallet_app: tuple[Runtime, TestClient], smtp: SmtpSink, clock: ManualClock
) -> None:
    runtime, api = wallet_app
    runtime.settings.fatigue_max_followups = 1
    feedback = {
        "key": "after-large-transfer",
        "name": "After a large transfer",
        "kind": "event",
        "trigger": {"event_types": ["transfer.succeeded"]},
        "channels": ["email"],
        "survey": "was-this-you",
        "delay": "PT30M",
    }
    assert api.post("/api/v1/strategies", json=feedback).status_code == 201
    make_customer(runtime, "c1")
    # Given c1's fatigue budget is spent by a feedback follow-up, and it is 23:30 in Shanghai
    night = dt.datetime(2026, 11, 23, 15, 30, tzinfo=dt.UTC)
    clock.set(night)
    paid = transfer("t1", "c1", occurred_at=night)
    assert api.post("/api/v1/events", json={"events": [paid]}).json()["accepted"] == 1
    # When c1 signs in on a new device
    signed_in = _new_device("n1") | {"occurred_at": night.isoformat()}
    assert api.post("/api/v1/events", json={"events": [signed_in]}).json()["accepted"] == 1
    Worker(runtime).run_until_idle()
    # Then the check is planned and emailed at once, quiet hours or not
    followups_of_c1 = {f["strategy"]: f for f in api.get("/api/v1/followups").json()["items"]}
    check = followups_of_c1["was-this-you"]
    assert (check["status"], check["reason"]) == ("invited", None)
    (email,) = smtp.wait_for(1)
    assert "新设备" in str(email["Subject"])
    # And it reserved nothing: the ledger holds the feedback follow-up alone
    with runtime.read_session() as session:
        reserved = session.scalars(select(ContactReservation.followup_id)).all()
    feedback_followup = followups_of_c1["after-large-transfer"]
    assert reserved == [feedback_followup["id"]]
    # And the feedback follow-up waits for the morning as before
    assert feedback_followup["status"] == "planned"


def test_the_check_needs_service_consent_not_feedback_and_its_link_withdraws_service(
    wallet_app: tuple[Runtime, TestClient], smtp: SmtpSink
) -> None:
    runtime, api = wallet_app
    # Given c1 never consented to feedback by email
    make_customer(runtime, "c1", consents={"feedback": {"email": False}})
    assert api.post("/api/v1/events", json={"events": [_new_device()]}).json()["accepted"] == 1
    Worker(runtime).run_until_idle()
    # Then the check still reaches them: it is service, given unless withdrawn
    (email,) = smtp.wait_for(1)
    unsubscribe = re.search(r"/u/[A-Za-z0-9_-]+", str(email["List-Unsubscribe"]))
    assert unsubscribe
    # And its unsubscribe link withdraws service on email, so the next check is not sent
    assert api.post(unsubscribe.group(0), data={"List-Unsubscribe": "One-Click"}).status_code == 200
    consents = api.get("/api/v1/customers/c1").json()["consents"]
    assert consents["service"]["email"] is False
    assert api.post("/api/v1/events", json={"events": [_new_device("e2")]}).json()["accepted"] == 1
    Worker(runtime).run_until_idle()
    assert len(smtp.wait_for(2, timeout=0.3)) == 1
    newest = api.get("/api/v1/followups", params={"customer_id": "c1"}).json()["items"][0]
    assert (newest["status"], newest["reason"]) == ("suppressed", "no_consent")


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"kind": "proactive", "trigger": None, "cadence": "P30D"}, "security_check is for event strategies"),
        ({"recontact_days": 7}, "set recontact_days to 0"),
    ],
)
def test_a_security_check_that_is_not_an_event_strategy_or_keeps_a_recontact_window_is_refused(
    api: TestClient, change: dict[str, Any], says: str
) -> None:
    body = _example().strategies[0].model_dump(mode="json", exclude_none=True) | change
    body = {name: value for name, value in body.items() if value is not None}
    refused = api.post("/api/v1/strategies", json=body)
    assert refused.status_code == 422, refused.text
    assert says in refused.json()["error"]["message"]
