"""The worker runs whatever the domains register (their `tasks.py`), and no job stops it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from followup.bootstrap import worker_tasks
from followup.config import Settings
from followup.data_rights import retention
from followup.data_rights import service as data_rights
from followup.dispatch.service import UNDELIVERED_JOB
from followup.followups import service as followups
from followup.followups.answers import ANSWERED_JOB
from followup.kernel import jobs
from followup.kernel.crypto import KeyProvider
from followup.kernel.jobs import Job, JobContext, Tasks
from followup.runtime import Runtime
from followup.strategies import proactive, waves
from followup.worker import Worker

PLUGIN_JOB = "loyalty.recount"


def test_the_registry_holds_each_domains_jobs_and_timers() -> None:
    tasks = worker_tasks()

    assert set(tasks.jobs) == {UNDELIVERED_JOB, ANSWERED_JOB}
    # Waves and sweeps first: the follow-ups they plan due now are invited in the same tick. Data
    # rights last: an erasure or a purge finds what the follow-ups' steps just wrote.
    assert tasks.timers == (
        waves.run_due_waves,
        proactive.run_due_sweeps,
        followups.run_due_followups,
        data_rights.run_due_erasures,
        retention.purge_due,
    )
    # Once, before a process's first round: erasures a restored backup brought back are done again.
    assert tasks.at_start == (data_rights.reapply_at_start,)


def test_a_job_kind_claimed_twice_is_refused_at_start_up() -> None:
    def handler(_context: JobContext, _payload: Mapping[str, Any]) -> None:
        return None

    with pytest.raises(ValueError, match=r"job kind 'loyalty\.recount' has two handlers"):
        Tasks.merge([Tasks(jobs={PLUGIN_JOB: handler}), Tasks(jobs={PLUGIN_JOB: handler})])


def test_a_domain_added_to_the_registry_has_its_jobs_and_timers_run(runtime: Runtime) -> None:
    # Given one more domain's tasks: a job handler and a timer
    seen: list[dict[str, Any]] = []
    ticks: list[bool] = []

    def recount(context: JobContext, payload: Mapping[str, Any]) -> None:
        assert context.now == runtime.clock.now()
        seen.append(dict(payload))

    def timer(
        _session: Session,
        *,
        now: dt.datetime,
        settings: Settings,
        keys: KeyProvider,
        limit: int,
        one_by_one: bool,
    ) -> int:
        ticks.append(one_by_one)
        return 0

    tasks = Tasks.merge([worker_tasks(), Tasks(jobs={PLUGIN_JOB: recount}, timers=(timer,))])
    with runtime.session() as session:
        jobs.enqueue(session, PLUGIN_JOB, {"customer_id": 7}, now=runtime.clock.now())

    # When the worker runs with it
    Worker(runtime, tasks=tasks).run_until_idle()

    # Then the job ran once and is gone, and the timer ran with the others
    assert seen == [{"customer_id": 7}]
    assert ticks == [False, False]  # one tick found work, the next found none
    with runtime.read_session() as session:
        assert session.scalars(select(Job)).all() == []


def test_a_job_with_a_payload_that_does_not_fit_is_kept_for_retry_and_the_rest_run(runtime: Runtime) -> None:
    # Given a malformed undelivered-message job beside a good plugin job
    seen: list[int] = []

    def recount(_context: JobContext, payload: Mapping[str, Any]) -> None:
        seen.append(int(payload["customer_id"]))

    tasks = Tasks.merge([worker_tasks(), Tasks(jobs={PLUGIN_JOB: recount})])
    with runtime.session() as session:
        jobs.enqueue(session, UNDELIVERED_JOB, {"followup_id": "not a number"}, now=runtime.clock.now())
        jobs.enqueue(session, PLUGIN_JOB, {"customer_id": 8}, now=runtime.clock.now())

    # When the worker runs
    Worker(runtime, tasks=tasks).run_jobs()

    # Then the good one ran, and the bad one waits with its error, not deleted and not lost
    assert seen == [8]
    with runtime.read_session() as session:
        (left,) = session.scalars(select(Job)).all()
        assert left.kind == UNDELIVERED_JOB
        assert left.attempts == 1
        assert left.last_error is not None
        assert "validation error" in left.last_error
        assert left.due_at > runtime.clock.now()
