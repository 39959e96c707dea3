"""Privacy notices and consent with proof, as the wallet and its customers meet them: notices
published over the API and the console, read at /privacy in either language, linked from every
page, inbox item and email; each consent recorded with the notice's version and hash; a notice
asking for fresh consent stops the contact policy — in Python and in SQL alike — until the customer
gives it again."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from followup.app import create_app
from followup.customers import service as customers
from followup.kernel.actors import Actor
from followup.kernel.http import PAGE_CSP
from followup.kernel.time import ManualClock
from followup.privacy import service as privacy
from followup.privacy.built_in_notice import BUILT_IN_TEXT
from followup.privacy.schemas import MAX_NOTICE_CHARS
from followup.runtime import Runtime
from followup.worker import Worker
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.conftest import SmtpSink
from tests.helpers import html_body, survey_path, text_body, unsubscribe_path
from tests.test_console import csrf_of, make_staff, sign_in

BUILT_IN = "2026-11-01"  # FOLLOWUP_PRIVACY_NOTICE_VERSION's default
ZH = "# 隐私声明\n\n我们保存您的评分。\n您可以随时撤回同意。\n\n- 评分\n- 留言"
EN = "# Privacy notice\n\nWe keep your ratings.\nYou may withdraw at any time.\n\n- ratings\n- comments"
UTC = dt.UTC
FIRST_WAVE = dt.datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def publish(api: TestClient, version: str, *, fresh: tuple[str, ...] = (), zh: str = ZH, en: str = EN) -> Any:
    return api.put(
        f"/api/v1/privacy/notices/{version}",
        json={"text": {"zh-CN": zh, "en": en}, "requires_fresh_consent": list(fresh)},
    )


def expected_hash(version: str, text: dict[str, str], fresh: list[str]) -> str:
    """The canonical form docs/privacy.md gives, computed here as a third party would."""
    canonical = json.dumps(
        {"requires_fresh_consent": sorted(fresh), "text": text, "version": version},
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def put_customer(api: TestClient, customer_id: str, **fields: Any) -> None:
    body: dict[str, Any] = {
        "email": f"{customer_id}@example.com",
        "locale": "en",
        "time_zone": "Asia/Shanghai",
        "consents": {"feedback": {"email": True, "inapp": True}},
    }
    body.update(fields)
    answer = api.put(f"/api/v1/customers/{customer_id}", json=body)
    assert answer.status_code == 200, answer.text


def history(api: TestClient, customer_id: str, **params: Any) -> dict[str, Any]:
    answer = api.get(f"/api/v1/customers/{customer_id}/consents/history", params=params)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def followup_of(api: TestClient, customer_id: str) -> dict[str, Any]:
    (only,) = api.get("/api/v1/followups", params={"customer_id": customer_id}).json()["items"]
    return dict(only)


# ── the API ─────────────────────────────────────────────────────────────────────────────────


def test_until_a_notice_is_published_the_built_in_one_is_current(api: TestClient) -> None:
    current = api.get("/api/v1/privacy/notices/current").json()
    assert current == {
        "version": BUILT_IN,
        "text": BUILT_IN_TEXT,
        "requires_fresh_consent": [],
        "hash": expected_hash(BUILT_IN, BUILT_IN_TEXT, []),
        "published_at": None,
        "published_by": "followup",
        "current": True,
        "built_in": True,
    }
    assert api.get(f"/api/v1/privacy/notices/{BUILT_IN}").json() == current
    assert api.get("/api/v1/privacy/notices").json() == {"items": [current], "total": 1}


def test_a_published_notice_becomes_current_and_the_earlier_ones_stay_readable(
    api: TestClient, clock: ManualClock
) -> None:
    # When the wallet publishes a notice
    answer = publish(api, "2026-12-01", fresh=("feedback",))

    # Then it is created, current, and hashed over its canonical content
    assert answer.status_code == 201, answer.text
    published = answer.json()
    assert published == {
        "version": "2026-12-01",
        "text": {"zh-CN": ZH, "en": EN},
        "requires_fresh_consent": ["feedback"],
        "hash": expected_hash("2026-12-01", {"zh-CN": ZH, "en": EN}, ["feedback"]),
        "published_at": "2026-11-23T02:00:00Z",
        "published_by": answer.json()["published_by"],
        "current": True,
        "built_in": False,
    }
    assert published["published_by"].startswith("api_key:")
    assert api.get("/api/v1/privacy/notices/current").json() == published
    assert api.get("/api/v1/privacy/notices/2026-12-01").json() == published

    # And a later one takes its place, the list newest first with the built-in notice last
    clock.advance(dt.timedelta(days=1))
    assert publish(api, "v3", en="Version three.").status_code == 201
    page = api.get("/api/v1/privacy/notices").json()
    assert page["total"] == 3
    assert [(n["version"], n["current"], n["built_in"]) for n in page["items"]] == [
        ("v3", True, False),
        ("2026-12-01", False, False),
        (BUILT_IN, False, True),
    ]
    assert api.get("/api/v1/privacy/notices/2026-12-01").json()["current"] is False
    # Paged like every list: the built-in notice on the page that reaches it
    second = api.get("/api/v1/privacy/notices", params={"limit": 2, "offset": 2}).json()
    assert (second["total"], [n["version"] for n in second["items"]]) == (3, [BUILT_IN])
    first = api.get("/api/v1/privacy/notices", params={"limit": 2}).json()
    assert [n["version"] for n in first["items"]] == ["v3", "2026-12-01"]

    # And the publication is in the audit log
    audit = api.get("/api/v1/audit", params={"subject_type": "privacy_notice"}).json()["items"]
    assert [(a["subject_id"], a["event"]) for a in audit] == [
        ("v3", "privacy_notice.published"),
        ("2026-12-01", "privacy_notice.published"),
    ]


def test_a_published_notice_never_changes(api: TestClient, clock: ManualClock) -> None:
    assert publish(api, "v2").status_code == 201
    clock.advance(dt.timedelta(hours=1))

    # The same content again is the same notice: 200, nothing written, the first publication kept
    again = publish(api, "v2")
    assert again.status_code == 200
    assert again.json()["published_at"] == "2026-11-23T02:00:00Z"
    # A text typed with Windows line ends is the same text
    windows = publish(api, "v2", zh=ZH.replace("\n", "\r\n"), en=EN.replace("\n", "\r\n"))
    assert windows.status_code == 200

    # Other content under the version is refused
    changed = publish(api, "v2", en=EN + "\n\nOne more line.")
    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "notice_published"
    asked = publish(api, "v2", fresh=("research",))
    assert asked.status_code == 409
    assert api.get("/api/v1/privacy/notices/v2").json()["text"]["en"] == EN
    assert api.get("/api/v1/privacy/notices").json()["total"] == 2

    # The built-in notice's version counts as published, with the built-in text
    built_in = publish(api, BUILT_IN)
    assert (built_in.status_code, built_in.json()["error"]["code"]) == (409, "notice_published")
    assert "FOLLOWUP_PRIVACY_NOTICE_VERSION" in built_in.json()["error"]["message"]
    same = publish(api, BUILT_IN, zh=BUILT_IN_TEXT["zh-CN"], en=BUILT_IN_TEXT["en"])
    assert (same.status_code, same.json()["built_in"]) == (200, True)
    assert api.get("/api/v1/privacy/notices/current").json()["version"] == "v2"


@pytest.mark.parametrize(
    ("version", "body", "status", "code", "field"),
    [
        ("v2", {"text": {"zh-CN": ZH}}, 422, "missing_field", "text.en"),
        ("v2", {"text": {"en": EN}}, 422, "missing_field", "text.zh-CN"),
        ("v2", {"text": {"zh-CN": ZH, "en": "   "}}, 422, "invalid_field", "text.en"),
        ("v2", {"text": {"zh-CN": ZH, "en": EN, "fr": "Avis"}}, 422, "unknown_field", "text.fr"),
        ("v2", {"text": {"zh-CN": ZH, "en": "a\tb"}}, 422, "invalid_character", "text.en"),
        ("v2", {"text": {"zh-CN": "a\x1bb", "en": EN}}, 400, "invalid_character", None),
        ("v2", {"text": {"zh-CN": "字" * (MAX_NOTICE_CHARS + 1), "en": EN}}, 422, "limit_exceeded", "text.zh-CN"),
        (
            "v2",
            {"text": {"zh-CN": ZH, "en": EN}, "requires_fresh_consent": ["service"]},
            422,
            "consent_given_by_default",
            "requires_fresh_consent",
        ),
        (
            "v2",
            {"text": {"zh-CN": ZH, "en": EN}, "requires_fresh_consent": ["marketing"]},
            422,
            "invalid_field",
            "requires_fresh_consent.0",
        ),
        ("v2", {"text": "plain"}, 422, "invalid_field", "text"),
        ("v2", {"text": {"zh-CN": ZH, "en": EN}, "version": "v3"}, 422, "unknown_field", "version"),
        ("current", {"text": {"zh-CN": ZH, "en": EN}}, 422, "invalid_field", "version"),
        ("-v2", {"text": {"zh-CN": ZH, "en": EN}}, 422, "invalid_field", "version"),
        ("v" * 33, {"text": {"zh-CN": ZH, "en": EN}}, 422, "invalid_field", "version"),
    ],
    ids=[
        "no-english",
        "no-chinese",
        "blank",
        "unknown-locale",
        "tab",
        "escape",
        "too-long",
        "fresh-service",
        "unknown-purpose",
        "text-not-an-object",
        "unknown-field",
        "reserved-version",
        "version-shape",
        "version-too-long",
    ],
)
def test_a_bad_notice_is_refused_with_a_stable_code_and_nothing_is_published(  # noqa: PLR0917 - one per parameter
    api: TestClient, version: str, body: dict[str, Any], status: int, code: str, field: str | None
) -> None:
    answer = api.put(f"/api/v1/privacy/notices/{version}", json=body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert error["message"]
    assert api.get("/api/v1/privacy/notices").json()["total"] == 1  # the built-in one alone


def test_an_unknown_version_is_404_and_publishing_needs_the_admin_scope(api: TestClient, runtime: Runtime) -> None:
    missing = api.get("/api/v1/privacy/notices/v9")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "notice_not_found")
    with runtime.session() as session:
        from followup.staff import service as staff

        _, reader = staff.create_api_key(session, name="reader", now=runtime.clock.now(), scopes=["read"])
    headers = {"Authorization": f"Bearer {reader}"}
    assert api.get("/api/v1/privacy/notices/current", headers=headers).status_code == 200
    refused = api.put("/api/v1/privacy/notices/v2", json={"text": {"zh-CN": ZH, "en": EN}}, headers=headers)
    assert refused.status_code == 403
    assert api.get("/api/v1/privacy/notices").json()["total"] == 1


# ── the pages customers read ────────────────────────────────────────────────────────────────


@pytest.fixture
def browser(runtime: Runtime) -> TestClient:
    """A customer's browser: no key, no cookie."""
    return TestClient(create_app(runtime), follow_redirects=False)


def test_the_privacy_page_speaks_the_customers_language(browser: TestClient) -> None:
    chinese = browser.get("/privacy")
    assert chinese.status_code == 200
    assert '<html lang="zh-CN">' in chinese.text
    assert "回访与反馈隐私说明" in chinese.text
    assert "Privacy notice for follow-ups" not in chinese.text
    # The same headers as every other customer page
    assert chinese.headers["content-security-policy"] == PAGE_CSP
    assert chinese.headers["x-frame-options"] == "DENY"
    assert chinese.headers["cache-control"] == "no-store"
    assert chinese.headers["referrer-policy"] == "no-referrer"

    assert "Privacy notice for follow-ups" in browser.get("/privacy", params={"lang": "en"}).text
    for accept, heading in [
        ("en-GB,en;q=0.9", "Privacy notice for follow-ups"),
        ("fr-FR, en;q=0.5, zh;q=0.4", "Privacy notice for follow-ups"),
        ("en;q=0.2, zh-TW;q=0.8", "回访与反馈隐私说明"),
        ("ja", "回访与反馈隐私说明"),
        ("en;q=0", "回访与反馈隐私说明"),
        ("en;q=banana", "回访与反馈隐私说明"),
    ]:
        assert heading in browser.get("/privacy", headers={"Accept-Language": accept}).text, accept
    # ?lang wins over the browser; an unknown one is ignored
    assert "回访与反馈隐私说明" in browser.get("/privacy?lang=zh-CN", headers={"Accept-Language": "en"}).text
    assert "回访与反馈隐私说明" in browser.get("/privacy?lang=fr").text
    head = browser.head("/privacy")
    assert (head.status_code, head.content) == (200, b"")


def test_every_version_has_its_page_and_the_text_is_shown_as_text(api: TestClient, browser: TestClient) -> None:
    # Given a notice whose text tries to be markup
    hostile = "# Notice <b>bold</b>\n\nWe keep <script>alert(1)</script> ratings.\nSecond line.\n\n- one\n- two"
    assert publish(api, "v2", en=hostile).status_code == 201

    # Then /privacy shows it escaped, as headings, paragraphs with their line breaks, and lists
    page = browser.get("/privacy?lang=en").text
    assert "<script>" not in page
    assert "<h2>Notice &lt;b&gt;bold&lt;/b&gt;</h2>" in page
    assert "<p>We keep &lt;script&gt;alert(1)&lt;/script&gt; ratings.<br>Second line.</p>" in page
    assert "<ul><li>one</li><li>two</li></ul>" in page
    assert api.get("/api/v1/privacy/notices/v2").json()["hash"] in page
    assert 'href="/privacy/2026-11-01?lang=en"' in page

    # And the earlier, built-in notice has its own page, marked as earlier
    earlier = browser.get(f"/privacy/{BUILT_IN}?lang=en")
    assert earlier.status_code == 200
    assert "This is an earlier version." in earlier.text
    assert "Privacy notice for follow-ups" in earlier.text
    assert "This is an earlier version." not in page

    # And a version that does not exist is a plain 404 page
    for path in ("/privacy/v9", "/privacy/" + "v" * 40, "/privacy/a%20b", "/privacy/%E5%AD%97"):
        missing = browser.get(path)
        assert missing.status_code == 404, path
        assert "找不到该版本" in missing.text
        assert missing.headers["content-security-policy"] == PAGE_CSP


# ── links to the notice ─────────────────────────────────────────────────────────────────────


def test_the_email_its_survey_page_and_the_inbox_link_to_the_notice(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock
) -> None:
    # Given one customer invited by email and another in the in-app inbox
    put_customer(api, "c1")
    put_customer(api, "c2", email=None, locale="zh-CN", consents={"feedback": {"inapp": True}})
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body()).status_code == 201
    events = [transfer("e1", "c1"), transfer("e2", "c2")]
    assert api.post("/api/v1/events", json={"events": events}).json()["accepted"] == 2
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()

    # Then the email's text and HTML footers link to the notice in the customer's language
    (email,) = smtp.wait_for(1)
    link = "http://testserver/privacy?lang=en"
    assert f"\nPrivacy notice: {link}\r\n" in text_body(email)
    # and to the customer's own privacy page, with a token of its own
    assert re.search(r"See or delete my data: http://testserver/p/\d+\.\d+\.[A-Za-z0-9_-]{32}\s*$", text_body(email))
    assert f'<a href="{link}" style="color:#57606a">Privacy notice</a>' in html_body(email)
    # And so does the survey page it opens
    page = api.get(survey_path(email))
    assert page.status_code == 200
    assert f'<a href="{link}">Privacy notice</a>' in page.text
    # And so do the unsubscribe page and the page of a link that no longer works
    assert f'href="{link}"' in api.get(unsubscribe_path(email)).text
    assert 'href="http://testserver/privacy?lang=zh-CN"' in api.get("/s/not-a-token").text

    # And the inbox item
    (item,) = api.get("/api/v1/customers/c2/inbox").json()
    assert item["privacy_url"] == "http://testserver/privacy?lang=zh-CN"


# ── consent with proof ──────────────────────────────────────────────────────────────────────


def test_each_consent_records_the_notice_it_was_given_under_with_its_hash(api: TestClient, clock: ManualClock) -> None:
    # Given a consent given while the built-in notice is current
    put_customer(api, "c1", consents={"feedback": {"email": True}})
    built_in_hash = api.get("/api/v1/privacy/notices/current").json()["hash"]

    # When a notice is published and the customer then withdraws
    assert publish(api, "v2").status_code == 201
    v2_hash = api.get("/api/v1/privacy/notices/v2").json()["hash"]
    clock.advance(dt.timedelta(minutes=5))
    put_customer(api, "c1", consents={"feedback": {"email": False}})

    # Then each ledger row names its notice by version and hash, newest first
    page = history(api, "c1")
    assert page["total"] == 2
    assert [
        (i["purpose"], i["channel"], i["granted"], i["source"], i["notice_version"], i["notice_hash"])
        for i in page["items"]
    ] == [
        ("feedback", "email", False, "api", "v2", v2_hash),
        ("feedback", "email", True, "api", BUILT_IN, built_in_hash),
    ]
    assert page["items"][0]["recorded_at"] == "2026-11-23T02:05:00Z"
    assert page["items"][0]["actor"].startswith("api_key:")
    # The auditor's ledger says the same
    audit = api.get("/api/v1/audit/consents", params={"customer_id": "c1"}).json()["items"]
    assert [(r["notice_version"], r["notice_hash"]) for r in audit] == [("v2", v2_hash), (BUILT_IN, built_in_hash)]


def test_the_consent_history_is_paged_and_names_only_known_customers(api: TestClient, clock: ManualClock) -> None:
    put_customer(api, "c1", consents={"feedback": {"email": True, "inapp": True}, "research": {"email": True}})
    clock.advance(dt.timedelta(minutes=1))
    put_customer(api, "c1", consents={"feedback": {"email": False}})
    everything = history(api, "c1")
    assert everything["total"] == 4
    newest = everything["items"][0]
    assert (newest["purpose"], newest["channel"], newest["granted"]) == ("feedback", "email", False)
    assert [i["id"] for i in everything["items"]] == sorted((i["id"] for i in everything["items"]), reverse=True)
    two = history(api, "c1", limit=2, offset=1)
    assert (two["total"], [i["id"] for i in two["items"]]) == (4, [i["id"] for i in everything["items"][1:3]])

    missing = api.get("/api/v1/customers/nobody/consents/history")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "customer_not_found")
    bad = api.get("/api/v1/customers/c1/consents/history", params={"limit": 0})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_field")
    unknown = api.get("/api/v1/customers/c1/consents/history", params={"purpose": "feedback"})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (422, "unknown_field")


def test_sources_have_the_names_the_api_documents(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock
) -> None:
    # Given a customer who consented through the API and unsubscribed with the email's link
    put_customer(api, "c1")
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body(channels=["email"])).status_code == 201
    assert api.post("/api/v1/events", json={"events": [transfer("e1", "c1")]}).json()["accepted"] == 1
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()
    (email,) = smtp.wait_for(1)
    assert api.post(unsubscribe_path(email), data={"List-Unsubscribe": "One-Click"}).status_code == 200

    # And one who gave research consent on the privacy page (the page the wallet builds on it)
    with runtime.session() as session:
        customer = customers.access_customer(session, "c1")
        privacy.record_consents(
            session,
            customer.id,
            {"research": {"email": True}},
            subject_id="c1",
            source="privacy_page",
            built_in_notice_version=BUILT_IN,
            actor=Actor(kind="customer", id=str(customer.id)),
            now=clock.now(),
        )
        internal = customer.id
        # A source of another name is ours to fix, never stored
        with pytest.raises(ValueError, match="not a consent source"):
            privacy.record_consents(
                session,
                customer.id,
                {"research": {"email": False}},
                subject_id="c1",
                source="unsubscribe_link",
                built_in_notice_version=BUILT_IN,
                actor=Actor(kind="customer", id="c1"),
                now=clock.now(),
            )

    items = history(api, "c1")["items"]
    assert [(i["purpose"], i["channel"], i["granted"], i["source"], i["actor"]) for i in items[:2]] == [
        ("research", "email", True, "privacy_page", f"customer:{internal}"),
        ("feedback", "email", False, "unsubscribe", f"customer:{internal}"),
    ]
    assert {i["source"] for i in items[2:]} == {"api"}
    assert api.get("/api/v1/customers/c1").json()["consents"]["research"] == {"email": True}


# ── fresh consent ───────────────────────────────────────────────────────────────────────────


def test_a_notice_asking_fresh_feedback_consent_stops_sends_until_the_customer_consents_again(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock
) -> None:
    # Given two customers who consented under the built-in notice, and c1's follow-up planned
    put_customer(api, "c1")
    put_customer(api, "c2")
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body()).status_code == 201
    assert api.post("/api/v1/events", json={"events": [transfer("e1", "c1")]}).json()["accepted"] == 1
    assert followup_of(api, "c1")["status"] == "planned"

    # When a notice asking for research consent alone is published, feedback grants still count
    assert publish(api, "v2", fresh=("research",)).status_code == 201
    with runtime.read_session() as session:
        ids = [customers.access_customer(session, c).id for c in ("c1", "c2")]
        assert privacy.consents_for(session, ids, purpose="feedback") == {
            ids[0]: {"email": True, "inapp": True},
            ids[1]: {"email": True, "inapp": True},
        }

    # When a notice asking for fresh feedback consent is published
    clock.advance(dt.timedelta(minutes=1))
    assert publish(api, "v3", fresh=("feedback",)).status_code == 201

    # Then c1's planned invitation is refused at send time, on every channel, and nothing goes out
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()
    first = followup_of(api, "c1")
    assert (first["status"], first["reason"]) == ("suppressed", "no_consent")
    assert smtp.wait_for(1, timeout=0.5) == []
    assert api.get("/api/v1/customers/c1/inbox").json() == []
    # And c2 is not even planned
    assert api.post("/api/v1/events", json={"events": [transfer("e2", "c2")]}).json()["accepted"] == 1
    second = followup_of(api, "c2")
    assert (second["status"], second["reason"]) == ("suppressed", "no_consent")

    # When c2 gives feedback consent again — the same values as before — under the new notice
    clock.advance(dt.timedelta(minutes=1))
    put_customer(api, "c2")
    renewed = history(api, "c2")
    assert renewed["total"] == 4
    assert {(i["channel"], i["granted"], i["notice_version"]) for i in renewed["items"][:2]} == {
        ("email", True, "v3"),
        ("inapp", True, "v3"),
    }
    # Given again and again changes nothing more
    put_customer(api, "c2")
    assert history(api, "c2")["total"] == 4

    # Then c2 is planned and emailed; c1, who did not, is still not
    assert api.post("/api/v1/strategies", json=strategy_body("again")).status_code == 201
    events = [transfer("e3", "c2"), transfer("e4", "c1")]
    assert api.post("/api/v1/events", json={"events": events}).json()["accepted"] == 2
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()
    (email,) = smtp.wait_for(1)
    assert email["To"] == "c2@example.com"
    assert smtp.wait_for(2, timeout=0.3) == [email]
    c1_again = api.get("/api/v1/followups", params={"customer_id": "c1"}).json()["items"]
    assert {(f["status"], f["reason"]) for f in c1_again} == {("suppressed", "no_consent")}


def test_a_withdrawal_stays_a_withdrawal_and_only_what_is_given_again_counts(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock
) -> None:
    # Given a customer who withdrew email and kept in-app, then a notice asking for fresh consent
    put_customer(api, "c1", consents={"feedback": {"email": False, "inapp": True}})
    assert publish(api, "v2", fresh=("feedback",)).status_code == 201
    assert history(api, "c1")["total"] == 2

    # When they give in-app again, and say nothing of email
    clock.advance(dt.timedelta(minutes=1))
    put_customer(api, "c1", consents={"feedback": {"inapp": True}})

    # Then one row is added, and email stays withdrawn
    items = history(api, "c1")["items"]
    assert len(items) == 3
    assert (items[0]["channel"], items[0]["granted"], items[0]["notice_version"]) == ("inapp", True, "v2")
    with runtime.read_session() as session:
        customer_id = customers.access_customer(session, "c1").id
        assert privacy.consents_for(session, [customer_id], purpose="feedback") == {
            customer_id: {"email": False, "inapp": True}
        }

    # And the follow-up goes to the inbox, never by email
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body()).status_code == 201
    assert api.post("/api/v1/events", json={"events": [transfer("e1", "c1")]}).json()["accepted"] == 1
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()
    assert (followup_of(api, "c1")["status"], followup_of(api, "c1")["channel"]) == ("invited", "inapp")
    assert smtp.wait_for(1, timeout=0.3) == []


def test_a_periodic_wave_planned_in_sql_agrees_with_the_python_policy(
    api: TestClient, runtime: Runtime, clock: ManualClock
) -> None:
    # Given a monthly panel of three customers who consented under the built-in notice, and one never asked
    for customer_id in ("p1", "p2", "p3"):
        put_customer(api, customer_id, attributes={"panel": True})
    put_customer(api, "p4", attributes={"panel": True}, consents=None)
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    wave = {
        "key": "monthly-nps",
        "kind": "periodic",
        "schedule": {"cron": "0 10 1 * *", "time_zone": "Asia/Shanghai"},
        "audience": {"all": [{"field": "customer.attributes.panel", "op": "eq", "value": True}]},
        "sample_rate": 1.0,
        "max_per_wave": 5000,
        "cooldown_days": 0,
        "spread": "PT0S",
        "channels": ["email", "inapp"],
        "survey": "payment-csat",
        "expire_after": "P7D",
    }
    assert api.post("/api/v1/strategies", json=wave).status_code == 201

    # When a notice asks for fresh feedback consent, and only p2 gives it again (email alone)
    assert publish(api, "v2", fresh=("feedback",)).status_code == 201
    clock.advance(dt.timedelta(minutes=1))
    put_customer(api, "p2", consents={"feedback": {"email": True}})

    # Then the wave, planned in the database, plans p2 alone: the others are refused at planning
    clock.set(FIRST_WAVE)
    Worker(runtime).run_until_idle()
    first_step = {c: followup_of(api, c)["history"][0] for c in ("p1", "p2", "p3", "p4")}
    assert {c: (step["action"], step["reason"]) for c, step in first_step.items()} == {
        "p1": ("suppressed", "no_consent"),
        "p2": ("planned", None),
        "p3": ("suppressed", "no_consent"),
        "p4": ("suppressed", "no_consent"),
    }
    assert (followup_of(api, "p2")["status"], followup_of(api, "p2")["channel"]) == ("invited", "email")
    # And the Python policy reads the consents the same way
    with runtime.read_session() as session:
        ids = {customers.access_customer(session, c).id: c for c in ("p1", "p2", "p3")}
        python = privacy.consents_for(session, ids, purpose="feedback")
    assert {ids[k]: v for k, v in python.items()} == {"p1": {}, "p2": {"email": True}, "p3": {}}


# ── the console ─────────────────────────────────────────────────────────────────────────────


@pytest.fixture
def console(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime), follow_redirects=False)


def test_an_admin_publishes_a_notice_in_the_console(runtime: Runtime, console: TestClient, api: TestClient) -> None:
    sign_in(console, "ops@wallet.example", make_staff(runtime))
    listing = console.get("/console/privacy/notices")
    assert listing.status_code == 200
    assert f'href="/console/privacy/notices/{BUILT_IN}"' in listing.text
    assert "built in" in listing.text
    assert 'href="/console/privacy"' in listing.text.split("</nav>")[0]

    # A bad version is refused with the form kept
    csrf = csrf_of(listing.text)
    form = {"csrf": csrf, "version": "not a version", "text_zh": ZH, "text_en": EN, "fresh_research": "1"}
    refused = console.post("/console/privacy/notices", data=form)
    assert refused.status_code == 422
    assert "A version is 1 to 32 letters" in refused.text
    assert "We keep your ratings." in refused.text
    assert api.get("/api/v1/privacy/notices").json()["total"] == 1
    # Without the form's token, nothing happens
    assert console.post("/console/privacy/notices", data={**form, "csrf": "forged", "version": "v2"}).status_code == 403

    # A good one is published, and its page shows both texts and the hash
    published = console.post("/console/privacy/notices", data={**form, "version": "2026-12-01"})
    assert (published.status_code, published.headers["location"]) == (303, "/console/privacy/notices/2026-12-01")
    notice = api.get("/api/v1/privacy/notices/current").json()
    assert (notice["version"], notice["requires_fresh_consent"]) == ("2026-12-01", ["research"])
    assert notice["published_by"] == "staff:ops@wallet.example"
    shown = console.get("/console/privacy/notices/2026-12-01")
    assert shown.status_code == 200
    assert notice["hash"] in shown.text
    assert "<h3>隐私声明</h3>" in shown.text
    assert "<ul><li>ratings</li><li>comments</li></ul>" in shown.text
    # Publishing other words under it again is refused with the reason
    again = console.post("/console/privacy/notices", data={**form, "version": "2026-12-01", "text_en": "Other words."})
    assert again.status_code == 409
    assert "never changes" in again.text
    assert console.get("/console/privacy/v9").status_code == 404


def test_other_roles_read_the_notices_but_do_not_publish(
    runtime: Runtime, console: TestClient, api: TestClient
) -> None:
    sign_in(console, "ana@wallet.example", make_staff(runtime, "ana@wallet.example", "analyst"))
    listing = console.get("/console/privacy/notices")
    assert listing.status_code == 200
    assert "Publish a new version" not in listing.text
    form = {"csrf": csrf_of(listing.text), "version": "v2", "text_zh": ZH, "text_en": EN}
    assert console.post("/console/privacy/notices", data=form).status_code == 403
    assert api.get("/api/v1/privacy/notices").json()["total"] == 1
