"""The console over plain HTTP: sign-in, CSRF, every page, and what personal data it shows."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient

from followup.app import create_app
from followup.kernel.http import CONSOLE_CSP
from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.staff import roles
from followup.staff import service as staff
from followup.web.console.auth import SESSION_COOKIE
from followup.web.console.router import FOLLOWUP_STATUSES
from followup.worker import Worker
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.conftest import SmtpSink
from tests.helpers import survey_path, unsubscribe_path

EMAIL = "zhang.san@example.com"
PHONE = "+8613812341234"
PAGES = [
    "/console",
    "/console/outbox",
    "/console/followups",
    "/console/followups?status=invited",
    "/console/responses",
    "/console/cases",
    "/console/cases?status=all",
    "/console/audit",
    "/console/audit?log=consents",
    "/console/privacy/requests",
    "/console/privacy/notices",
    "/console/strategies",
    "/console/segments",
    "/console/webhooks",
    "/console/interviews",
    "/console/channels",
    "/console/customers/c1",
]
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def make_staff(runtime: Runtime, email: str = "ops@wallet.example", role: str = "admin") -> str:
    with runtime.session() as session:
        _, password = staff.create_staff(session, email=email, role=role, now=runtime.clock.now())
    return password


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def sign_in(client: TestClient, email: str, password: str, *, next_path: str = "/console") -> TestClient:
    form = client.get("/console/login")
    assert form.status_code == 200
    answer = client.post(
        "/console/login",
        data={"email": email, "password": password, "csrf": csrf_of(form.text), "next": next_path},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return client


@pytest.fixture
def console(runtime: Runtime) -> TestClient:
    """A browser-like client with no API key: only the console's own sign-in lets it in."""
    return TestClient(create_app(runtime), follow_redirects=False)


@pytest.fixture
def sent_message(api: TestClient, runtime: Runtime, clock: ManualClock, smtp: SmtpSink) -> None:
    """Given a customer with email and phone, a survey, a strategy, an event, and the invitation sent."""
    customer = {
        "email": EMAIL,
        "phone": PHONE,
        "locale": "zh-CN",
        "time_zone": "Asia/Shanghai",
        "consents": {"feedback": {"email": True, "inapp": True}},
    }
    assert api.put("/api/v1/customers/c1", json=customer).status_code == 200
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body(delay="PT0S")).status_code == 201
    assert api.post("/api/v1/events", json={"events": [transfer("e1", "c1")]}).json()["accepted"] == 1
    Worker(runtime).run_until_idle()
    followup = api.get("/api/v1/followups").json()["items"][0]
    assert followup["status"] == "invited"


@pytest.mark.parametrize("path", [*PAGES, "/console/outbox/1"])
def test_every_page_sends_a_visitor_without_session_to_sign_in(console: TestClient, path: str) -> None:
    page = console.get(path)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/console/login?next=/console")


def test_sign_in_page_carries_the_console_csp_and_no_inline_code(console: TestClient) -> None:
    page = console.get("/console/login")
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"] == CONSOLE_CSP
    assert page.headers["Cache-Control"] == "no-store"
    assert "<style" not in page.text
    assert " style=" not in page.text
    assert re.findall(r"<script(?![^>]*\ssrc=)", page.text) == []


def test_wrong_password_is_refused_and_no_session_is_given(runtime: Runtime, console: TestClient) -> None:
    make_staff(runtime)
    form = console.get("/console/login")
    answer = console.post(
        "/console/login",
        data={"email": "ops@wallet.example", "password": "guess", "csrf": csrf_of(form.text)},
    )
    assert answer.status_code == 401
    assert "Wrong email or password, or a wrong code from the authenticator app." in answer.text
    assert SESSION_COOKIE not in answer.cookies
    assert console.get("/console").status_code == 303


def test_sign_in_without_the_forms_csrf_token_is_refused(runtime: Runtime, console: TestClient) -> None:
    password = make_staff(runtime)
    console.get("/console/login")
    answer = console.post(
        "/console/login", data={"email": "ops@wallet.example", "password": password, "csrf": "forged"}
    )
    assert answer.status_code == 403
    assert SESSION_COOKIE not in answer.cookies
    assert console.get("/console").status_code == 303


def test_session_cookie_is_http_only_strict_and_expires(runtime: Runtime, console: TestClient) -> None:
    password = make_staff(runtime)
    form = console.get("/console/login")
    answer = console.post(
        "/console/login",
        data={
            "email": "OPS@wallet.example",
            "password": password,
            "csrf": csrf_of(form.text),
            "next": "/console/cases",
        },
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/cases"
    cookie = next(v for k, v in answer.headers.multi_items() if k == "set-cookie" and v.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/console" in cookie
    assert "Max-Age=28800" in cookie


def test_sign_in_never_redirects_to_another_site(runtime: Runtime, console: TestClient) -> None:
    password = make_staff(runtime)
    for target in ("https://evil.example/", "//evil.example/console", "/api/v1/customers"):
        console.cookies.clear()
        form = console.get("/console/login")
        answer = console.post(
            "/console/login",
            data={"email": "ops@wallet.example", "password": password, "csrf": csrf_of(form.text), "next": target},
        )
        assert answer.headers["location"] == "/console"


def test_sign_out_needs_the_csrf_token(runtime: Runtime, console: TestClient) -> None:
    sign_in(console, "ops@wallet.example", make_staff(runtime))
    page = console.get("/console")

    refused = console.post("/console/logout", data={"csrf": "forged"})
    assert refused.status_code == 403
    assert console.get("/console").status_code == 200, "a forged sign-out changes nothing"

    done = console.post("/console/logout", data={"csrf": csrf_of(page.text)})
    assert done.status_code == 303
    assert done.headers["location"] == "/console/login"
    assert console.get("/console").status_code == 303


@pytest.mark.usefixtures("sent_message")
@pytest.mark.parametrize("role", ["admin", "analyst", "agent", "auditor"])
def test_every_page_renders_for_every_role(runtime: Runtime, console: TestClient, role: str) -> None:
    """Each page opens for the roles the table lets in; the others get the 403 page, or the 404
    page where the path names one record."""
    sign_in(console, f"{role}@wallet.example", make_staff(runtime, f"{role}@wallet.example", role))
    for path in [*PAGES, "/console/outbox/1"]:
        page = console.get(path)
        template = {"/console/outbox/1": "/console/outbox/{message_id}"}.get(path, path)
        template = template.replace("/customers/c1", "/customers/{customer_id}")
        access = roles.access(role, "GET", template.removeprefix("/console").split("?")[0])
        expected = {"allow": 200, "forbid": 403, "hide": 404}[access]
        if role == "agent" and "/customers/" in path:
            expected = 404  # besides the table: an agent reaches the customers of their queues alone
        assert page.status_code == expected, (role, path)
        assert page.headers["Content-Security-Policy"] == CONSOLE_CSP
        assert " style=" not in page.text
        assert re.findall(r"<script(?![^>]*\ssrc=)", page.text) == [], path


@pytest.mark.usefixtures("sent_message")
def test_overview_counts_and_chart_data(runtime: Runtime, console: TestClient) -> None:
    sign_in(console, "ops@wallet.example", make_staff(runtime))
    page = console.get("/console").text
    assert re.search(r'<span class="label">Events</span><span class="value">1</span>', page)
    assert re.search(r'<span class="label">Invited</span><span class="value">1</span>', page)
    assert re.search(r'<span class="label">Response rate</span><span class="value">0.0%</span>', page)
    # Invited today: the day is not over, so the chart gets no response rate for it yet
    assert 'data-series=\'{"days": [1795392000], "nps": [null], "response_rate": [null]}\'' in page
    assert "Today (2026-11-23) has no response rate in the chart until the day is over" in page
    assert '<tr class="incomplete"><td>2026-11-23 (not over yet)</td>' in page
    assert '<td class="num">0.0% so far</td>' in page


@pytest.mark.usefixtures("sent_message")
def test_a_day_that_is_over_is_charted_in_full(runtime: Runtime, console: TestClient, clock: ManualClock) -> None:
    clock.advance(dt.timedelta(days=1))
    sign_in(console, "ops@wallet.example", make_staff(runtime))
    page = console.get("/console").text
    assert 'data-series=\'{"days": [1795392000], "nps": [null], "response_rate": [0.0]}\'' in page
    assert "has no response rate in the chart" not in page
    assert "not over yet" not in page
    assert 'class="incomplete"' not in page


def test_numbers_carry_thousands_separators(api: TestClient, runtime: Runtime, console: TestClient) -> None:
    # Given 1,234 events (none of which plans a follow-up: there is no strategy)
    batch = [transfer(f"e{n}", f"c{n % 7}") for n in range(1234)]
    assert api.post("/api/v1/events", json={"events": batch}).json()["accepted"] == 1234

    sign_in(console, "ops@wallet.example", make_staff(runtime))
    page = console.get("/console").text

    assert '<span class="label">Events</span><span class="value">1,234</span>' in page
    assert ">1234<" not in page


@pytest.mark.usefixtures("sent_message")
def test_a_message_reads_as_sent_but_none_of_its_links_act(
    runtime: Runtime, console: TestClient, smtp: SmtpSink
) -> None:
    # Given the invitation the customer received, with its survey and unsubscribe links
    mail = smtp.wait_for(1)[0]
    token = survey_path(mail).removeprefix("/s/")
    unsubscribe_token = unsubscribe_path(mail).removeprefix("/u/")

    # When staff reads the outbox, the message and the customer's page
    sign_in(console, "ops@wallet.example", make_staff(runtime))
    outbox = console.get("/console/outbox").text
    message = console.get("/console/outbox/1").text
    customer = console.get("/console/customers/c1").text

    # Then the message reads as the customer saw it
    assert "邀请您评价：支付体验回访" in outbox
    assert "z***@example.com" in outbox
    assert "邀请您评价：支付体验回访" in message
    assert "您有多大可能向朋友推荐我们？" in message
    assert (
        len(
            re.findall(
                r'<span class="inert" title="Link hidden: acting on it would answer as the customer">'
                r"(?:10|\d)</span>",
                message,
            )
        )
        == 11
    )
    assert "<strong>Links hidden:</strong> acting on one would answer as the customer" in message
    assert "<code>http://testserver/s/…</code>" in message, "where the link led, without its token"
    assert "<code>http://testserver/u/…</code>" in message
    # But no link acts: no survey or unsubscribe address anywhere, and no token in any page
    assert not re.search(r'href="[^"]*/(s|u)/', message)
    assert "?score=" not in message
    for page in (outbox, message, customer):
        assert token not in page
        assert unsubscribe_token not in page
        assert EMAIL not in page
        assert "zhang.san" not in page
        assert "13812341234" not in page
    assert "z***@example.com" in customer
    assert "138****1234" in customer


@pytest.mark.usefixtures("sent_message")
def test_unknown_message_and_customer_are_404_pages(runtime: Runtime, console: TestClient) -> None:
    sign_in(console, "ops@wallet.example", make_staff(runtime))
    assert console.get("/console/outbox/999").status_code == 404
    assert console.get("/console/customers/nobody").status_code == 404


def test_an_in_app_message_shows_as_the_inbox_item(api: TestClient, runtime: Runtime, console: TestClient) -> None:
    # Given a customer reachable in-app only, and the invitation delivered to the inbox
    customer = {"locale": "en", "time_zone": "Asia/Shanghai", "consents": {"feedback": {"inapp": True}}}
    assert api.put("/api/v1/customers/c2", json=customer).status_code == 200
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body(delay="PT0S")).status_code == 201
    assert api.post("/api/v1/events", json={"events": [transfer("e1", "c2")]}).json()["accepted"] == 1
    Worker(runtime).run_until_idle()
    sent = [m for f in api.get("/api/v1/followups").json()["items"] for m in f["messages"] if m["status"] == "sent"]
    assert [m["channel"] for m in sent] == ["inapp"]

    # When staff opens it
    sign_in(console, "ops@wallet.example", make_staff(runtime))
    page = console.get(f"/console/outbox/{sent[0]['id']}").text

    # Then it reads as the inbox item, its link shown but inert, and no email header
    assert '<section class="inbox-item" lang="en">' in page
    assert "How did we do? Your payment" in page
    assert re.search(r'<span class="button inert" title="[^"]+">[^<]+</span>', page)
    assert '<p class="link-text">http://testserver/s/…</p>' in page
    assert not re.search(r'href="[^"]*/s/', page)
    assert "<dt>From</dt>" not in page
    assert "in-app inbox" in page


@pytest.mark.parametrize(
    ("path", "status", "sentence"),
    [
        ("/console/outbox/99999999999999999999", 404, "this one names no message"),
        ("/console/outbox/9223372036854775808", 404, "this one names no message"),
        ("/console/outbox/-1", 404, "this one names no message"),
        ("/console/outbox/abc", 404, "this one names no message"),
        ("/console/outbox/9223372036854775807", 404, "There is no message 9223372036854775807."),
        ("/console/outbox?page=9223372036854775807", 400, "The page number must be a whole number from 1 to 100,000."),
        ("/console/outbox?page=0", 400, "The page number must be a whole number from 1 to 100,000."),
        ("/console/responses?page=-3", 400, "The page number must be a whole number from 1 to 100,000."),
        ("/console/followups?page=two", 400, "The page number must be a whole number from 1 to 100,000."),
        ("/console/cases?page=1e3", 400, "The page number must be a whole number from 1 to 100,000."),
        ("/console/customers/" + "x" * 300, 404, "There is no customer"),
        ("/console/nowhere", 404, "There is no such page in the console."),
        ("/console/outbox/1/more", 404, "There is no such page in the console."),
    ],
)
def test_out_of_range_and_unknown_console_urls_answer_a_page_not_json_or_500(
    runtime: Runtime, console: TestClient, path: str, status: int, sentence: str
) -> None:
    sign_in(console, "ops@wallet.example", make_staff(runtime))
    page = console.get(path)
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    assert sentence in page.text
    assert '<a href="/console/outbox"' in page.text, "the page keeps the console's navigation"


@pytest.mark.parametrize(
    ("path", "valid"),
    [
        ("/console/followups?status=bogus", FOLLOWUP_STATUSES),
        (
            "/console/cases?status=bogus",
            ("active", "open", "assigned", "waiting", "resolved", "closed", "reopened", "all"),
        ),
    ],
)
def test_an_unknown_status_filter_says_so_and_lists_the_valid_ones(
    runtime: Runtime, console: TestClient, path: str, valid: tuple[str, ...]
) -> None:
    sign_in(console, "ops@wallet.example", make_staff(runtime))
    page = console.get(path)
    assert page.status_code == 400
    assert "There is no status &#39;bogus&#39;. Choose one of these:" in page.text
    listed = re.findall(r'<li><a href="/console/\w+\?status=(\w+)"><code>\w+</code></a></li>', page.text)
    assert listed == list(valid)
    assert "No follow-up." not in page.text
    assert "No case." not in page.text


def test_console_root_with_a_slash_leads_to_the_overview(runtime: Runtime, console: TestClient) -> None:
    sign_in(console, "ops@wallet.example", make_staff(runtime))
    page = console.get("/console/")
    assert page.status_code == 303
    assert page.headers["location"] == "/console"


def test_an_unknown_console_path_is_a_page_for_visitors_too(console: TestClient) -> None:
    page = console.get("/console/nowhere")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "There is no such page in the console." in page.text
    assert "Sign out" not in page.text
    assert page.headers["Content-Security-Policy"] == CONSOLE_CSP
    # The console's static files are still served, and an unknown one is still a 404
    assert console.get("/console/static/console.css").status_code == 200
    assert console.get("/console/static/nothing.css").status_code == 404
