"""The one-click answer's transaction and its outbox: the answer holds what the customer's next page
needs (the response, the follow-up's end, the reward, the case's row, the inbox item gone) and one
`followup.answered` job; the worker's next round does the rest, dated when the customer answered.
And SQLite writers of one process take turns without sleeping on each other."""

from __future__ import annotations

import datetime as dt
import threading
import time

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from followup.cases.models import Case, CaseEvent
from followup.dispatch.models import Message
from followup.followups.answers import ANSWERED_JOB
from followup.followups.models import FollowupHistory
from followup.kernel.jobs import Job
from followup.kernel.time import ManualClock
from followup.privacy.models import AuditEntry
from followup.rewards.models import RewardAccount, RewardEntry
from followup.runtime import Runtime
from followup.staff import service as staff
from followup.surveys.models import Response
from followup.webhooks.models import WebhookDelivery
from followup.worker import Worker
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey
from tests.conftest import SmtpSink
from tests.helpers import survey_path

REWARD_POINTS = 10


def _invited(runtime: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock) -> str:
    """c1 is emailed an invitation; its survey page's path."""
    runtime.settings.webhooks_allow_private = True
    with runtime.session() as session:
        staff.create_staff(session, email="ann@wallet.example", role="agent", now=clock.now(), queues=("detractor",))
    hook = api.post(
        "/api/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["response.created", "case.opened", "reward.granted"]},
    )
    assert hook.status_code == 201, hook.text
    make_customer(runtime, "c1")
    make_survey(runtime)
    make_strategy(runtime, reward={"points": REWARD_POINTS})
    assert api.post("/api/v1/events", json={"events": [transfer("e1", "c1")]}).json()["accepted"] == 1
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()
    return survey_path(smtp.wait_for(1)[0])


def _count(runtime: Runtime, column: object) -> int:
    with runtime.read_session() as session:
        return int(session.scalar(select(func.count(column))) or 0)


def test_the_answer_holds_what_the_next_page_needs_and_the_worker_does_the_rest_dated_when_it_came(
    runtime: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock
) -> None:
    path = _invited(runtime, api, smtp, clock)
    # When c1 gives a 2 on the survey page
    answered_at = clock.advance(dt.timedelta(minutes=5))
    assert api.post(path, data={"step": "rating", "nps": "2"}, follow_redirects=False).status_code == 303

    # Then the answer's transaction wrote the response, the reward with its audit line and the case's row
    with runtime.read_session() as session:
        response = session.scalars(select(Response)).one()
        assert (response.nps, response.created_at) == (2, answered_at)
        assert session.get(RewardAccount, response.customer_id).balance == REWARD_POINTS  # type: ignore[union-attr]
        [entry] = session.scalars(select(RewardEntry)).all()
        assert (entry.delta, entry.balance_after, entry.created_at) == (REWARD_POINTS, REWARD_POINTS, answered_at)
        [audit] = session.scalars(select(AuditEntry).where(AuditEntry.event == "reward.granted")).all()
        # The audit log names the customer by followup's own id, a reference that outlives an erasure
        expected = (str(response.customer_id), {"balance": 10, "points": 10, "reason": "followup_response"})
        assert (audit.subject_id, audit.new) == expected
        case = session.scalars(select(Case)).one()
        assert (case.kind, case.status, case.assignee_id, case.opened_at) == ("detractor", "open", None, answered_at)
        # And one job for the rest, carrying what it needs
        [job] = session.scalars(select(Job).where(Job.kind == ANSWERED_JOB)).all()
        assert (job.payload["response_id"], job.payload["case_id"]) == (response.id, case.id)
        assert (job.payload["reward_points"], job.payload["nps"]) == (REWARD_POINTS, 2)
    # And nothing of the rest is written yet: no history line, no timeline, no message answered, no webhook
    assert _count(runtime, CaseEvent.id) == 0
    assert _count(runtime, WebhookDelivery.id) == 0
    with runtime.read_session() as session:
        actions = session.scalars(select(FollowupHistory.action)).all()
        assert "responded" not in actions
        assert session.scalars(select(Message.answered_at)).one() is None
    [followup] = api.get("/api/v1/followups", params={"customer_id": "c1"}).json()["items"]
    assert followup["status"] == "responded"  # the follow-up itself ended with the answer

    # When the worker runs a while later
    clock.advance(dt.timedelta(minutes=2))
    Worker(runtime).run_until_idle()

    # Then it has done the rest, each dated when the customer answered, and the job is gone
    with runtime.read_session() as session:
        [responded] = session.scalars(select(FollowupHistory).where(FollowupHistory.action == "responded")).all()
        assert responded.at == answered_at
        assert session.scalars(select(Message.answered_at)).one() == answered_at
        [opened] = session.scalars(select(CaseEvent).where(CaseEvent.kind == "opened")).all()
        assert opened.at == answered_at
        assert session.scalar(select(func.count(Job.id)).where(Job.kind == ANSWERED_JOB)) == 0
    case_out = api.get("/api/v1/cases").json()["items"][0]
    assert (case_out["status"], case_out["assignee"]) == ("assigned", "ann@wallet.example")
    with runtime.read_session() as session:
        types = sorted(session.scalars(select(WebhookDelivery.type)).all())
    assert types == ["case.opened", "response.created", "reward.granted"]
    activity = api.get("/api/v1/customers/c1").json()
    assert activity["stats"]["last_nps"] == 2

    # And a second round changes nothing twice
    Worker(runtime).run_until_idle()
    assert _count(runtime, CaseEvent.id) == 2  # opened, assigned
    assert _count(runtime, WebhookDelivery.id) == 3


def test_a_refused_answer_leaves_no_job_and_nothing_half_written(
    runtime: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock
) -> None:
    path = _invited(runtime, api, smtp, clock)
    # When the rating is out of range, then when it comes twice
    assert api.post(path, data={"step": "rating", "nps": "11"}, follow_redirects=False).status_code == 422
    assert _count(runtime, Job.id) == 0
    assert _count(runtime, Response.id) == 0
    assert api.post(path, data={"step": "rating", "nps": "9"}, follow_redirects=False).status_code == 303
    assert api.post(path, data={"step": "rating", "nps": "9"}, follow_redirects=False).status_code == 404
    # Then one answer, one reward, one job
    assert (_count(runtime, Response.id), _count(runtime, RewardEntry.id), _count(runtime, Job.id)) == (1, 1, 1)


def test_writers_of_one_process_take_turns_and_a_rolled_back_one_lets_the_next_in(runtime: Runtime) -> None:
    if runtime.engine.dialect.name != "sqlite":
        return  # PostgreSQL writers lock rows, not the database
    # A writer that fails hands its turn on: the next one starts, not after SQLite's 30 s timeout
    try:
        with runtime.session() as session:
            session.execute(select(func.count(Job.id)))
            raise RuntimeError("a writer fails halfway")
    except RuntimeError:
        pass
    started = time.monotonic()
    with runtime.session() as session:
        session.execute(select(func.count(Job.id)))
    assert time.monotonic() - started < 5

    # Eight writers at once each write their row; none is refused with "database is locked"
    errors: list[BaseException] = []

    def write(number: int) -> None:
        try:
            for attempt in range(5):
                with runtime.session() as session:
                    session.add(Job(kind=f"turn.{number}.{attempt}", payload={}, due_at=runtime.clock.now()))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(number,)) for number in range(8)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
    assert errors == []
    assert _count(runtime, Job.id) == 40
