"""The console's strategies and segments over plain HTTP: the list and its last 30 days, the form
(with a refusal shown beside its field), edits as versions under the staff's name, pause and
resume, the segment builder and its preview, and what CSRF and read-only roles refuse."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from followup.kernel.http import CONSOLE_CSP
from followup.runtime import Runtime
from followup.worker import Worker
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.conftest import SmtpSink
from tests.helpers import survey_path
from tests.test_console import csrf_of, make_staff, sign_in

GOLD = {"field": "customer.value_tier", "op": "eq", "value": "gold"}


@pytest.fixture
def console(runtime: Runtime) -> TestClient:
    from followup.app import create_app

    return TestClient(create_app(runtime), follow_redirects=False)


@pytest.fixture
def admin(runtime: Runtime, console: TestClient) -> TestClient:
    return sign_in(console, "ops@wallet.example", make_staff(runtime))


def _customer(api: TestClient, customer_id: str, **fields: Any) -> None:
    body = {
        "email": f"{customer_id}.wallet@example.com",
        "time_zone": "Asia/Shanghai",
        "consents": {"feedback": {"email": True}},
        **fields,
    }
    assert api.put(f"/api/v1/customers/{customer_id}", json=body).status_code == 200


def periodic_form(csrf: str, **overrides: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "csrf": csrf,
        "action": "save",
        "key": "monthly-gold",
        "name": "Monthly gold panel",
        "kind": "periodic",
        "cron": "0 10 1 * *",
        "time_zone": "Asia/Shanghai",
        "audience": '{"segment": "gold"}',
        "sample_rate": "1.0",
        "holdout_percent": "0",
        "max_per_wave": "100",
        "cooldown_days": "0",
        "spread": "PT0S",
        "channels": "email",
        "survey": "payment-csat",
        "reward_points": "20",
        "delay": "PT0S",
        "remind_after": "",
        "expire_after": "P7D",
        "recontact_days": "30",
        "message_locale": ["en"],
        "message_subject": ["Your month with us"],
        "message_body": ["How was this month?"],
    }
    form.update(overrides)
    return form


def _page_csrf(client: TestClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


def _cells(row: str) -> list[str]:
    """A table row's cells after its first, as text."""
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in cells]


def _no_inline_code(text: str) -> None:
    assert " style=" not in text
    assert re.findall(r"<script(?![^>]*\ssrc=)", text) == []


def test_the_list_shows_each_strategys_kind_status_next_firing_and_last_30_days(
    api: TestClient, runtime: Runtime, admin: TestClient, smtp: SmtpSink
) -> None:
    # Given an event strategy that invited two customers, one of whom answered 9
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body(delay="PT0S", channels=["email"])).status_code == 201
    for n in (1, 2):
        _customer(api, f"c{n}")
        assert api.post("/api/v1/events", json={"events": [transfer(f"e{n}", f"c{n}")]}).json()["accepted"] == 1
    Worker(runtime).run_until_idle()
    mails = smtp.wait_for(2)
    answered = api.post(survey_path(mails[0]), data={"step": "rating", "nps": "9"}, follow_redirects=False)
    assert answered.status_code == 303
    # And a periodic strategy that has not fired yet, and a paused proactive one
    periodic = strategy_body(
        "monthly", kind="periodic", trigger=None, schedule={"cron": "0 10 1 * *", "time_zone": "Asia/Shanghai"}
    )
    periodic["audience"] = GOLD
    assert api.post("/api/v1/strategies", json=periodic).status_code == 201
    proactive = strategy_body("quarterly", kind="proactive", trigger=None, cadence="P90D", status="paused")
    proactive["audience"] = GOLD
    assert api.post("/api/v1/strategies", json=proactive).status_code == 201

    # When staff opens the list
    page = admin.get("/console/strategies")

    # Then each strategy has its row, and only the event one has numbers
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"] == CONSOLE_CSP
    _no_inline_code(page.text)
    rows = re.findall(r"<tr>\s*<td><a href=\"/console/strategies/([\w-]+)\">.*?</tr>", page.text, re.S)
    assert rows == ["after-large-transfer", "monthly", "quarterly"]
    cells = {
        key: _cells(row)
        for key, row in re.findall(r'<a href="/console/strategies/([\w-]+)">(.*?)</tr>', page.text, re.S)
    }
    assert cells["after-large-transfer"] == [
        "event",
        "active",
        "on event transfer.succeeded",
        "2",
        "2",
        "1",
        "50.0%",
        "100.0 (1)",
    ]
    assert cells["monthly"] == ["periodic", "active", "2026-12-01 02:00 UTC", "0", "0", "0", "–", "–"]
    assert cells["quarterly"] == ["proactive", "paused", "paused", "0", "0", "0", "–", "–"]
    assert '<a class="button" href="/console/strategies/-/new">New strategy</a>' in page.text


def test_a_periodic_strategy_is_created_through_the_form_as_the_api_would_store_it(
    api: TestClient, admin: TestClient
) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/segments", json={"key": "gold", "name": "Gold", "rule": GOLD}).status_code == 201

    # The form offers the known fields, the rule operators, the surveys and the segments
    form_page = admin.get("/console/strategies/-/new?kind=periodic")
    assert form_page.status_code == 200
    _no_inline_code(form_page.text)
    assert "customer.stats.volume_30d" in form_page.text
    assert "event.attributes." in form_page.text
    assert "&#34;not_in&#34;" in form_page.text or '"not_in"' in html.unescape(form_page.text)
    assert '<option value="payment-csat">payment-csat</option>' in form_page.text
    assert '<option value="periodic" selected>periodic</option>' in form_page.text

    # When staff fills it in and saves
    answer = admin.post("/console/strategies/-/new", data=periodic_form(csrf_of(form_page.text)))

    # Then the strategy is stored as the API would store the same body, under the staff's name
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console/strategies/monthly-gold"
    stored = api.get("/api/v1/strategies/monthly-gold").json()
    assert {k: stored[k] for k in ("kind", "status", "schedule", "audience", "channels", "reward", "message")} == {
        "kind": "periodic",
        "status": "active",
        "schedule": {"cron": "0 10 1 * *", "time_zone": "Asia/Shanghai"},
        "audience": {"segment": "gold"},
        "channels": ["email"],
        "reward": {"points": 20},
        "message": {"en": {"subject": "Your month with us", "body": "How was this month?"}},
    }
    assert (stored["max_per_wave"], stored["expire_after"], stored["remind_after"]) == (100, "P7D", None)
    assert stored["next_run_at"] == "2026-12-01T02:00:00Z"
    page = admin.get("/console/strategies/monthly-gold")
    assert page.status_code == 200
    _no_inline_code(page.text)
    assert "<td>staff:ops@wallet.example</td>" in page.text
    assert 'in segment <a href="/console/segments/gold"><code>gold</code></a>' in page.text
    assert "No wave yet. The first fires 2026-12-01 02:00 UTC." in page.text
    # And the segment knows it is used
    assert api.get("/api/v1/segments/gold").json()["used_by"] == ["strategy:monthly-gold"]


@pytest.mark.parametrize(
    ("overrides", "field", "sentence"),
    [
        ({"cron": "every day"}, "schedule-cron", "schedule.cron: &#39;every day&#39; is not a cron expression"),
        ({"cron": "*/30 * * * *", "spread": "PT0S"}, "schedule-cron", "waves must be at least an hour apart"),
        ({"audience": '{"all": [}'}, "audience", "audience: this is not valid JSON"),
        ({"audience": '{"segment": "silver"}'}, "audience", "there is no segment &#39;silver&#39;"),
        (
            {"audience": '{"field": "event.amount", "op": "gt", "value": 1}'},
            "audience",
            "&#39;event.amount&#39; is not a customer field",
        ),
        ({"survey": "nps-2027"}, "survey", "No survey with key &#39;nps-2027&#39;"),
        ({"channels": "email, pigeon"}, "channels", "channel &#39;pigeon&#39; is not configured here"),
        ({"channels": "email, Pigeon!"}, "channels", "channels.1:"),
        ({"reward_points": "lots"}, "reward", "reward.points:"),
        ({"message_subject": [""]}, "message", "message.en.subject:"),
    ],
)
def test_a_refused_form_comes_back_with_the_sentence_beside_its_field_and_the_values_kept(
    api: TestClient, admin: TestClient, overrides: dict[str, Any], field: str, sentence: str
) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/segments", json={"key": "gold", "name": "Gold", "rule": GOLD}).status_code == 201
    form = periodic_form(_page_csrf(admin, "/console/strategies/-/new?kind=periodic"), **overrides)

    answer = admin.post("/console/strategies/-/new", data=form)

    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("text/html")
    match = re.search(rf'<span class="field-error" id="error-{field}">([^<]*)</span>', answer.text)
    assert match, f"no error beside {field}"
    assert sentence in match.group(1)
    assert '<p class="error" role="alert">' in answer.text
    # The values typed are still there, and nothing was stored
    assert 'value="Monthly gold panel"' in answer.text
    assert html.escape(form["audience"]) in answer.text or form["audience"] in html.unescape(answer.text)
    assert api.get("/api/v1/strategies/monthly-gold").status_code == 404
    assert api.get("/api/v1/strategies").json()["total"] == 0


def test_a_second_strategy_with_the_key_is_refused_on_the_key(api: TestClient, admin: TestClient) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body("monthly-gold")).status_code == 201
    form = periodic_form(_page_csrf(admin, "/console/strategies/-/new"), audience="")

    answer = admin.post("/console/strategies/-/new", data=form)

    assert answer.status_code == 409
    assert re.search(r'id="error-key">A strategy with key &#39;monthly-gold&#39; already exists.<', answer.text)
    assert api.get("/api/v1/strategies/monthly-gold").json()["kind"] == "event"


def test_preview_of_a_new_strategy_shows_who_it_would_contact_and_saves_nothing(
    api: TestClient, admin: TestClient
) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/segments", json={"key": "gold", "name": "Gold", "rule": GOLD}).status_code == 201
    for n, tier in enumerate(["gold", "gold", "silver"]):
        _customer(api, f"c{n}", value_tier=tier)
    form = periodic_form(_page_csrf(admin, "/console/strategies/-/new?kind=periodic"), action="preview")

    answer = admin.post("/console/strategies/-/new", data=form)

    assert answer.status_code == 200
    assert '<span class="value" data-preview="matched">2</span>' in answer.text
    assert '<span class="value" data-preview="would_contact">2</span>' in answer.text
    assert '<tr><td>2026-11-23</td><td class="num">2</td></tr>' in answer.text
    assert "c***@example.com" in answer.text
    assert "c0.wallet@example.com" not in answer.text
    assert 'value="monthly-gold"' in answer.text, "the form is still filled in"
    assert api.get("/api/v1/strategies").json()["total"] == 0
    assert api.get("/api/v1/followups").json()["total"] == 0


def test_an_edit_is_a_new_version_by_the_staff_and_keeps_what_the_form_does_not_show(
    api: TestClient, admin: TestClient
) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    owner = {"name": "Wang Fang", "email": "wang.fang@wallet.example"}
    assert api.post("/api/v1/strategies", json=strategy_body(owner=owner)).status_code == 201
    edit = admin.get("/console/strategies/after-large-transfer/edit")
    assert edit.status_code == 200
    assert 'value="transfer.succeeded"' in edit.text
    assert "<code>owner</code>" in edit.text, "the form says what it keeps"
    form = {
        "csrf": csrf_of(edit.text),
        "key": "ignored-the-key-is-the-strategys",
        "kind": "event",
        "event_types": "transfer.succeeded, payment.succeeded",
        "match": '{"field": "event.amount", "op": "gte", "value": 100}',
        "audience": "",
        "channels": "inapp, email",
        "survey": "payment-csat",
        "delay": "PT10M",
        "expire_after": "P3D",
        "remind_after": "P1D",
    }

    answer = admin.post("/console/strategies/after-large-transfer/edit", data=form)

    assert answer.status_code == 303, answer.text
    stored = api.get("/api/v1/strategies/after-large-transfer").json()
    assert stored["version"] == 2
    assert stored["trigger"] == {
        "event_types": ["transfer.succeeded", "payment.succeeded"],
        "match": {"field": "event.amount", "op": "gte", "value": 100},
        "first_time": False,
    }
    assert (stored["audience"], stored["channels"], stored["reward"]) == (None, ["inapp", "email"], None)
    assert (stored["delay"], stored["remind_after"], stored["expire_after"]) == ("PT10M", "P1D", "P3D")
    assert stored["owner"] == owner
    page = admin.get("/console/strategies/after-large-transfer").text
    versions = re.findall(r'<tr><td class="num">(\d+)</td><td>[^<]+</td><td>([^<]+)</td>', page)
    assert versions == [("2", "staff:ops@wallet.example"), ("1", "api_key:1")] or versions[0] == (
        "2",
        "staff:ops@wallet.example",
    )
    assert len(versions) == 2

    # The same form again changes nothing: no third version
    again = admin.post("/console/strategies/after-large-transfer/edit", data=form)
    assert again.status_code == 303
    assert api.get("/api/v1/strategies/after-large-transfer").json()["version"] == 2

    # A refused edit changes nothing either, and shows the form again
    refused = admin.post("/console/strategies/after-large-transfer/edit", data={**form, "expire_after": "P365D"})
    assert refused.status_code == 422
    assert "expire_after must be between PT1H and P90D" in refused.text
    assert api.get("/api/v1/strategies/after-large-transfer").json()["expire_after"] == "P3D"


def test_pause_and_resume_from_the_strategy_page(api: TestClient, admin: TestClient) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    periodic = strategy_body(
        "monthly", kind="periodic", trigger=None, schedule={"cron": "0 10 1 * *", "time_zone": "Asia/Shanghai"}
    )
    periodic["audience"] = GOLD
    assert api.post("/api/v1/strategies", json=periodic).status_code == 201
    page = admin.get("/console/strategies/monthly").text
    assert '<input type="hidden" name="status" value="paused"><button type="submit" class="warn">Pause</button>' in page

    paused = admin.post("/console/strategies/monthly/status", data={"csrf": csrf_of(page), "status": "paused"})
    assert paused.status_code == 303
    stored = api.get("/api/v1/strategies/monthly").json()
    assert (stored["status"], stored["next_run_at"], stored["version"]) == ("paused", None, 2)
    page = admin.get("/console/strategies/monthly").text
    assert '<dt>Next wave</dt><dd><span class="muted">paused</span></dd>' in page
    assert ">Resume</button>" in page

    resumed = admin.post("/console/strategies/monthly/status", data={"csrf": csrf_of(page), "status": "active"})
    assert resumed.status_code == 303
    stored = api.get("/api/v1/strategies/monthly").json()
    assert (stored["status"], stored["next_run_at"], stored["version"]) == ("active", "2026-12-01T02:00:00Z", 3)

    bogus = admin.post("/console/strategies/monthly/status", data={"csrf": csrf_of(page), "status": "deleted"})
    assert bogus.status_code == 400
    assert api.get("/api/v1/strategies/monthly").json()["version"] == 3


def test_preview_of_a_saved_strategy_writes_nothing(api: TestClient, admin: TestClient) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    for n, tier in enumerate(["gold", "silver", "gold"]):
        _customer(api, f"c{n}", value_tier=tier)
    periodic = strategy_body(
        "monthly", kind="periodic", trigger=None, schedule={"cron": "0 10 1 * *", "time_zone": "Asia/Shanghai"}
    )
    periodic["audience"] = GOLD
    assert api.post("/api/v1/strategies", json=periodic).status_code == 201
    page = admin.get("/console/strategies/monthly").text

    answer = admin.post("/console/strategies/monthly/preview", data={"csrf": csrf_of(page)})

    assert answer.status_code == 200
    assert '<span class="value" data-preview="matched">2</span>' in answer.text
    assert '<span class="value" data-preview="would_contact">2</span>' in answer.text
    assert '<tr><td>email</td><td class="num">2</td></tr>' in answer.text
    assert api.get("/api/v1/followups").json()["total"] == 0
    assert api.get("/api/v1/strategies/monthly/waves").json()["total"] == 0
    assert api.get("/api/v1/strategies/monthly").json()["version"] == 1


def test_a_form_without_its_csrf_token_changes_nothing(api: TestClient, admin: TestClient) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body("existing")).status_code == 201

    created = admin.post("/console/strategies/-/new", data=periodic_form("forged", audience=""))
    paused = admin.post("/console/strategies/existing/status", data={"csrf": "forged", "status": "paused"})
    segment = admin.post(
        "/console/segments/-/new", data={"csrf": "forged", "key": "gold", "name": "Gold", "rule": '{"segment": "x"}'}
    )
    previewed = admin.post("/console/strategies/existing/preview", data={})

    assert [r.status_code for r in (created, paused, segment, previewed)] == [403, 403, 403, 403]
    assert "The form expired or came from elsewhere" in created.text
    assert api.get("/api/v1/strategies").json()["total"] == 1
    assert api.get("/api/v1/strategies/existing").json()["status"] == "active"
    assert api.get("/api/v1/segments").json()["total"] == 0


@pytest.mark.parametrize("role", ["agent", "auditor"])
def test_a_role_without_strategies_neither_sees_nor_changes_them(
    api: TestClient, runtime: Runtime, console: TestClient, role: str
) -> None:
    """Agents work calls and cases, auditors read the logs: strategies and segments are not theirs
    (`staff.roles`). A list answers 403; a page naming one strategy or segment answers 404, so it
    does not tell which exist."""
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body("existing")).status_code == 201
    assert api.post("/api/v1/segments", json={"key": "gold", "name": "Gold", "rule": GOLD}).status_code == 201
    sign_in(console, f"{role}@wallet.example", make_staff(runtime, f"{role}@wallet.example", role))

    for path in ("/console/strategies", "/console/segments", "/console/strategies/-/new"):
        page = console.get(path)
        assert page.status_code == 403, path
        assert f"Your role ({role}) does not open" in page.text
    for path in ("/console/strategies/existing", "/console/segments/gold", "/console/strategies/nope/edit"):
        assert console.get(path).status_code == 404, path
    csrf = csrf_of(console.get("/console").text)
    refused = console.post("/console/strategies/existing/status", data={"csrf": csrf, "status": "paused"})
    assert refused.status_code == 404
    assert console.post("/console/strategies/-/new", data=periodic_form(csrf)).status_code == 403
    assert api.get("/api/v1/strategies/existing").json()["status"] == "active"
    assert api.get("/api/v1/segments/gold").json()["name"] == "Gold"
    # Not even a preview, which would list customers
    assert console.post("/console/strategies/existing/preview", data={"csrf": csrf}).status_code == 404


def test_the_segment_builder_previews_saves_and_edits_a_segment(api: TestClient, admin: TestClient) -> None:
    for n, (tier, locale) in enumerate([("gold", "en"), ("gold", "zh-CN"), ("silver", "en"), ("gold", "en")]):
        _customer(api, f"c{n}", value_tier=tier, locale=locale)
    builder = admin.get("/console/segments/-/new")
    assert builder.status_code == 200
    _no_inline_code(builder.text)
    assert "customer.stats.active_days_30d" in builder.text
    assert "event.amount" not in builder.text, "a segment selects customers: no event fields offered"
    csrf = csrf_of(builder.text)
    rule = '{"all": [{"field": "customer.value_tier", "op": "eq", "value": "gold"}, {"field": "customer.locale", "op": "eq", "value": "en"}]}'

    # Preview: the count, by locale, and a masked sample; nothing saved
    previewed = admin.post(
        "/console/segments/-/new",
        data={"csrf": csrf, "action": "preview", "key": "gold-en", "name": "Gold, English", "rule": rule},
    )
    assert previewed.status_code == 200
    assert "<h2>Preview: 2 customers now</h2>" in previewed.text
    assert "<code>en</code> 2" in previewed.text
    assert re.findall(r'<td><a href="/console/customers/(c\d)">', previewed.text) == ["c0", "c3"]
    assert "c***@example.com" in previewed.text
    assert "c0.wallet@example.com" not in previewed.text
    assert api.get("/api/v1/segments").json()["total"] == 0

    # Save: the segment exists as the API would store it, and its page previews it
    saved = admin.post(
        "/console/segments/-/new",
        data={"csrf": csrf, "action": "save", "key": "gold-en", "name": "Gold, English", "rule": rule},
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == "/console/segments/gold-en"
    stored = api.get("/api/v1/segments/gold-en").json()
    assert (stored["name"], stored["version"]) == ("Gold, English", 1)
    assert stored["rule"] == {"all": [GOLD, {"field": "customer.locale", "op": "eq", "value": "en"}]}
    page = admin.get("/console/segments/gold-en")
    assert page.status_code == 200
    assert "<h2>Preview: 2 customers now</h2>" in page.text
    listed = admin.get("/console/segments").text
    assert '<a href="/console/segments/gold-en"><strong>gold-en</strong></a>' in listed

    # Edit: a new rule is a new version
    edited = admin.post(
        "/console/segments/gold-en/edit",
        data={"csrf": csrf, "name": "Gold", "rule": '{"field": "customer.value_tier", "op": "eq", "value": "gold"}'},
    )
    assert edited.status_code == 303
    assert api.get("/api/v1/segments/gold-en").json()["version"] == 2
    assert "<h2>Preview: 3 customers now</h2>" in admin.get("/console/segments/gold-en").text

    # A segment that names itself is refused on its rule, and stays as it was
    looped = admin.post(
        "/console/segments/gold-en/edit",
        data={
            "csrf": csrf,
            "name": "Loop",
            "rule": '{"any": [{"segment": "gold-en"}, {"field": "customer.locale", "op": "eq", "value": "en"}]}',
        },
    )
    assert looped.status_code == 422
    assert re.search(
        r'id="error-rule">rule: segments refer to each other in a circle: gold-en → gold-en\.<', looped.text
    )
    assert 'value="Loop"' in looped.text
    assert api.get("/api/v1/segments/gold-en").json()["name"] == "Gold"


@pytest.mark.parametrize(
    ("rule", "sentence"),
    [
        ('{"field": "event.amount", "op": "gt", "value": 1}', "&#39;event.amount&#39; is not a customer field"),
        ('{"field": "customer.stats.volume_7d", "op": "gt", "value": 1}', "is not a customer stat"),
        ('{"field": "customer.value_tier", "op": "in", "value": "gold"}', "&#39;in&#39; needs a non-empty list"),
        ('{"segment": "silver"}', "there is no segment &#39;silver&#39;"),
        ("", "rule:"),
        ("[1, 2", "rule: this is not valid JSON"),
    ],
)
@pytest.mark.parametrize("action", ["preview", "save"])
def test_a_refused_segment_rule_is_shown_beside_the_rule(
    api: TestClient, admin: TestClient, rule: str, sentence: str, action: str
) -> None:
    csrf = _page_csrf(admin, "/console/segments/-/new")

    answer = admin.post(
        "/console/segments/-/new", data={"csrf": csrf, "action": action, "key": "gold", "name": "Gold", "rule": rule}
    )

    assert answer.status_code == 422
    match = re.search(r'<span class="field-error" id="error-rule">([^<]*)</span>', answer.text)
    assert match, answer.text
    assert sentence in match.group(1)
    assert 'value="Gold"' in answer.text
    assert api.get("/api/v1/segments").json()["total"] == 0


@pytest.mark.parametrize(
    "path",
    [
        "/console/strategies/nothing",
        "/console/strategies/nothing/edit",
        "/console/segments/nothing",
        "/console/segments/nothing/edit",
        "/console/strategies/" + "x" * 300,
    ],
)
def test_an_unknown_strategy_or_segment_is_a_404_page(admin: TestClient, path: str) -> None:
    page = admin.get(path)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "There is no s" in page.text


@pytest.mark.parametrize(
    "path", ["/console/strategies", "/console/strategies/-/new", "/console/segments", "/console/segments/-/new"]
)
def test_the_pages_send_a_visitor_to_sign_in(console: TestClient, path: str) -> None:
    page = console.get(path)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/console/login?next=/console/")


def test_the_strategy_page_shows_its_results_per_channel_and_per_variant(
    api: TestClient, runtime: Runtime, admin: TestClient, smtp: SmtpSink
) -> None:
    # Given an experiment of two variants that invited four customers by email, one of whom answered 10
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    variants = [{"key": "short", "weight": 1}, {"key": "long", "weight": 1}]
    body = strategy_body(delay="PT0S", channels=["email"], variants=variants)
    assert api.post("/api/v1/strategies", json=body).status_code == 201
    for n in range(4):
        _customer(api, f"c{n}")
        assert api.post("/api/v1/events", json={"events": [transfer(f"e{n}", f"c{n}")]}).json()["accepted"] == 1
    Worker(runtime).run_until_idle()
    mail = smtp.wait_for(4)[0]
    assert api.post(survey_path(mail), data={"step": "rating", "nps": "10"}, follow_redirects=False).status_code == 303
    planned = {f["variant"] for f in api.get("/api/v1/followups").json()["items"]}

    page = admin.get("/console/strategies/after-large-transfer").text

    per_channel, per_variant = re.findall(r"<h3>Per \w+</h3>(.*?)</table>", page, re.S)
    assert _cells(re.search(r"<tbody>(.*?)</tbody>", per_channel, re.S).group(1)) == [  # type: ignore[union-attr]
        "email",
        "4",
        "1",
        "25.0%",
        "100.0 (1)",
        "–",
    ]
    variant_rows = re.findall(r"<tr><td>(\w+)</td>", per_variant)
    assert sorted(variant_rows) == sorted(planned)
    assert planned <= {"short", "long"}
    assert '<tfoot><tr><th>All</th><td class="num">4</td><td class="num">1</td>' in per_variant


def test_the_personal_channel_is_written_read_and_edited_in_the_form(api: TestClient, admin: TestClient) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    # When staff writes `auto` for the channels
    form_page = admin.get("/console/strategies/-/new?kind=periodic")
    answer = admin.post(
        "/console/strategies/-/new", data=periodic_form(csrf_of(form_page.text), audience="", channels="auto")
    )
    assert answer.status_code == 303, answer.text
    # Then it is stored as the installed channels it chooses among, and the page says so
    assert api.get("/api/v1/strategies/monthly-gold").json()["channels"] == {"auto": ["email", "inapp"]}
    page = admin.get("/console/strategies/monthly-gold").text
    assert "the personal channel, chosen per customer among <code>email</code>, <code>inapp</code>" in page
    # And the edit form shows it back, so saving it unchanged makes no new version
    edit = admin.get("/console/strategies/monthly-gold/edit")
    assert 'value="auto: email, inapp"' in edit.text
    fields = periodic_form(csrf_of(edit.text), audience="", channels="auto: inapp")
    assert admin.post("/console/strategies/monthly-gold/edit", data=fields).status_code == 303
    assert api.get("/api/v1/strategies/monthly-gold").json()["channels"] == {"auto": ["inapp"]}
