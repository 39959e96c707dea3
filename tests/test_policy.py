"""The contact policy, through the engine as the wallet drives it: events in over the API, the
worker run by hand, the clock moved by hand, and the reasons read back from GET /followups.

Every refusal or deferral must leave its reason code on the follow-up; every test here also
checks what did not happen (no email, no second follow-up, no send inside quiet hours).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.worker import Worker
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.conftest import SmtpSink
from tests.helpers import survey_path, unsubscribe_path

UTC = dt.UTC
SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")


# ── small readers of what the API shows ─────────────────────────────────────────────────────


def put_customer(api: TestClient, customer_id: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "email": f"{customer_id}@example.com",
        "locale": "en",
        "time_zone": "Asia/Shanghai",
        "attributes": {"tier": "gold"},
        "consents": {"feedback": {"email": True, "inapp": True}},
    }
    body.update(fields)
    response = api.put(f"/api/v1/customers/{customer_id}", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def create_strategy(api: TestClient, key: str = "after-large-transfer", **overrides: Any) -> None:
    response = api.post("/api/v1/strategies", json=strategy_body(key, **overrides))
    assert response.status_code == 201, response.text


def post_events(api: TestClient, *events: dict[str, Any]) -> None:
    result = api.post("/api/v1/events", json={"events": list(events)}).json()
    assert result == {"accepted": len(events), "duplicates": 0, "rejected": []}


def followups_of(api: TestClient, customer_id: str) -> list[dict[str, Any]]:
    """The customer's follow-ups, oldest first."""
    page = api.get("/api/v1/followups", params={"customer_id": customer_id}).json()
    return sorted(page["items"], key=lambda item: item["id"])


def only_followup(api: TestClient, customer_id: str) -> dict[str, Any]:
    items = followups_of(api, customer_id)
    assert len(items) == 1, items
    return items[0]


def history(followup: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(entry["action"], entry["reason"]) for entry in followup["history"]]


def messages(followup: dict[str, Any]) -> list[tuple[str, str, str, str | None]]:
    return [(m["step"], m["channel"], m["status"], m["reason"]) for m in followup["messages"]]


def instant(value: str | None) -> dt.datetime:
    assert value is not None
    return dt.datetime.fromisoformat(value).astimezone(UTC)


def topup(event_id: str, customer_id: str, *, at: dt.datetime) -> dict[str, Any]:
    return transfer(event_id, customer_id, occurred_at=at, type="topup.succeeded", amount=100000)


def no_more_email(smtp: SmtpSink, expected: int) -> list[Any]:
    """Wait briefly for one message more than expected, so a stray send would be seen."""
    return smtp.wait_for(expected + 1, timeout=0.3)


@pytest.fixture
def survey(api: TestClient) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201


# ── quiet hours ─────────────────────────────────────────────────────────────────────────────


def _deferred_to_morning(api: TestClient, clock: ManualClock, *, time_zone: str, evening: dt.datetime) -> dt.datetime:
    """Plan a send at 22:30 local (event at 22:00, delay 30 minutes); return the due instant."""
    put_customer(api, "c1", time_zone=time_zone)
    create_strategy(api)
    clock.set(evening)
    post_events(api, transfer("e1", "c1", occurred_at=evening))
    followup = only_followup(api, "c1")
    assert followup["status"] == "planned"
    assert history(followup) == [("planned", None), ("deferred", "quiet_hours")]
    return instant(followup["due_at"])


@pytest.mark.parametrize(
    ("time_zone", "evening", "morning_utc"),
    [
        pytest.param(
            "Asia/Shanghai",
            dt.datetime(2026, 11, 23, 22, 0, tzinfo=SHANGHAI),
            dt.datetime(2026, 11, 24, 0, 0, tzinfo=UTC),
            id="shanghai-utc+8",
        ),
        pytest.param(
            "America/New_York",
            dt.datetime(2026, 11, 23, 22, 0, tzinfo=NEW_YORK),
            dt.datetime(2026, 11, 24, 13, 0, tzinfo=UTC),
            id="new-york-utc-5",
        ),
        pytest.param(
            "Europe/London",
            dt.datetime(2026, 11, 23, 22, 0, tzinfo=LONDON),
            dt.datetime(2026, 11, 24, 8, 0, tzinfo=UTC),
            id="london-utc+0",
        ),
    ],
)
def test_a_send_falling_at_2230_local_is_deferred_to_0800_local_next_morning(
    api: TestClient,
    runtime: Runtime,
    smtp: SmtpSink,
    clock: ManualClock,
    survey: None,
    *,
    time_zone: str,
    evening: dt.datetime,
    morning_utc: dt.datetime,
) -> None:
    # Given a customer whose invitation falls due at 22:30 in their own time zone
    due = _deferred_to_morning(api, clock, time_zone=time_zone, evening=evening)

    # Then it is kept, due at 08:00 local the next morning, to the exact UTC instant
    assert due == morning_utc
    assert due.astimezone(ZoneInfo(time_zone)).time() == dt.time(8, 0)

    # And nothing goes out a minute before the end of quiet hours
    worker = Worker(runtime)
    clock.set(morning_utc - dt.timedelta(minutes=1))
    worker.run_until_idle()
    assert smtp.wait_for(1, timeout=0.3) == []
    assert only_followup(api, "c1")["status"] == "planned"

    # When the morning comes, the invitation is sent at exactly 08:00 local
    clock.set(morning_utc)
    worker.run_until_idle()
    assert [m["To"] for m in smtp.wait_for(1)] == ["c1@example.com"]
    followup = only_followup(api, "c1")
    assert followup["status"] == "invited"
    assert instant(followup["invited_at"]) == morning_utc
    assert messages(followup) == [("invite", "email", "sent", None)]
    assert instant(followup["messages"][0]["sent_at"]) == morning_utc
    assert len(no_more_email(smtp, 1)) == 1


def test_the_same_utc_instant_is_quiet_in_shanghai_but_not_in_new_york_or_london(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock, survey: None
) -> None:
    # Given three customers, and a moment that is 22:00 in Shanghai, 09:00 in New York, 14:00 in London
    put_customer(api, "shanghai", time_zone="Asia/Shanghai")
    put_customer(api, "new-york", time_zone="America/New_York")
    put_customer(api, "london", time_zone="Europe/London")
    create_strategy(api)
    moment = dt.datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    clock.set(moment)

    # When each makes a large transfer then
    post_events(
        api,
        transfer("e-sh", "shanghai", occurred_at=moment),
        transfer("e-ny", "new-york", occurred_at=moment),
        transfer("e-ld", "london", occurred_at=moment),
    )

    # Then only Shanghai's invitation waits for the morning
    half_past = moment + dt.timedelta(minutes=30)
    shanghai_morning = dt.datetime(2026, 11, 24, 8, 0, tzinfo=SHANGHAI)
    assert instant(only_followup(api, "shanghai")["due_at"]) == shanghai_morning
    assert instant(only_followup(api, "new-york")["due_at"]) == half_past
    assert instant(only_followup(api, "london")["due_at"]) == half_past
    assert ("deferred", "quiet_hours") in history(only_followup(api, "shanghai"))
    assert ("deferred", "quiet_hours") not in history(only_followup(api, "new-york"))
    assert ("deferred", "quiet_hours") not in history(only_followup(api, "london"))

    worker = Worker(runtime)
    clock.set(half_past)
    worker.run_until_idle()
    assert sorted(m["To"] for m in smtp.wait_for(2)) == ["london@example.com", "new-york@example.com"]
    assert len(no_more_email(smtp, 2)) == 2

    clock.set(shanghai_morning)
    worker.run_until_idle()
    assert [m["To"] for m in smtp.wait_for(3)][2:] == ["shanghai@example.com"]
    assert instant(only_followup(api, "shanghai")["invited_at"]) == shanghai_morning.astimezone(UTC)


@pytest.mark.parametrize(
    ("time_zone", "evening", "morning_utc"),
    [
        # London springs forward at 01:00 GMT on 29 March 2026: 08:00 BST is 07:00 UTC, not 08:00.
        pytest.param(
            "Europe/London",
            dt.datetime(2026, 3, 28, 22, 0, tzinfo=LONDON),
            dt.datetime(2026, 3, 29, 7, 0, tzinfo=UTC),
            id="london-spring-forward",
        ),
        # London falls back at 02:00 BST on 25 October 2026: 08:00 GMT is 08:00 UTC, not 07:00.
        pytest.param(
            "Europe/London",
            dt.datetime(2026, 10, 24, 22, 0, tzinfo=LONDON),
            dt.datetime(2026, 10, 25, 8, 0, tzinfo=UTC),
            id="london-fall-back",
        ),
        # New York springs forward at 02:00 EST on 8 March 2026: 08:00 EDT is 12:00 UTC.
        pytest.param(
            "America/New_York",
            dt.datetime(2026, 3, 7, 22, 0, tzinfo=NEW_YORK),
            dt.datetime(2026, 3, 8, 12, 0, tzinfo=UTC),
            id="new-york-spring-forward",
        ),
        # New York falls back at 02:00 EDT on 1 November 2026: 08:00 EST is 13:00 UTC.
        pytest.param(
            "America/New_York",
            dt.datetime(2026, 10, 31, 22, 0, tzinfo=NEW_YORK),
            dt.datetime(2026, 11, 1, 13, 0, tzinfo=UTC),
            id="new-york-fall-back",
        ),
    ],
)
def test_quiet_hours_across_a_dst_change_end_at_0800_on_the_new_wall_clock(
    api: TestClient,
    runtime: Runtime,
    smtp: SmtpSink,
    clock: ManualClock,
    survey: None,
    *,
    time_zone: str,
    evening: dt.datetime,
    morning_utc: dt.datetime,
) -> None:
    # Given a send due at 22:30 local on the evening before the clocks change
    due = _deferred_to_morning(api, clock, time_zone=time_zone, evening=evening)

    # Then it is due at 08:00 on the changed wall clock, not 9.5 hours of elapsed time later
    assert due == morning_utc
    assert due != evening.astimezone(UTC) + dt.timedelta(hours=10)
    assert due.astimezone(ZoneInfo(time_zone)).replace(tzinfo=None) == dt.datetime.combine(
        morning_utc.astimezone(ZoneInfo(time_zone)).date(), dt.time(8, 0)
    )

    # And the email goes out at that instant, not an hour early
    worker = Worker(runtime)
    clock.set(morning_utc - dt.timedelta(minutes=1))
    worker.run_until_idle()
    assert smtp.wait_for(1, timeout=0.3) == []
    clock.set(morning_utc)
    worker.run_until_idle()
    assert len(smtp.wait_for(1)) == 1
    assert instant(only_followup(api, "c1")["invited_at"]) == morning_utc


def test_a_late_worker_inside_quiet_hours_defers_at_send_time_instead_of_sending_or_dropping(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock, survey: None
) -> None:
    # Given an invitation due at 20:30 in London, outside quiet hours when it was planned
    put_customer(api, "c1", time_zone="Europe/London")
    create_strategy(api)
    evening = dt.datetime(2026, 11, 23, 20, 0, tzinfo=LONDON)
    clock.set(evening)
    post_events(api, transfer("e1", "c1", occurred_at=evening))
    assert history(only_followup(api, "c1")) == [("planned", None)]

    # When the worker only gets to it at 21:15, inside quiet hours
    clock.set(dt.datetime(2026, 11, 23, 21, 15, tzinfo=LONDON))
    worker = Worker(runtime)
    worker.run_until_idle()

    # Then the send-time gate defers it to 08:00 and nothing is sent
    morning = dt.datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    followup = only_followup(api, "c1")
    assert followup["status"] == "planned"
    assert instant(followup["due_at"]) == morning
    assert history(followup) == [("planned", None), ("deferred", "quiet_hours")]
    assert followup["history"][-1]["detail"] == "until 2026-11-24T08:00:00+00:00"
    assert followup["messages"] == []
    assert smtp.wait_for(1, timeout=0.3) == []

    clock.set(morning)
    worker.run_until_idle()
    assert len(smtp.wait_for(1)) == 1
    assert only_followup(api, "c1")["status"] == "invited"


# ── the fatigue budget ──────────────────────────────────────────────────────────────────────


def test_two_strategies_firing_on_one_event_plan_one_followup_and_suppress_the_other_for_fatigue(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock, survey: None
) -> None:
    # Given two strategies that both follow up on a large transfer
    put_customer(api, "c1")
    create_strategy(api, "after-large-transfer")
    create_strategy(api, "after-any-transfer", audience=None)

    # When one transfer triggers both in the same batch
    post_events(api, transfer("e1", "c1"))

    # Then the first strategy plans a follow-up and the second is refused for fatigue
    first, second = followups_of(api, "c1")
    assert (first["strategy"], first["status"], first["reason"]) == ("after-large-transfer", "planned", None)
    assert (second["strategy"], second["status"], second["reason"]) == ("after-any-transfer", "suppressed", "fatigue")
    assert history(second) == [("suppressed", "fatigue")]
    assert second["due_at"] is None

    # And the customer gets one email, not two
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()
    assert len(smtp.wait_for(1)) == 1
    assert len(no_more_email(smtp, 1)) == 1
    assert followups_of(api, "c1")[1]["messages"] == []


def test_fatigue_budget_spans_batches_and_strategies_until_the_14_day_window_passes(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock, survey: None
) -> None:
    # Given a follow-up after a transfer, planned and sent
    put_customer(api, "c1")
    create_strategy(api, "after-large-transfer")
    create_strategy(api, "after-topup", trigger={"event_types": ["topup.succeeded"]}, audience=None)
    planned_at = clock.now()
    post_events(api, transfer("e1", "c1", occurred_at=planned_at))
    worker = Worker(runtime)
    clock.advance(dt.timedelta(minutes=31))
    worker.run_until_idle()
    assert len(smtp.wait_for(1)) == 1

    # When a top-up triggers another strategy a minute before the 14-day window ends
    clock.set(planned_at + dt.timedelta(days=14, minutes=-1))
    worker.run_until_idle()
    post_events(api, topup("e2", "c1", at=clock.now()))

    # Then it is refused for fatigue
    latest = followups_of(api, "c1")[-1]
    assert (latest["strategy"], latest["event_id"], latest["status"], latest["reason"]) == (
        "after-topup",
        "e2",
        "suppressed",
        "fatigue",
    )

    # When another top-up comes a minute after the window
    clock.set(planned_at + dt.timedelta(days=14, minutes=1))
    post_events(api, topup("e3", "c1", at=clock.now()))

    # Then a new follow-up is allowed and sent
    latest = followups_of(api, "c1")[-1]
    assert (latest["strategy"], latest["event_id"], latest["status"], latest["reason"]) == (
        "after-topup",
        "e3",
        "planned",
        None,
    )
    clock.advance(dt.timedelta(minutes=31))
    worker.run_until_idle()
    assert [f["status"] for f in followups_of(api, "c1")] == ["expired", "suppressed", "invited"]
    assert len(smtp.wait_for(2)) == 2
    assert len(no_more_email(smtp, 2)) == 2


# ── consent withdrawn between planning and sending ──────────────────────────────────────────


def test_email_consent_withdrawn_after_planning_sends_no_email_and_cascades_to_inapp(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock, survey: None
) -> None:
    # Given a follow-up planned by email (email first, then in-app)
    put_customer(api, "c1")
    create_strategy(api)
    post_events(api, transfer("e1", "c1"))
    assert only_followup(api, "c1")["status"] == "planned"

    # When the customer withdraws email consent before the invitation is due
    put_customer(api, "c1", consents={"feedback": {"email": False}})
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()

    # Then no email is sent, the refusal is recorded, and the invitation goes to the in-app inbox
    assert smtp.wait_for(1, timeout=0.5) == []
    followup = only_followup(api, "c1")
    assert (followup["status"], followup["channel"]) == ("invited", "inapp")
    assert history(followup) == [("planned", None), ("cascaded", "no_consent"), ("invited", None)]
    assert followup["history"][1]["detail"] == "email refused; trying inapp"
    assert messages(followup) == [("invite", "inapp", "sent", None)]
    inbox = api.get("/api/v1/customers/c1/inbox").json()
    assert len(inbox) == 1
    assert "/s/" in inbox[0]["link"]


def test_email_consent_withdrawn_after_the_email_was_queued_is_refused_at_send_time(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock, survey: None
) -> None:
    # Given an email invitation queued by the follow-up timer but not yet handed to SMTP
    put_customer(api, "c1")
    create_strategy(api)
    post_events(api, transfer("e1", "c1"))
    clock.advance(dt.timedelta(minutes=31))
    worker = Worker(runtime)
    assert worker.run_timers() == 1
    assert messages(only_followup(api, "c1")) == [("invite", "email", "queued", None)]

    # When consent to email is withdrawn right then
    put_customer(api, "c1", consents={"feedback": {"email": False}})
    worker.run_until_idle()

    # Then the queued email is refused with no_consent and the follow-up cascades to in-app
    assert smtp.wait_for(1, timeout=0.5) == []
    followup = only_followup(api, "c1")
    assert messages(followup) == [
        ("invite", "email", "suppressed", "no_consent"),
        ("invite", "inapp", "sent", None),
    ]
    assert history(followup) == [("planned", None), ("invited", None), ("cascaded", "no_consent"), ("invited", None)]
    assert (followup["status"], followup["channel"]) == ("invited", "inapp")
    assert len(api.get("/api/v1/customers/c1/inbox").json()) == 1


def test_consent_withdrawn_on_every_channel_suppresses_the_followup_and_returns_the_budget(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock, survey: None
) -> None:
    # Given a planned follow-up
    put_customer(api, "c1")
    create_strategy(api)
    create_strategy(api, "after-topup", trigger={"event_types": ["topup.succeeded"]}, audience=None)
    post_events(api, transfer("e1", "c1"))

    # When the customer withdraws consent for both email and in-app before it is due
    put_customer(api, "c1", consents={"feedback": {"email": False, "inapp": False}})
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()

    # Then it ends suppressed for no_consent, with nothing sent anywhere
    followup = only_followup(api, "c1")
    assert (followup["status"], followup["reason"], followup["channel"]) == ("suppressed", "no_consent", None)
    assert history(followup)[-1] == ("suppressed", "no_consent")
    assert followup["messages"] == []
    assert smtp.wait_for(1, timeout=0.5) == []
    assert api.get("/api/v1/customers/c1/inbox").json() == []

    # And the fatigue budget it had reserved is given back: a later follow-up is not refused for fatigue
    put_customer(api, "c1", consents={"feedback": {"email": True}})
    post_events(api, topup("e2", "c1", at=clock.now()))
    latest = followups_of(api, "c1")[-1]
    assert (latest["strategy"], latest["status"], latest["reason"]) == ("after-topup", "planned", None)


def test_one_click_unsubscribe_withdraws_email_consent_and_the_reminder_is_not_emailed(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock, survey: None
) -> None:
    # Given a customer invited by email
    put_customer(api, "c1")
    create_strategy(api)
    post_events(api, transfer("e1", "c1"))
    worker = Worker(runtime)
    clock.advance(dt.timedelta(minutes=31))
    worker.run_until_idle()
    (invitation,) = smtp.wait_for(1)
    path = unsubscribe_path(invitation)

    # When a mail scanner GETs the unsubscribe link, nothing changes
    shown = api.get(path)
    assert shown.status_code == 200
    assert api.get("/api/v1/customers/c1").json()["consents"] == {"feedback": {"email": True, "inapp": True}}

    # When the mail client POSTs the RFC 8058 one-click body
    done = api.post(path, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200

    # Then email consent is withdrawn, and only email
    assert api.get("/api/v1/customers/c1").json()["consents"] == {"feedback": {"email": False, "inapp": True}}

    # And the reminder two days later is refused, not emailed
    clock.advance(dt.timedelta(days=2))
    worker.run_until_idle()
    assert len(no_more_email(smtp, 1)) == 1
    followup = only_followup(api, "c1")
    assert messages(followup) == [
        ("invite", "email", "sent", None),
        ("remind", "email", "suppressed", "no_consent"),
    ]
    assert ("reminder_suppressed", "no_consent") in history(followup)
    assert followup["status"] == "invited", "a reminder that never went out does not count as sent"
    # Unsubscribing from email does not withdraw the survey: the invitation's link still opens
    assert api.get(survey_path(invitation)).status_code == 200


# ── the other refusals ──────────────────────────────────────────────────────────────────────


def test_customer_without_email_on_an_email_only_strategy_is_unreachable(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock, survey: None
) -> None:
    put_customer(api, "c1", email=None, consents={"feedback": {"email": True}})
    create_strategy(api, channels=["email"])

    post_events(api, transfer("e1", "c1"))
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()

    followup = only_followup(api, "c1")
    assert (followup["status"], followup["reason"]) == ("suppressed", "unreachable")
    assert history(followup) == [("suppressed", "unreachable")]
    assert followup["messages"] == []
    assert smtp.wait_for(1, timeout=0.3) == []


def test_customer_who_refused_email_on_an_email_only_strategy_gets_no_consent(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock, survey: None
) -> None:
    put_customer(api, "c1", consents={"feedback": {"email": False, "inapp": True}})
    create_strategy(api, channels=["email"])

    post_events(api, transfer("e1", "c1"))
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()

    followup = only_followup(api, "c1")
    assert (followup["status"], followup["reason"]) == ("suppressed", "no_consent")
    assert history(followup) == [("suppressed", "no_consent")]
    assert smtp.wait_for(1, timeout=0.3) == []


def test_a_bare_customer_from_an_event_was_never_asked_so_gets_no_consent_not_a_message(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock, survey: None
) -> None:
    # An event for an unknown customer creates a bare one: no address, no consent recorded
    create_strategy(api)
    post_events(api, transfer("e1", "stranger"))
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()

    # The in-app inbox could reach them, but absent consent is no consent
    followup = only_followup(api, "stranger")
    assert (followup["status"], followup["reason"]) == ("suppressed", "no_consent")
    assert api.get("/api/v1/customers/stranger/inbox").json() == []
    assert smtp.wait_for(1, timeout=0.3) == []


def test_a_customer_with_an_open_security_case_gets_no_new_followup(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock, survey: None
) -> None:
    # Given a customer whose answer raised a security concern, which opened a security case
    put_customer(api, "c1")
    put_customer(api, "c2")
    create_strategy(api)
    post_events(api, transfer("e1", "c1"))
    worker = Worker(runtime)
    clock.advance(dt.timedelta(minutes=31))
    worker.run_until_idle()
    path = survey_path(smtp.wait_for(1)[0])
    assert api.post(path, data={"step": "rating", "nps": "8"}, follow_redirects=False).status_code == 303
    assert api.post(path, data={"step": "details", "comment": "有人盗刷了我的账户"}).status_code == 200
    cases = api.get("/api/v1/cases", params={"customer_id": "c1"}).json()["items"]
    assert [(case["kind"], case["status"]) for case in cases] == [("security", "open")]

    # When, past the fatigue window but within recontact_days, both customers transfer again
    clock.advance(dt.timedelta(days=15))
    post_events(api, transfer("e2", "c1", occurred_at=clock.now()), transfer("e3", "c2", occurred_at=clock.now()))

    # Then c1 is refused for the open security case (checked before duplicate), c2 is planned
    latest = followups_of(api, "c1")[-1]
    assert (latest["event_id"], latest["status"], latest["reason"]) == ("e2", "suppressed", "open_security_case")
    assert (only_followup(api, "c2")["status"], only_followup(api, "c2")["reason"]) == ("planned", None)
    clock.advance(dt.timedelta(minutes=31))
    worker.run_until_idle()
    assert [m["To"] for m in smtp.wait_for(2)] == ["c1@example.com", "c2@example.com"]
    assert len(no_more_email(smtp, 2)) == 2


CUSTOMERS = [f"c{i:02d}" for i in range(10)]
# Sticky buckets are a SHA-256 of (salt, strategy key, customer id). These sets are pinned on purpose:
# if the hashing ever changes, live strategies would silently reshuffle who is held out.
HELD_OUT_AT_50 = {"c00", "c01", "c03", "c04", "c05", "c07"}
NOT_SAMPLED_AT_HALF = {"c02", "c03", "c05", "c09"}


def _reasons_by_customer(api: TestClient, event_prefix: str) -> dict[str, tuple[str, str | None]]:
    out = {}
    for customer_id in CUSTOMERS:
        (match,) = [f for f in followups_of(api, customer_id) if f["event_id"] == f"{event_prefix}-{customer_id}"]
        out[customer_id] = (match["status"], match["reason"])
    return out


def test_holdout_is_sticky_per_customer_and_strategy(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock, survey: None
) -> None:
    # Given ten customers and a strategy holding out half of them
    for customer_id in CUSTOMERS:
        put_customer(api, customer_id)
    create_strategy(api, holdout_percent=50)

    # When each of them transfers, in one batch, then again a day later in another
    post_events(api, *[transfer(f"a-{c}", c, occurred_at=clock.now()) for c in CUSTOMERS])
    clock.advance(dt.timedelta(days=1))
    post_events(api, *[transfer(f"b-{c}", c, occurred_at=clock.now()) for c in CUSTOMERS])

    # Then the same customers are held out both times; the others were planned once, then duplicate
    first, second = _reasons_by_customer(api, "a"), _reasons_by_customer(api, "b")
    assert {c for c, (_, reason) in first.items() if reason == "holdout"} == HELD_OUT_AT_50
    assert {c for c, (_, reason) in second.items() if reason == "holdout"} == HELD_OUT_AT_50
    for customer_id in CUSTOMERS:
        if customer_id in HELD_OUT_AT_50:
            assert first[customer_id] == second[customer_id] == ("suppressed", "holdout")
        else:
            assert first[customer_id] == ("planned", None)
            assert second[customer_id] == ("suppressed", "duplicate")

    # And held-out customers get nothing
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()
    expected = sorted(f"{c}@example.com" for c in CUSTOMERS if c not in HELD_OUT_AT_50)
    assert sorted(m["To"] for m in smtp.wait_for(len(expected))) == expected
    assert len(no_more_email(smtp, len(expected))) == len(expected)


def test_sampling_is_sticky_per_customer_and_strategy(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock, survey: None
) -> None:
    # Given ten customers and a strategy sampling half of them
    for customer_id in CUSTOMERS:
        put_customer(api, customer_id)
    create_strategy(api, sample_rate=0.5)

    # When each of them transfers twice, in two batches
    post_events(api, *[transfer(f"a-{c}", c, occurred_at=clock.now()) for c in CUSTOMERS])
    clock.advance(dt.timedelta(days=1))
    post_events(api, *[transfer(f"b-{c}", c, occurred_at=clock.now()) for c in CUSTOMERS])

    # Then the customers left out the first time are left out the second time too
    first, second = _reasons_by_customer(api, "a"), _reasons_by_customer(api, "b")
    for customer_id in CUSTOMERS:
        if customer_id in NOT_SAMPLED_AT_HALF:
            assert first[customer_id] == second[customer_id] == ("suppressed", "not_sampled")
        else:
            assert first[customer_id] == ("planned", None)
            assert second[customer_id] == ("suppressed", "duplicate")


def test_not_sampled_customers_spend_no_fatigue_budget(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock, survey: None
) -> None:
    # Given a customer a strategy never samples, and a second strategy that takes everyone
    put_customer(api, "c1")
    create_strategy(api, sample_rate=0.0)
    create_strategy(api, "after-topup", trigger={"event_types": ["topup.succeeded"]}, audience=None)

    # When both fire for the customer
    post_events(api, transfer("e1", "c1"), topup("e2", "c1", at=clock.now()))

    # Then the unsampled one did not use up the budget the other needs
    first, second = followups_of(api, "c1")
    assert (first["strategy"], first["status"], first["reason"]) == (
        "after-large-transfer",
        "suppressed",
        "not_sampled",
    )
    assert (second["strategy"], second["status"], second["reason"]) == ("after-topup", "planned", None)


def test_the_same_strategy_again_within_recontact_days_is_a_duplicate(
    api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock, survey: None
) -> None:
    # Given a customer followed up after a transfer (recontact_days 30)
    put_customer(api, "c1")
    create_strategy(api, recontact_days=30)
    planned_at = clock.now()
    post_events(api, transfer("e1", "c1", occurred_at=planned_at))
    worker = Worker(runtime)
    clock.advance(dt.timedelta(minutes=31))
    worker.run_until_idle()
    assert len(smtp.wait_for(1)) == 1

    # When the same strategy fires again after the fatigue window but within 30 days
    clock.set(planned_at + dt.timedelta(days=20))
    worker.run_until_idle()
    post_events(api, transfer("e2", "c1", occurred_at=clock.now()))

    # Then it is refused as a duplicate, and nothing more is sent
    latest = followups_of(api, "c1")[-1]
    assert (latest["event_id"], latest["status"], latest["reason"]) == ("e2", "suppressed", "duplicate")
    assert history(latest) == [("suppressed", "duplicate")]
    clock.advance(dt.timedelta(minutes=31))
    worker.run_until_idle()
    assert len(no_more_email(smtp, 1)) == 1

    # When it fires after the 30 days have passed
    clock.set(planned_at + dt.timedelta(days=30, minutes=1))
    post_events(api, transfer("e3", "c1", occurred_at=clock.now()))

    # Then a new follow-up is planned
    latest = followups_of(api, "c1")[-1]
    assert (latest["event_id"], latest["status"], latest["reason"]) == ("e3", "planned", None)
