"""Interviews: a survey question whose slots customers book on the page after the rating, one
booking per slot, confirmed by an email carrying an iCalendar invitation, listed in the API and
the console."""

from __future__ import annotations

import datetime as dt
import re
from email.message import EmailMessage
from typing import Any

import pytest
from fastapi.testclient import TestClient
from icalendar import Calendar

from followup.app import create_app
from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.worker import Worker
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.conftest import START, SmtpSink
from tests.helpers import survey_path, text_body
from tests.test_console import make_staff, sign_in

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
TEN = dt.datetime(2026, 12, 10, 10, 0, tzinfo=SHANGHAI)  # 02:00 UTC
TWO = dt.datetime(2026, 12, 10, 14, 0, tzinfo=SHANGHAI)
NEXT_DAY = dt.datetime(2026, 12, 11, 9, 30, tzinfo=SHANGHAI)
VIDEO = "https://meet.wallet.example/research-42"


def interview_question(**overrides: Any) -> dict[str, Any]:
    question: dict[str, Any] = {
        "id": "talk",
        "type": "interview",
        "prompt": {
            "zh-CN": "愿意和我们的产品团队聊 30 分钟吗？",
            "en": "Would you talk with our product team for 30 minutes?",
        },
        "duration_minutes": 30,
        "location": {"kind": "video", "detail": VIDEO},
        "slots": [NEXT_DAY.isoformat(), TEN.isoformat(), TWO.isoformat()],
    }
    question.update(overrides)
    return question


def interview_survey(**question: Any) -> dict[str, Any]:
    body = survey_body()
    body["questions"].append(interview_question(**question))
    return body


def invite(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock, customers: dict[str, str]
) -> dict[str, str]:
    """Each customer (id → locale) invited by email to the interview survey; their link's path, rated."""
    for customer_id, locale in customers.items():
        body = {
            "email": f"{customer_id}@example.com",
            "locale": locale,
            "time_zone": "Asia/Shanghai",
            "consents": {"feedback": {"email": True}},
        }
        assert api.put(f"/api/v1/customers/{customer_id}", json=body).status_code == 200
    if api.get("/api/v1/surveys/payment-csat").status_code == 404:
        assert api.post("/api/v1/surveys", json=interview_survey()).status_code == 201
        assert api.post("/api/v1/strategies", json=strategy_body(channels=["email"])).status_code == 201
    events = [transfer(f"e-{customer_id}", customer_id) for customer_id in customers]
    assert api.post("/api/v1/events", json={"events": events}).json()["accepted"] == len(customers)
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()
    emails = smtp.wait_for(len(customers))
    smtp.clear()
    paths = {str(email["To"]).split("@")[0]: survey_path(email) for email in emails}
    for path in paths.values():
        assert api.post(path, data={"step": "rating", "nps": "9"}).status_code == 200
    return paths


def calendar_of(email: EmailMessage) -> tuple[EmailMessage, Calendar]:
    [part] = [p for p in email.iter_attachments() if p.get_content_type() == "text/calendar"]
    return part, Calendar.from_ical(part.get_payload(decode=True))  # type: ignore[arg-type]


def bookings(runtime: Runtime) -> int:
    from sqlalchemy import text

    with runtime.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM interview_bookings")).scalar_one())


# ── the question is written once, and checked when a version is written ───────────────────────


def test_a_survey_keeps_its_interview_slots_with_their_offsets(api: TestClient) -> None:
    created = api.post("/api/v1/surveys", json=interview_survey())

    assert created.status_code == 201, created.text
    [talk] = [q for q in created.json()["questions"] if q["type"] == "interview"]
    assert talk["slots"] == ["2026-12-11T09:30:00+08:00", "2026-12-10T10:00:00+08:00", "2026-12-10T14:00:00+08:00"]
    assert talk["location"] == {"kind": "video", "detail": VIDEO}
    assert api.get("/api/v1/surveys/payment-csat").json()["questions"][3] == talk


@pytest.mark.parametrize(
    ("question", "status", "code", "field"),
    [
        ({"slots": [TEN.isoformat(), "2026-11-23T09:59:00+08:00"]}, 422, "slot_in_past", "questions.3.slots.1"),
        ({"slots": ["2028-01-01T10:00:00+08:00"]}, 422, "slot_too_far", "questions.3.slots.0"),
        ({"slots": [TEN.isoformat(), "2026-12-10T02:00:00Z"]}, 422, "invalid_field", "questions.3.slots"),
        ({"slots": ["2026-12-10T10:00:00"]}, 422, "invalid_field", "questions.3.slots.0"),
        ({"slots": []}, 422, "invalid_field", "questions.3.slots"),
        (
            {"slots": [(TEN + dt.timedelta(hours=h)).isoformat() for h in range(201)]},
            422,
            "invalid_field",
            "questions.3.slots",
        ),
        ({"duration_minutes": 0}, 422, "invalid_field", "questions.3.duration_minutes"),
        ({"duration_minutes": 481}, 422, "invalid_field", "questions.3.duration_minutes"),
        (
            {"location": {"kind": "video", "detail": "http://meet.example/a"}},
            422,
            "invalid_field",
            "questions.3.location",
        ),
        (
            {"location": {"kind": "video", "detail": "javascript:alert(1)"}},
            422,
            "invalid_field",
            "questions.3.location",
        ),
        (
            {"location": {"kind": "address", "detail": "1 Bund Road\nShanghai"}},
            422,
            "invalid_character",
            "questions.3.location.detail",
        ),
        ({"location": {"kind": "address", "detail": "x" * 501}}, 422, "invalid_field", "questions.3.location.detail"),
        ({"location": {"kind": "carrier-pigeon", "detail": "roof"}}, 422, "invalid_field", "questions.3.location.kind"),
    ],
)
def test_a_bad_interview_question_is_refused_naming_the_field_and_nothing_is_written(
    api: TestClient, question: dict[str, Any], status: int, code: str, field: str
) -> None:
    answer = api.post("/api/v1/surveys", json=interview_survey(**question))

    assert answer.status_code == status, answer.text
    assert (answer.json()["error"]["code"], answer.json()["error"]["field"]) == (code, field)
    assert api.get("/api/v1/surveys").json()["total"] == 0


def test_a_survey_offers_one_interview_at_most_and_still_needs_its_rating(api: TestClient) -> None:
    two = interview_survey()
    two["questions"].append(interview_question(id="talk-again"))
    only_interview = survey_body(questions=[interview_question()])

    for body in (two, only_interview):
        answer = api.post("/api/v1/surveys", json=body)
        assert (answer.status_code, answer.json()["error"]["field"]) == (422, "questions")
    assert api.get("/api/v1/surveys").json()["total"] == 0


# ── the customer books on the page; the confirmation carries the invitation ─────────────────────


def test_a_customer_books_a_slot_and_gets_a_calendar_invitation_by_email(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock
) -> None:
    # Given an English-speaking customer who rated and now sees the optional questions
    path = invite(api, runtime, smtp, clock, {"li": "en"})["li"]
    page = api.get(path).text

    # Then the free slots are offered by day, on the wall clock they were offered in, soonest first
    assert "Thursday, December 10, 2026 <small>(UTC+08:00)</small>" in page
    assert "Friday, December 11, 2026 <small>(UTC+08:00)</small>" in page
    assert re.findall(r'name="talk" value="([^"]+)"', page) == [TEN.isoformat(), TWO.isoformat(), NEXT_DAY.isoformat()]
    assert "30 minutes · Video call: " + VIDEO in page

    # When they book 10:00 with a comment
    done = api.post(path, data={"step": "details", "talk": TEN.isoformat(), "comment": "Happy to help"})

    # Then the page confirms it, and the answer and the booking are recorded
    assert done.status_code == 200
    assert (
        "Your interview is booked: Thursday, December 10, 2026, 10:00\u202fAM–10:30\u202fAM (UTC+08:00). "
        f"Video call: {VIDEO}. A calendar invitation is on its way to your email."
    ) in done.text
    [response] = api.get("/api/v1/responses").json()["items"]
    assert response["answers"]["talk"] == TEN.isoformat()
    assert response["completed_at"] is not None
    [followup] = api.get("/api/v1/followups").json()["items"]
    assert [h["detail"] for h in followup["history"] if h["action"] == "interview_booked"] == [TEN.isoformat()]

    # When the worker runs, the confirmation goes out with an iCalendar REQUEST
    Worker(runtime).run_until_idle()
    [email] = smtp.wait_for(1)
    assert email["Subject"] == "Your interview is booked: Your payment"
    assert "Thursday, December 10, 2026, 10:00\u202fAM–10:30\u202fAM (UTC+08:00)" in text_body(email)
    assert f"Join the video call: {VIDEO}" in text_body(email)
    part, calendar = calendar_of(email)
    assert part.get_param("method") == "REQUEST"
    assert calendar["METHOD"] == "REQUEST"
    [event] = calendar.walk("VEVENT")
    assert event.decoded("DTSTART") == dt.datetime(2026, 12, 10, 2, 0, tzinfo=dt.UTC)
    assert event.decoded("DTEND") == dt.datetime(2026, 12, 10, 2, 30, tzinfo=dt.UTC)
    assert event.decoded("DTSTART").utcoffset() == dt.timedelta(0)
    assert str(event["LOCATION"]) == VIDEO
    assert str(event["SUMMARY"]) == "Interview: Your payment"
    assert str(event["ORGANIZER"]) == "mailto:feedback@wallet.example"
    assert str(event["ATTENDEE"]) == "mailto:li@example.com"
    [interview] = api.get("/api/v1/interviews").json()["items"]
    assert str(event["UID"]) == f"followup-interview-{interview['id']}@wallet.example"

    # And the API lists the booking, the customer's email masked
    assert interview == {
        "id": interview["id"],
        "survey": "payment-csat",
        "survey_version": 1,
        "question_id": "talk",
        "followup_id": followup["id"],
        "customer_id": "li",
        "email": "l***@example.com",
        "slot": "2026-12-10T10:00:00+08:00",
        "starts_at": "2026-12-10T02:00:00Z",
        "ends_at": "2026-12-10T02:30:00Z",
        "location": {"kind": "video", "detail": VIDEO},
        "booked_at": "2026-11-23T02:31:00Z",
    }
    # And the link is used up: no second booking, no second email
    assert api.get(path).status_code == 404
    assert bookings(runtime) == 1
    assert len(smtp.wait_for(2, timeout=0.3)) == 1


def test_the_page_speaks_chinese_to_a_chinese_customer_and_a_phone_interview_has_no_link(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock
) -> None:
    phone = {"kind": "phone", "detail": "我们会拨打您在钱包登记的手机号"}
    assert api.post("/api/v1/surveys", json=interview_survey(location=phone)).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body(channels=["email"])).status_code == 201
    path = invite(api, runtime, smtp, clock, {"wang": "zh-CN"})["wang"]

    page = api.get(path).text
    assert "2026年12月10日星期四 <small>(UTC+08:00)</small>" in page
    assert "30 分钟 · 电话：我们会拨打您在钱包登记的手机号" in page

    done = api.post(path, data={"step": "details", "talk": TWO.isoformat()})
    assert (
        "您的访谈已预约：2026年12月10日星期四 14:00–14:30（UTC+08:00）。电话：我们会拨打您在钱包登记的手机号。"
        in done.text
    )

    Worker(runtime).run_until_idle()
    [email] = smtp.wait_for(1)
    assert email["Subject"] == "访谈预约成功：支付体验回访"
    assert "加入视频通话" not in text_body(email)
    _, calendar = calendar_of(email)
    [event] = calendar.walk("VEVENT")
    assert event.decoded("DTSTART") == dt.datetime(2026, 12, 10, 6, 0, tzinfo=dt.UTC)
    assert str(event["LOCATION"]) == phone["detail"]


def test_a_slot_just_taken_is_refused_with_409_and_nothing_of_the_step_is_kept(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock
) -> None:
    # Given two customers on the questions page, both offered 10:00
    paths = invite(api, runtime, smtp, clock, {"first": "en", "second": "en"})
    assert TEN.isoformat() in api.get(paths["second"]).text

    # When the first books 10:00, then the second posts 10:00 from the page they still have open
    assert api.post(paths["first"], data={"step": "details", "talk": TEN.isoformat()}).status_code == 200
    late = api.post(paths["second"], data={"step": "details", "talk": TEN.isoformat(), "comment": "Keep this text"})

    # Then the second is told to pick another, 10:00 is no longer offered, and their text is kept
    assert late.status_code == 409
    assert "That time was just taken; please pick another." in late.text
    assert re.findall(r'name="talk" value="([^"]+)"', late.text) == [TWO.isoformat(), NEXT_DAY.isoformat()]
    assert ">Keep this text</textarea>" in late.text
    # And nothing of their step was written: no booking, no completed response, no history, no email
    assert bookings(runtime) == 1
    second = api.get("/api/v1/responses", params={"customer_id": "second"}).json()["items"][0]
    assert (second["completed_at"], "talk" in second["answers"], "comment" in second["answers"]) == (None, False, False)
    [followup] = api.get("/api/v1/followups", params={"customer_id": "second"}).json()["items"]
    assert "interview_booked" not in [h["action"] for h in followup["history"]]

    # And the same link books another time
    again = api.post(paths["second"], data={"step": "details", "talk": TWO.isoformat(), "comment": "Keep this text"})
    assert again.status_code == 200
    starts = [i["slot"] for i in api.get("/api/v1/interviews").json()["items"]]
    assert starts == [TEN.isoformat(), TWO.isoformat()]


def test_a_slot_that_has_passed_is_not_offered_and_cannot_be_booked(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock
) -> None:
    soon = START.astimezone(SHANGHAI) + dt.timedelta(hours=2)
    later = START.astimezone(SHANGHAI) + dt.timedelta(days=3)
    assert (
        api.post("/api/v1/surveys", json=interview_survey(slots=[soon.isoformat(), later.isoformat()])).status_code
        == 201
    )
    assert api.post("/api/v1/strategies", json=strategy_body(channels=["email"])).status_code == 201
    path = invite(api, runtime, smtp, clock, {"li": "en"})["li"]
    assert re.findall(r'name="talk" value="([^"]+)"', api.get(path).text) == [soon.isoformat(), later.isoformat()]

    # When the first slot begins while the customer still has the page open
    clock.advance(dt.timedelta(hours=2))
    assert re.findall(r'name="talk" value="([^"]+)"', api.get(path).text) == [later.isoformat()]
    late = api.post(path, data={"step": "details", "talk": soon.isoformat()})

    # Then it is refused and nothing is written; a time never offered is refused too
    assert late.status_code == 422
    assert "that time has passed; please pick another" in late.text
    unknown = api.post(path, data={"step": "details", "talk": "2026-12-24T10:00:00+08:00"})
    assert (unknown.status_code, "pick one of the times shown" in unknown.text) == (422, True)
    assert bookings(runtime) == 0
    assert api.post(path, data={"step": "details", "talk": later.isoformat()}).status_code == 200
    assert bookings(runtime) == 1


@pytest.mark.parametrize(
    "change", [{"email": None}, {"consents": {"feedback": {"email": False}}}], ids=["no_email", "no_email_consent"]
)
def test_a_customer_we_may_not_email_is_booked_and_promised_no_email(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock, change: dict[str, Any]
) -> None:
    path = invite(api, runtime, smtp, clock, {"li": "en"})["li"]
    assert api.put("/api/v1/customers/li", json=change).status_code == 200

    done = api.post(path, data={"step": "details", "talk": TEN.isoformat()})

    assert "Your interview is booked" in done.text
    assert "calendar invitation" not in done.text
    Worker(runtime).run_until_idle()
    assert smtp.wait_for(1, timeout=0.3) == []
    assert bookings(runtime) == 1
    [followup] = api.get("/api/v1/followups").json()["items"]
    assert [m["step"] for m in followup["messages"]] == ["invite"]


# ── staff see them: the API's filters, the console ──────────────────────────────────────────────


def test_the_api_filters_interviews_by_survey_and_start_time_and_pages_them(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock
) -> None:
    paths = invite(api, runtime, smtp, clock, {"a": "en", "b": "en", "c": "en"})
    for customer_id, slot in (("a", NEXT_DAY), ("b", TEN), ("c", TWO)):
        assert api.post(paths[customer_id], data={"step": "details", "talk": slot.isoformat()}).status_code == 200

    def customers_of(**params: Any) -> tuple[list[str], int]:
        page = api.get("/api/v1/interviews", params=params)
        assert page.status_code == 200, page.text
        return [i["customer_id"] for i in page.json()["items"]], page.json()["total"]

    assert customers_of() == (["b", "c", "a"], 3)
    assert customers_of(survey="payment-csat", limit=1, offset=1) == (["c"], 3)
    assert customers_of(**{"from": "2026-12-10T03:00:00Z"}) == (["c", "a"], 2)
    assert customers_of(**{"from": "2026-12-10T00:00:00+08:00", "to": "2026-12-11T00:00:00+08:00"}) == (["b", "c"], 2)
    missing = api.get("/api/v1/interviews", params={"survey": "nope"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "survey_not_found")
    typo = api.get("/api/v1/interviews", params={"surveys": "payment-csat"})
    assert (typo.status_code, typo.json()["error"]["code"]) == (422, "unknown_field")
    assert TestClient(create_app(runtime)).get("/api/v1/interviews").status_code == 401


def test_the_console_lists_booked_interviews_upcoming_first(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock
) -> None:
    soon = START.astimezone(SHANGHAI) + dt.timedelta(hours=3)
    slots = [soon.isoformat(), TEN.isoformat(), TWO.isoformat()]
    assert api.post("/api/v1/surveys", json=interview_survey(slots=slots)).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body(channels=["email"])).status_code == 201
    paths = invite(api, runtime, smtp, clock, {"past": "en", "ten": "en", "two": "en"})
    for customer_id, slot in (("past", soon), ("two", TWO), ("ten", TEN)):
        assert api.post(paths[customer_id], data={"step": "details", "talk": slot.isoformat()}).status_code == 200
    clock.advance(dt.timedelta(hours=4))  # the first interview is over

    console = TestClient(create_app(runtime), follow_redirects=False)
    assert console.get("/console/interviews").status_code == 303
    sign_in(console, "ops@wallet.example", make_staff(runtime, role="agent"))
    page = console.get("/console/interviews")

    assert page.status_code == 200
    assert '<a href="/console/interviews" aria-current="page">Interviews</a>' in page.text
    rows = re.findall(r'<a href="/console/customers/([^"]+)">', page.text)
    assert rows == ["ten", "two", "past"]
    assert "2026-12-10 10:00 UTC+08:00" in page.text
    assert "2026-12-10 02:00 UTC" in page.text
    assert f"Video: {VIDEO}" in page.text
    assert "t***@example.com" in page.text
    assert "ten@example.com" not in page.text
    assert page.text.count("(past)") == 1
