"""The pages customers see, driven as a customer's browser drives them: a real email's link, GET,
POST and the redirect after it, HEAD as link checkers send it, and old unsubscribe links."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from followup.app import create_app
from followup.customers import service as customers
from followup.kernel.time import ManualClock
from followup.privacy import service as privacy
from followup.runtime import Runtime
from followup.web.methods import allowed_methods
from followup.web.receipts import RECEIPT_LIFETIME
from followup.worker import Worker
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.conftest import LiveServer, SmtpSink
from tests.helpers import survey_path, unsubscribe_path

NPS_ONLY = [
    {
        "id": "nps",
        "type": "nps",
        "prompt": {"zh-CN": "您有多大可能向朋友推荐我们？", "en": "How likely are you to recommend us to a friend?"},
    }
]
REWARD_EN = "Thank you: 10 points have been added to your account."


def _invited(api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock, **survey: Any) -> Any:
    """One customer (English), one survey, one strategy rewarding 10 points, one email sent."""
    customer = {
        "email": "li.si@example.com",
        "locale": "en",
        "time_zone": "Asia/Shanghai",
        "consents": {"feedback": {"email": True, "inapp": True}},
    }
    assert api.put("/api/v1/customers/c1", json=customer).status_code == 200
    assert api.post("/api/v1/surveys", json=survey_body(**survey)).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body()).status_code == 201
    assert api.post("/api/v1/events", json={"events": [transfer("e1", "c1")]}).json()["accepted"] == 1
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()
    (email,) = smtp.wait_for(1)
    return email


def _heading(page: httpx.Response) -> str:
    match = re.search(r"<h1>([^<]*)</h1>", page.text)
    assert match, page.text
    return match.group(1)


# ── a one-question survey ends on a thank-you page ──────────────────────────────────────────────


def test_a_one_question_survey_thanks_the_customer_once_then_the_link_is_a_plain_404(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock
) -> None:
    # Given a survey of a single NPS question and its link in an email
    path = survey_path(_invited(api, runtime, smtp, clock, questions=NPS_ONLY))
    unknown = api.get("/s/" + "x" * 43)
    assert unknown.status_code == 404

    # When the customer opens the link and posts a rating
    shown = api.get(f"{path}?score=9")
    assert shown.status_code == 200
    assert 'value="9" required checked' in shown.text
    posted = api.post(path, data={"step": "rating", "nps": "9"}, follow_redirects=False)
    assert posted.status_code == 303
    target = posted.headers["location"]
    assert urlsplit(target).path == path

    # Then the page after the redirect thanks them and shows the reward, once on the page
    thanks = api.get(target)
    assert thanks.status_code == 200
    assert _heading(thanks) == "Thank you for your feedback"
    assert thanks.text.count(REWARD_EN) == 1
    assert "not valid" not in thanks.text
    assert api.get("/api/v1/customers/c1/rewards").json()["balance"] == 10

    # And a later visit of the link gets the same 404 page as a link that never existed
    later = api.get(path)
    assert later.status_code == 404
    assert later.text == unknown.text
    assert REWARD_EN not in later.text
    # So does the receipt once it has expired; nothing was granted twice
    clock.advance(RECEIPT_LIFETIME + dt.timedelta(seconds=1))
    expired = api.get(target)
    assert (expired.status_code, expired.text) == (404, unknown.text)
    assert api.get("/api/v1/customers/c1/rewards").json()["balance"] == 10
    assert api.get("/api/v1/responses").json()["total"] == 1


def test_a_receipt_cannot_be_forged_or_moved_to_another_link(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock
) -> None:
    path = survey_path(_invited(api, runtime, smtp, clock, questions=NPS_ONLY))
    posted = api.post(path, data={"step": "rating", "nps": "3"}, follow_redirects=False)
    receipt = parse_qs(urlsplit(posted.headers["location"]).query)["receipt"][0]
    expires, points, locale, mac = receipt.split(".")
    assert api.get(path, params={"receipt": receipt}).status_code == 200

    forged = [
        f"{expires}.500.{locale}.{mac}",  # more points
        f"{int(expires) + 3600}.{points}.{locale}.{mac}",  # a longer life
        f"{expires}.{points}.{locale}.{mac[:-2]}AA",  # another signature
        "",
        "not-a-receipt",
    ]
    for bad in forged:
        page = api.get(path, params={"receipt": bad})
        assert page.status_code == 404, bad
        assert REWARD_EN not in page.text
    # A genuine receipt on a link it was not issued for opens nothing
    assert api.get("/s/" + "y" * 43, params={"receipt": receipt}).status_code == 404


def test_with_optional_questions_the_reward_is_shown_on_the_next_page_only(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock
) -> None:
    # Given the usual survey: a rating, then optional questions
    path = survey_path(_invited(api, runtime, smtp, clock))

    posted = api.post(path, data={"step": "rating", "nps": "10"}, follow_redirects=False)
    details = api.get(posted.headers["location"])

    # Then the questions page after the rating shows the reward once; the plain link shows none
    assert details.status_code == 200
    assert 'name="comment"' in details.text
    assert details.text.count(REWARD_EN) == 1
    plain = api.get(path)
    assert 'name="comment"' in plain.text
    assert REWARD_EN not in plain.text
    # And the final thank-you does not show it a second time
    done = api.post(path, data={"step": "details", "skip": "1"})
    assert done.status_code == 200
    assert _heading(done) == "Thank you for your feedback"
    assert REWARD_EN not in done.text


def test_a_rating_without_a_reward_shows_no_reward_line(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock
) -> None:
    customer = {"email": "a@example.com", "locale": "zh-CN", "consents": {"feedback": {"email": True}}}
    assert api.put("/api/v1/customers/c1", json=customer).status_code == 200
    assert api.post("/api/v1/surveys", json=survey_body(questions=NPS_ONLY)).status_code == 201
    body = strategy_body(reward=None)
    assert api.post("/api/v1/strategies", json=body).status_code == 201, body
    api.post("/api/v1/events", json={"events": [transfer("e1", "c1")]})
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()
    path = survey_path(smtp.wait_for(1)[0])

    thanks = api.post(path, data={"step": "rating", "nps": "8"})  # follows the redirect

    assert thanks.status_code == 200
    assert _heading(thanks) == "感谢您的反馈"
    assert "积分" not in thanks.text


# ── HEAD answers as GET, and changes nothing ────────────────────────────────────────────────────


def test_head_on_the_pages_answers_like_get_without_a_body_and_changes_nothing(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock, live_server: LiveServer
) -> None:
    email = _invited(api, runtime, smtp, clock)
    path, unsubscribe = survey_path(email), unsubscribe_path(email)

    with httpx.Client(base_url=live_server.url) as checker:
        for target in (f"{path}?score=9", unsubscribe):
            head, get = checker.head(target), checker.get(target)
            assert head.status_code == get.status_code == 200
            assert head.content == b""
            assert head.headers["content-type"] == get.headers["content-type"]
            assert head.headers["content-length"] == str(len(get.content))
            assert head.headers["cache-control"] == "no-store"
        assert checker.head("/s/" + "x" * 43).status_code == 404
        assert checker.head("/u/" + "x" * 43).status_code == 404

    # Nothing was recorded or withdrawn by any of them
    assert api.get("/api/v1/responses").json()["total"] == 0
    assert api.get("/api/v1/customers/c1").json()["consents"] == {"feedback": {"email": True, "inapp": True}}
    assert api.post(path, data={"step": "rating", "nps": "9"}, follow_redirects=False).status_code == 303


# ── a 405 names what is allowed ─────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/s/" + "x" * 43, ["GET", "HEAD", "POST"]),
        ("/u/" + "x" * 43, ["GET", "HEAD", "POST"]),
        ("/api/v1/customers/c1", ["GET", "PUT"]),
        ("/api/v1/events", ["POST"]),
        ("/healthz", ["GET"]),
        ("/static/pages.css", ["GET", "HEAD"]),
        ("/no/such/page", []),
    ],
)
def test_allowed_methods_are_every_route_of_the_path(runtime: Runtime, path: str, allowed: list[str]) -> None:
    app = create_app(runtime)
    scope = {"type": "http", "method": "TRACE", "path": path, "root_path": "", "headers": [], "query_string": b""}

    assert allowed_methods(app, scope) == allowed


@pytest.mark.parametrize(("method", "path"), [("TRACE", "/s/" + "x" * 43), ("DELETE", "/api/v1/events")])
def test_a_405_carries_allow(api: TestClient, method: str, path: str) -> None:
    answer = api.request(method, path)

    assert answer.status_code == 405
    assert answer.json()["error"]["code"] == "method_not_allowed"
    assert answer.headers["allow"] == ("GET, HEAD, POST" if path.startswith("/s/") else "POST")


# ── an old unsubscribe link withdraws again ─────────────────────────────────────────────────────


def _email_ledger(runtime: Runtime) -> list[tuple[bool, str]]:
    with runtime.read_session() as session:
        customer = customers.get_customer(session, "c1")
        assert customer is not None
        rows = privacy.list_consent_ledger(session, customer.id)
        return [(row.granted, row.source) for row in rows if row.channel == "email"]


def _email_audit(runtime: Runtime) -> list[str]:
    with runtime.read_session() as session:
        internal = customers.access_customer(session, "c1").id  # the audit log's reference to the customer
        entries = privacy.list_audit(session, subject_type="customer", subject_id=str(internal))
        return [entry.event for entry in entries if (entry.new or {}).get("channel") == "email"]


def test_an_old_unsubscribe_link_withdraws_consent_given_back_since_and_says_so(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock
) -> None:
    # Given a customer who unsubscribed with the email's one-click link
    link = unsubscribe_path(_invited(api, runtime, smtp, clock))
    first = api.post(link, data={"List-Unsubscribe": "One-Click"})
    assert (first.status_code, _heading(first)) == (200, "You are unsubscribed")
    assert _email_ledger(runtime) == [(True, "api"), (False, "unsubscribe")]

    # When the same link is used again while consent is still withdrawn, nothing changes, and it says so
    again = api.post(link)
    assert (again.status_code, _heading(again)) == (200, "You were already unsubscribed")
    assert "nothing changed" in again.text
    assert _email_ledger(runtime) == [(True, "api"), (False, "unsubscribe")]

    # When the wallet gives email consent back, and a week later the old link is used
    back = api.put("/api/v1/customers/c1", json={"consents": {"feedback": {"email": True}}})
    assert back.json()["consents"]["feedback"]["email"] is True
    clock.advance(dt.timedelta(days=7))
    old = api.post(link, data={"List-Unsubscribe": "One-Click"})

    # Then consent is withdrawn again, in the ledger and the audit log, and the page says so truthfully
    assert (old.status_code, _heading(old)) == (200, "You are unsubscribed")
    assert api.get("/api/v1/customers/c1").json()["consents"]["feedback"]["email"] is False
    assert _email_ledger(runtime) == [
        (True, "api"),
        (False, "unsubscribe"),
        (True, "api"),
        (False, "unsubscribe"),
    ]
    assert _email_audit(runtime) == ["consent.granted", "consent.withdrawn", "consent.granted", "consent.withdrawn"]
    # And only email: in-app consent was never touched
    assert api.get("/api/v1/customers/c1").json()["consents"]["feedback"]["inapp"] is True
