"""Cases worked to the end: round-robin assignment over a queue's agents, assignment by hand,
internal notes sealed under the customer's key, replies that reach the customer as service
messages, resolution with "did we solve it?" (a "no" reopens, a "yes" closes and asks a CSAT),
deadlines that escalate to the queue's supervisors, and an agent who sees their queues alone."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from followup.app import create_app
from followup.cases.models import CaseEvent
from followup.dispatch.models import Message
from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.staff import service as staff
from followup.worker import Worker
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey
from tests.conftest import SmtpSink
from tests.helpers import survey_path, text_body
from tests.test_console import csrf_of, sign_in

_RESURVEY = re.compile(r"https?://[^\s/]+(/c/[A-Za-z0-9_-]+)")


def _member(runtime: Runtime, email: str, role: str = "agent", queues: tuple[str, ...] = ("detractor",)) -> str:
    with runtime.session() as session:
        _, password = staff.create_staff(session, email=email, role=role, now=runtime.clock.now(), queues=queues)
    return password


def _detractor_case(
    runtime: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock, *, customer: str = "c1", event: str = "e1"
) -> dict[str, object]:
    """A customer answers NPS 2 to a follow-up: a detractor case opens, and the worker settles it
    (its timeline's first line and its assignee)."""
    make_customer(runtime, customer)
    before = len(smtp.messages)
    api.post("/api/v1/events", json={"events": [transfer(event, customer)]})
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()
    path = survey_path(smtp.wait_for(before + 1)[-1])
    assert api.post(path, data={"step": "rating", "nps": "2"}, follow_redirects=False).status_code == 303
    Worker(runtime).run_until_idle()
    [case] = [c for c in api.get("/api/v1/cases").json()["items"] if c["customer_id"] == customer]
    return case


@pytest.fixture
def world(runtime: Runtime) -> Runtime:
    runtime.settings.fatigue_max_followups = 10
    make_survey(runtime)
    make_strategy(runtime, recontact_days=0)
    return runtime


def test_cases_go_round_robin_to_the_agents_of_their_queue(
    world: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock
) -> None:
    _member(world, "ann@wallet.example")
    _member(world, "bo@wallet.example")
    _member(world, "cy@wallet.example", queues=("complaint",))  # another queue: never chosen
    _member(world, "dee@wallet.example", role="analyst", queues=("detractor",))  # not an agent: never chosen
    got = [_detractor_case(world, api, smtp, clock, customer=f"c{n}", event=f"e{n}")["assignee"] for n in range(1, 4)]
    assert got == ["ann@wallet.example", "bo@wallet.example", "ann@wallet.example"]
    case = api.get("/api/v1/cases", params={"assignee": "bo@wallet.example"}).json()["items"][0]
    assert (case["status"], case["queue"], case["kind"]) == ("assigned", "detractor", "detractor")
    timeline = api.get(f"/api/v1/cases/{case['id']}").json()["timeline"]
    assert [e["kind"] for e in timeline] == ["opened", "assigned"]
    assert timeline[1]["detail"] == {"assignee": "bo@wallet.example", "how": "round robin"}


def test_a_case_worked_from_reply_to_resolution_and_the_customers_no_then_yes(
    world: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock
) -> None:
    _member(world, "ann@wallet.example")
    case = _detractor_case(world, api, smtp, clock)
    url = f"/api/v1/cases/{case['id']}"

    # An internal note: on the timeline, sealed in the database
    note = api.post(f"{url}/notes", json={"text": "Called the merchant; refund 4532 0151 1283 0366 pending"})
    assert note.status_code == 201
    with world.read_session() as session:
        sealed = session.scalars(select(CaseEvent.text_sealed).where(CaseEvent.kind == "note")).one()
    assert sealed is not None
    assert b"merchant" not in sealed

    # A reply reaches the customer by email as a service message, and answers the first-response deadline
    clock.advance(dt.timedelta(minutes=5))
    replied = api.post(f"{url}/reply", json={"text": "我们已联系商户，退款将在 3 个工作日内到账。"})
    assert replied.status_code == 200, replied.text
    assert (replied.json()["status"], replied.json()["first_response_at"] is not None) == ("waiting", True)
    smtp.clear()
    Worker(world).run_until_idle()
    [email] = smtp.wait_for(1)
    assert email["To"] == "c1@example.com"
    assert "退款将在 3 个工作日内到账" in text_body(email)
    assert f"（编号 {case['id']}）" in str(email["Subject"])

    # Resolving asks the customer "did we solve it?"
    resolved = api.post(
        f"{url}/resolve", json={"code": "refunded", "root_cause": "merchant delay", "action": "refund pushed"}
    )
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["status"], resolved.json()["resolution_code"]) == ("resolved", "refunded")
    smtp.clear()
    Worker(world).run_until_idle()
    [ask] = smtp.wait_for(1)
    assert "问题解决了吗" in str(ask["Subject"])
    link = _RESURVEY.search(text_body(ask))
    assert link
    page = api.get(link.group(1))
    assert page.status_code == 200
    assert "问题解决了吗？" in page.text

    # "No" reopens the case for its agent; the link is spent
    answered = api.post(link.group(1), data={"solved": "no"})
    assert answered.status_code == 200
    assert "我们会再跟进" in answered.text
    after_no = api.get(url).json()
    assert (after_no["status"], after_no["resurvey_solved"], after_no["assignee"]) == (
        "assigned",
        False,
        "ann@wallet.example",
    )
    assert api.get(link.group(1)).status_code == 404

    # Resolved again, the customer says yes, then rates the resolution
    api.post(f"{url}/resolve", json={"code": "fixed", "root_cause": "merchant delay", "action": "refund paid"})
    smtp.clear()
    Worker(world).run_until_idle()
    second = _RESURVEY.search(text_body(smtp.wait_for(1)[0]))
    assert second
    assert second.group(1) != link.group(1)
    yes = api.post(second.group(1), data={"solved": "yes"}, follow_redirects=False)
    assert (yes.status_code, yes.headers["location"]) == (303, second.group(1))
    assert api.get(url).json()["status"] == "closed"
    refused = api.post(second.group(1), data={"csat": "9"})
    assert refused.status_code == 422
    assert api.post(second.group(1), data={"csat": "5"}).status_code == 200
    final = api.get(url).json()
    assert (final["status"], final["resurvey_solved"], final["resurvey_csat"]) == ("closed", True, 5)
    assert [e["kind"] for e in final["timeline"]] == [
        "opened",
        "assigned",
        "note",
        "reply",
        "resolved",
        "resurvey_answered",
        "reopened",
        "resolved",
        "resurvey_answered",
        "closed",
        "resurvey_rated",
    ]
    assert final["timeline"][2]["text"].startswith("Called the merchant")
    assert api.get(second.group(1)).status_code == 404


def test_a_reply_keeps_quiet_hours_and_a_withdrawn_service_consent(
    world: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock
) -> None:
    case = _detractor_case(world, api, smtp, clock)
    url = f"/api/v1/cases/{case['id']}"
    # 22:00 in Shanghai: the reply waits for 08:00
    clock.set(dt.datetime(2026, 11, 23, 14, 0, tzinfo=dt.UTC))
    api.post(f"{url}/reply", json={"text": "We are on it."})
    smtp.clear()
    Worker(world).run_until_idle()
    assert smtp.wait_for(1, timeout=0.3) == []
    assert _replies(world) == [("queued", "quiet_hours")]
    clock.set(dt.datetime(2026, 11, 24, 0, 1, tzinfo=dt.UTC))
    Worker(world).run_until_idle()
    assert len(smtp.wait_for(1)) == 1
    assert _replies(world) == [("sent", None)]

    # The customer withdraws service messages by email: the next reply is not sent
    body = {"consents": {"service": {"email": False}}}
    assert api.put("/api/v1/customers/c1", json=body).status_code == 200
    api.post(f"{url}/reply", json={"text": "One more thing."})
    smtp.clear()
    Worker(world).run_until_idle()
    assert smtp.wait_for(1, timeout=0.3) == []
    assert _replies(world) == [("sent", None), ("suppressed", "no_consent")]


def _replies(runtime: Runtime) -> list[tuple[str, str | None]]:
    with runtime.read_session() as session:
        rows = session.execute(
            select(Message.status, Message.reason).where(Message.step == "case_reply").order_by(Message.id)
        )
        return [(status, reason) for status, reason in rows]


def test_a_missed_deadline_escalates_once_to_the_queues_supervisors(
    world: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock
) -> None:
    world.settings.case_slas = "security=1h/4h,high=2h/8h,normal=24h/72h"
    world.settings.__dict__.pop("case_sla", None)  # the parsed deadlines are cached once read
    _member(world, "lead@wallet.example", role="admin", queues=("detractor",))
    _member(world, "other-admin@wallet.example", role="admin", queues=("security",))
    world.settings.webhooks_allow_private = True  # the risk team's endpoint is on this machine
    hook = api.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hooks", "events": ["case.updated"]}).json()
    case = _detractor_case(world, api, smtp, clock)
    assert case["priority"] == "high"
    opened = dt.datetime.fromisoformat(case["opened_at"])
    assert dt.datetime.fromisoformat(case["first_response_due_at"]) - opened == dt.timedelta(hours=2)
    assert dt.datetime.fromisoformat(case["due_at"]) - opened == dt.timedelta(hours=8)

    smtp.clear()
    clock.advance(dt.timedelta(hours=2, minutes=1))
    Worker(world).run_until_idle()
    [notice] = smtp.wait_for(1)
    assert notice["To"] == "lead@wallet.example"
    assert f"Case {case['id']} missed its first response deadline" == str(notice["Subject"])
    late = api.get(f"/api/v1/cases/{case['id']}").json()
    assert (late["breach"], late["overdue"]) == ("first_response", True)
    assert [c["id"] for c in api.get("/api/v1/cases", params={"overdue": "true"}).json()["items"]] == [case["id"]]

    # Once per deadline: the next rounds say nothing new
    Worker(world).run_until_idle()
    assert len(smtp.wait_for(2, timeout=0.3)) == 1
    clock.advance(dt.timedelta(hours=6))
    Worker(world).run_until_idle()
    assert [str(m["Subject"]) for m in smtp.wait_for(2)][1].endswith("missed its resolution deadline")
    deliveries = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries").json()["items"]
    assert sorted(d["type"] for d in deliveries) == ["case.updated", "case.updated"]  # the two escalations


def test_an_agent_sees_and_works_only_the_cases_of_their_queues(
    world: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock
) -> None:
    mine = _detractor_case(world, api, smtp, clock)
    _member(world, "sec@wallet.example", queues=("security",))
    with world.session() as session:
        _, key = staff.create_api_key(
            session, name="sec-agent", now=clock.now(), scopes=["read", "cases"], staff_email="sec@wallet.example"
        )
    agent = {"Authorization": f"Bearer {key}"}
    assert api.get("/api/v1/cases", headers=agent).json() == {"items": [], "total": 0}
    hidden = api.get(f"/api/v1/cases/{mine['id']}", headers=agent)
    assert (hidden.status_code, hidden.json()["error"]["code"]) == (404, "case_not_found")
    refused = api.post(f"/api/v1/cases/{mine['id']}/notes", json={"text": "x"}, headers=agent)
    assert refused.status_code == 404

    # Given the queue, the same key works the case
    with world.session() as session:
        member = staff.access_staff_by_email(session, "sec@wallet.example")
        member.queues = "security detractor"
    assert api.get("/api/v1/cases", headers=agent).json()["total"] == 1
    assert api.post(f"/api/v1/cases/{mine['id']}/notes", json={"text": "on it"}, headers=agent).status_code == 201
    note = api.get(f"/api/v1/cases/{mine['id']}", headers=agent).json()["timeline"][-1]
    assert note["actor"].startswith("api_key:")


def test_bad_case_work_gets_clear_errors_and_changes_nothing(
    world: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock
) -> None:
    _member(world, "cy@wallet.example", queues=("complaint",))
    _member(world, "audit@wallet.example", role="auditor")
    case = _detractor_case(world, api, smtp, clock)
    url = f"/api/v1/cases/{case['id']}"
    for body, field in [
        ({"assignee": "nobody@wallet.example"}, "assignee"),
        ({"assignee": "cy@wallet.example"}, "assignee"),  # not in the queue
        ({"assignee": "audit@wallet.example"}, "assignee"),  # not someone who works cases
    ]:
        answer = api.post(f"{url}/assign", json=body)
        assert answer.status_code == 422, body
        assert answer.json()["error"]["field"] == field
    bell = api.post(f"{url}/notes", json={"text": "bell\x07"})  # refused at the door, before any route sees it
    assert (bell.status_code, bell.json()["error"]["code"]) == (400, "invalid_character")
    broken = api.post(f"{url}/assign", json={"assignee": "a\nb@x.example"})  # a line break passes the door
    assert (broken.status_code, broken.json()["error"]["field"]) == (422, "assignee")
    assert api.post(f"{url}/notes", json={"text": ""}).status_code == 422
    assert api.post(f"{url}/reply", json={"text": "x" * 2001}).status_code == 422
    bad_code = api.post(f"{url}/resolve", json={"code": "magic", "root_cause": "x", "action": "y"})
    assert bad_code.status_code == 422
    assert api.post(f"{url}/reopen", json={}).json()["error"]["code"] == "case_state"
    assert api.post("/api/v1/cases/999999/reply", json={"text": "hi"}).status_code == 404
    assert api.get("/api/v1/cases", params={"status": "sleeping"}).status_code == 422
    unchanged = api.get(url).json()
    assert [e["kind"] for e in unchanged["timeline"]] == ["opened"]
    assert unchanged["status"] == "open"

    api.post(f"{url}/close", json={"resolution": "duplicate of another"})
    closed = api.post(f"{url}/reply", json={"text": "hello"})
    assert (closed.status_code, closed.json()["error"]["code"]) == (409, "case_closed")


@pytest.fixture
def console(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime), base_url="http://testserver") as client:
        yield client


def test_an_agent_works_a_case_in_the_console_and_exports_the_list(
    world: Runtime, api: TestClient, console: TestClient, smtp: SmtpSink, clock: ManualClock
) -> None:
    password = _member(world, "ann@wallet.example")
    case = _detractor_case(world, api, smtp, clock)
    sign_in(console, "ann@wallet.example", password)
    listing = console.get("/console/cases")
    assert listing.status_code == 200
    assert f'href="/console/cases/{case["id"]}"' in listing.text
    page = console.get(f"/console/cases/{case['id']}")
    assert page.status_code == 200
    assert console.get("/console/customers/c1").status_code == 200, "the customer of a case in her queue"
    assert "What the customer said" in page.text
    assert "NPS 2" in page.text
    csrf = csrf_of(page.text)
    assert (
        console.post(f"/console/cases/{case['id']}/note", data={"csrf": csrf, "text": "=cmd|' /C calc'!A0"}).status_code
        == 200
    )
    refused = console.post(f"/console/cases/{case['id']}/resolve", data={"csrf": csrf, "code": "fixed"})
    assert refused.status_code == 422
    assert "root cause" in refused.text
    done = console.post(
        f"/console/cases/{case['id']}/resolve",
        data={"csrf": csrf, "code": "explained", "root_cause": "fee schedule", "done": "explained the fee"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    shown = console.get(f"/console/cases/{case['id']}").text
    assert "fee schedule" in shown
    assert "=cmd|" in shown
    assert console.post(f"/console/cases/{case['id']}/note", data={"csrf": "forged", "text": "x"}).status_code == 403

    exported = console.get("/console/cases.csv", params={"status": "all"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert [(r["id"], r["status"], r["resolution_code"]) for r in rows] == [(str(case["id"]), "resolved", "explained")]
    assert console.get("/console/cases?status=sleeping").status_code == 400
