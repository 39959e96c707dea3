"""Retention purge: each data class goes after its own period, in bounded batches, by the worker;
what counts (scores, states, rates, activity stats) stays unless its own class expires; and
`followup privacy retention-report` shows what would go and what went (ADR 0026).

The periods here are short and different from each other, so that advancing the clock step by
step shows each class going on its own: inbox 5 days, free text 10, messages 20, events 30,
responses 60.
"""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import text
from typer.testing import CliRunner

from followup.cli.main import app
from followup.config import Settings
from followup.data_rights import retention
from followup.dispatch import service as dispatch
from followup.events import service as events
from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.worker import Worker
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.conftest import MASTER_KEY, START, SmtpSink
from tests.helpers import survey_path

DAY = dt.timedelta(days=1)
PERIODS = {
    "retention_inbox": 5 * DAY,
    "retention_free_text": 10 * DAY,
    "retention_messages": 20 * DAY,
    "retention_events": 30 * DAY,
    "retention_responses": 60 * DAY,
}
COMMENT = "The transfer took two days to arrive"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update=PERIODS)


@pytest.fixture
def lived(api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock) -> None:
    """A day's worth of everything: an email follow-up answered with a comment and a detractor case
    worked to its close, an in-app follow-up in another customer's inbox, an SMS reply."""
    email_customer = {"email": "a@wallet.example", "consents": {"feedback": {"email": True, "inapp": True}}}
    inbox_customer = {"consents": {"feedback": {"inapp": True}}}
    assert api.put("/api/v1/customers/c1", json=email_customer).status_code == 200
    assert api.put("/api/v1/customers/c2", json=inbox_customer).status_code == 200
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body(remind_after=None)).status_code == 201
    batch = [transfer("e-1", "c1"), transfer("e-2", "c2")]
    assert api.post("/api/v1/events", json={"events": batch}).json()["accepted"] == 2
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()

    (email,) = smtp.wait_for(1)
    path = survey_path(email)
    assert api.post(path, data={"step": "rating", "nps": "2"}, follow_redirects=False).status_code == 303
    assert api.post(path, data={"step": "details", "csat": "1", "comment": COMMENT}).status_code == 200
    Worker(runtime).run_until_idle()
    (case,) = api.get("/api/v1/cases", params={"customer_id": "c1"}).json()["items"]
    url = f"/api/v1/cases/{case['id']}"
    assert api.post(f"{url}/notes", json={"text": "Called the bank"}).status_code == 201
    assert api.post(f"{url}/reply", json={"text": "We found the delay."}).status_code in (200, 201)
    assert api.post(f"{url}/close", json={"resolution": "Explained the delay"}).status_code == 200
    Worker(runtime).run_until_idle()
    with runtime.session() as session:  # an SMS reply's words, as `followups.inbound` stores them
        session.execute(
            text(
                "INSERT INTO inbound_messages (channel, provider, provider_ref, customer_id, kind, text_sealed,"
                " received_at) SELECT 'sms', 'gateway', 'in-1', id, 'comment', :sealed, :at FROM customers"
                " WHERE external_id = 'c1'"
            ),
            {"sealed": b"sealed words", "at": clock.now()},
        )


def held(runtime: Runtime) -> dict[str, int]:
    """What each class still holds, counted in the tables themselves."""
    queries = {
        "events": "SELECT COUNT(*) FROM events",
        "message_content": "SELECT COUNT(*) FROM messages WHERE length(content_sealed) > 0",
        "messages": "SELECT COUNT(*) FROM messages",
        "response_texts": "SELECT COUNT(*) FROM responses WHERE texts_sealed IS NOT NULL",
        "responses": "SELECT COUNT(*) FROM responses",
        "case_texts": "SELECT COUNT(*) FROM case_events WHERE text_sealed IS NOT NULL",
        "case_events": "SELECT COUNT(*) FROM case_events",
        "reply_texts": "SELECT COUNT(*) FROM inbound_messages WHERE text_sealed IS NOT NULL",
        "replies": "SELECT COUNT(*) FROM inbound_messages",
        "inbox": "SELECT COUNT(*) FROM inbox_items",
        "followups": "SELECT COUNT(*) FROM followups",
        "activity_days": "SELECT COALESCE(SUM(events), 0) FROM customer_activity_days",
    }
    with runtime.read_session() as session:
        return {name: int(session.scalar(text(sql)) or 0) for name, sql in queries.items()}


def advance_to(clock: ManualClock, runtime: Runtime, at: dt.datetime) -> None:
    clock.advance(at - clock.now())
    Worker(runtime).run_until_idle()


def test_each_class_goes_after_its_own_period_and_what_counts_stays(
    api: TestClient, runtime: Runtime, clock: ManualClock, lived: None
) -> None:
    start = held(runtime)
    assert start == {
        "events": 2,
        "message_content": start["messages"],
        "messages": start["messages"],
        "response_texts": 1,
        "responses": 1,
        "case_texts": 3,  # the note, the reply and the closing words
        "case_events": start["case_events"],
        "reply_texts": 1,
        "replies": 1,
        "inbox": 1,
        "followups": 2,
        "activity_days": 2,
    }
    assert start["messages"] >= 2  # c1's invitation and the case's reply
    metrics = api.get("/api/v1/metrics/summary").json()
    funnel = api.get("/api/v1/metrics/funnel").json()

    # Inbox items go after 5 days: nothing else does.
    advance_to(clock, runtime, START + 5 * DAY + dt.timedelta(hours=2))
    assert held(runtime) == start | {"inbox": 0}

    # Free text after 10: the comment, the case's texts, the SMS reply's words. Scores stay.
    advance_to(clock, runtime, START + 10 * DAY + dt.timedelta(hours=2))
    after_text = held(runtime)
    assert after_text == start | {
        "inbox": 0,
        "response_texts": 0,
        "case_texts": 0,
        "reply_texts": 0,
    }
    assert api.get("/api/v1/metrics/summary").json() == metrics
    case_id = api.get("/api/v1/cases", params={"customer_id": "c1"}).json()["items"][0]["id"]
    assert api.get(f"/api/v1/cases/{case_id}").status_code == 200
    (answer,) = api.get("/api/v1/responses").json()["items"]
    assert (answer["nps"], answer["csat"]) == (2, 1)

    # Messages' content after 20: the messages stay, with their states, so the funnel holds.
    advance_to(clock, runtime, START + 20 * DAY + dt.timedelta(hours=2))
    assert held(runtime) == after_text | {"message_content": 0}
    assert api.get("/api/v1/metrics/funnel").json() == funnel
    with runtime.read_session() as session:
        outbox, total = dispatch.list_outbox(session, customer_id=None, limit=50, offset=0, keys=runtime.keys)
    assert total == start["messages"]
    assert [message.content for message in outbox] == [None] * total

    # A young event (too small for the strategy), so that one stays when the first two go.
    clock.advance(START + 25 * DAY - clock.now())
    young = transfer("e-3", "c3", amount=1, occurred_at=clock.now())
    assert api.post("/api/v1/events", json={"events": [young]}).json()["accepted"] == 1

    # Events after 30 (by when they happened): the young one stays, and so do the activity stats.
    advance_to(clock, runtime, START + 30 * DAY + dt.timedelta(hours=2))
    assert held(runtime) == after_text | {"message_content": 0, "events": 1, "activity_days": 3}
    with runtime.read_session() as session:
        assert session.scalar(text("SELECT event_id FROM events")) == "e-3"
        assert session.scalar(text("SELECT COUNT(*) FROM followups WHERE event_id IS NULL")) == 2

    # Responses after 60: the scores go, and with them the NPS of those days; the follow-ups stay.
    clock.advance(START + 45 * DAY - clock.now())
    later = transfer("e-4", "c3", amount=1, occurred_at=clock.now())
    assert api.post("/api/v1/events", json={"events": [later]}).json()["accepted"] == 1
    advance_to(clock, runtime, START + 60 * DAY + dt.timedelta(hours=2))
    assert held(runtime) == after_text | {"message_content": 0, "events": 1, "activity_days": 4, "responses": 0}
    summary = api.get("/api/v1/metrics/summary").json()
    assert summary != metrics
    assert api.get("/api/v1/responses").json()["items"] == []


def test_an_event_older_than_its_retention_is_refused_at_ingest(api: TestClient, clock: ManualClock) -> None:
    old = transfer("e-old", "c1", occurred_at=clock.now() - 31 * DAY)
    kept = transfer("e-kept", "c1", occurred_at=clock.now() - 29 * DAY)
    result = api.post("/api/v1/events", json={"events": [old, kept]}).json()
    assert result["accepted"] == 1
    assert result["rejected"] == [
        {
            "index": 0,
            "event_id": "e-old",
            "code": "event_expired",
            "message": "occurred_at: the event is older than events are kept (FOLLOWUP_RETENTION_EVENTS, "
            "30 days), so it is not stored",
        }
    ]


def test_the_purge_runs_in_batches_of_the_workers_size(api: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    batch = [transfer(f"e-{n}", f"c{n}", amount=1) for n in range(7)]  # below every audience: no follow-up
    assert api.post("/api/v1/events", json={"events": batch}).json()["accepted"] == 7
    clock.advance(31 * DAY)
    young = transfer("e-young", "c0", amount=1, occurred_at=clock.now())
    assert api.post("/api/v1/events", json={"events": [young]}).json()["accepted"] == 1
    worker = Worker(runtime, batch_size=3)

    assert worker.tick().steps == 3
    assert held(runtime)["events"] == 5
    assert worker.tick().steps == 3
    assert held(runtime)["events"] == 2
    assert worker.run_until_idle().steps == 1
    with runtime.read_session() as session:
        assert session.scalar(text("SELECT event_id FROM events")) == "e-young"
    assert held(runtime)["activity_days"] == 8  # what the events added to the stats stays

    # Rebuilding the stats from the log keeps the days whose events are gone.
    with runtime.session() as session:
        since = events.held_whole_since(now=clock.now(), settings=runtime.settings)
        assert since == dt.datetime.combine((clock.now() - 30 * DAY).date(), dt.time(), dt.UTC) + DAY
        assert events.recompute_customer_stats(session, since=since) == 1
    assert held(runtime)["activity_days"] == 8


def test_two_workers_purging_at_once_take_each_row_once(api: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    batch = [transfer(f"e-{n}", f"c{n % 5}", amount=1) for n in range(40)]
    assert api.post("/api/v1/events", json={"events": batch}).json()["accepted"] == 40
    clock.advance(31 * DAY)
    young = transfer("e-young", "c0", amount=1, occurred_at=clock.now())
    assert api.post("/api/v1/events", json={"events": [young]}).json()["accepted"] == 1
    workers = [Worker(runtime, batch_size=3) for _ in range(2)]

    with ThreadPoolExecutor(max_workers=2) as pool:
        done = [worker.steps for worker in pool.map(lambda worker: worker.run_until_idle(), workers)]

    assert sum(done) == 40
    assert held(runtime)["events"] == 1
    with runtime.read_session() as session:
        record = retention.retention_report(session, now=clock.now(), settings=runtime.settings)
    (events_class,) = [row for row in record.classes if row.data_class == "events"]
    assert (events_class.due, events_class.purged) == (0, 40)


def test_nothing_is_purged_while_every_period_is_unset(
    api: TestClient, runtime: Runtime, clock: ManualClock, settings: Settings, lived: None
) -> None:
    for name in PERIODS:
        setattr(settings, name, dt.timedelta(0))
    settings.__dict__.pop("retention", None)
    before = held(runtime)

    clock.advance(3650 * DAY)
    Worker(runtime).run_until_idle()

    # The in-app invitation is withdrawn when its follow-up expires (its own rule, not retention).
    assert held(runtime) == before | {"inbox": 0}
    with runtime.read_session() as session:
        report = retention.retention_report(session, now=clock.now(), settings=settings)
    assert [(row.data_class, row.period_days, row.cutoff, row.due, row.purged) for row in report.classes] == [
        (name, None, None, 0, 0) for name in retention.DATA_CLASSES
    ]


def test_a_retention_setting_is_a_duration_of_a_day_or_more_or_p0d() -> None:
    assert Settings(_env_file=None, retention_inbox="P0D").retention["inbox"] is None  # type: ignore[call-arg]
    assert Settings(_env_file=None, retention_inbox="P1Y").retention["inbox"] == 365 * DAY  # type: ignore[call-arg]
    for wrong in ("PT1H", "P1DT12H", "P36501D"):
        with pytest.raises(ValidationError, match="in whole days from P1D to P36500D, or P0D to keep for ever"):
            Settings(_env_file=None, retention_inbox=wrong)  # type: ignore[call-arg]


def report(database_url: str, clock: ManualClock, *args: str) -> Any:
    """`followup privacy retention-report` run in-process, at the test clock's time."""
    env = {
        "FOLLOWUP_DATABASE_URL": database_url,
        "FOLLOWUP_MASTER_KEY": MASTER_KEY,
        **{f"FOLLOWUP_{name.upper()}": f"P{period.days}D" for name, period in PERIODS.items()},
    }
    with time_machine.travel(clock.now(), tick=False):
        result = CliRunner().invoke(app, ["privacy", "retention-report", *args], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if args == ("--json",) else result.stdout


def test_the_report_shows_what_would_go_and_what_went(
    runtime: Runtime, clock: ManualClock, database_url: str, lived: None
) -> None:
    def figures() -> dict[str, tuple[int, int]]:
        return {
            row["data_class"]: (row["due"], row["purged"]) for row in report(database_url, clock, "--json")["classes"]
        }

    # Six days on: the inbox item is due, nothing went yet.
    clock.advance(6 * DAY)
    assert figures() == {
        "events": (0, 0),
        "messages": (0, 0),
        "free_text": (0, 0),
        "responses": (0, 0),
        "inbox": (1, 0),
    }
    Worker(runtime).run_until_idle()
    assert figures() == {
        "events": (0, 0),
        "messages": (0, 0),
        "free_text": (0, 0),
        "responses": (0, 0),
        "inbox": (0, 1),
    }

    # Eleven days on: the free text is due, part by part.
    clock.advance(5 * DAY)
    before = {row["data_class"]: row for row in report(database_url, clock, "--json")["classes"]}
    assert (before["free_text"]["due"], before["free_text"]["purged"]) == (5, 0)
    assert before["free_text"]["period_days"] == 10
    assert before["free_text"]["cutoff"] == (clock.now() - 10 * DAY).isoformat().replace("+00:00", "Z")
    parts = {part["part"]: part["due"] for part in before["free_text"]["parts"]}
    assert parts == {"responses.texts": 1, "replies.texts": 1, "cases.texts": 3}  # the case: note, reply, closing

    Worker(runtime).run_until_idle()

    after = {row["data_class"]: row for row in report(database_url, clock, "--json")["classes"]}
    assert (after["free_text"]["due"], after["free_text"]["purged"]) == (0, 5)
    assert after["free_text"]["last_purged_at"] == after["free_text"]["checked_at"]
    assert after["inbox"]["purged"] == 1
    assert after["inbox"]["last_purged_at"] < after["free_text"]["last_purged_at"]
    table = report(database_url, clock)
    assert f"Retention at {clock.now():%Y-%m-%d %H:%M} UTC" in table
    for words in ("free_text", "10 days", "replies.texts", "in-app inbox items, deleted"):
        assert words in table
