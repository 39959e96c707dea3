"""The worker loop: due follow-up timers, due messages, outbox jobs.

Every piece of work is claimed from the database, so any number of workers on any number of
hosts can run together; a worker killed at any point leaves rows that another picks up.
"""

from __future__ import annotations

import datetime as dt
import threading
import traceback
from dataclasses import dataclass

from followup.channels.base import (
    DeliveryUnknownError,
    PermanentChannelError,
    TransientChannelError,
)
from followup.dispatch import service as dispatch
from followup.followups import service as followups
from followup.followups.tasks import on_message_undelivered
from followup.kernel import jobs
from followup.kernel.jobs import JobHandler
from followup.kernel.logging import get_logger
from followup.runtime import Runtime

log = get_logger(__name__)

JOB_HANDLERS: dict[str, JobHandler] = {
    dispatch.UNDELIVERED_JOB: on_message_undelivered,
}


class ClaimLostError(Exception):
    """Raised from a channel's hand-over when this worker no longer holds the message."""


@dataclass
class WorkDone:
    steps: int = 0
    messages: int = 0
    jobs: int = 0

    @property
    def total(self) -> int:
        return self.steps + self.messages + self.jobs


class Worker:
    def __init__(self, runtime: Runtime, *, batch_size: int = 200) -> None:
        self.runtime = runtime
        self.batch_size = batch_size
        self.stopping = threading.Event()

    def run_timers(self) -> int:
        runtime = self.runtime
        with runtime.session() as session:
            return followups.run_due_followups(
                session, now=runtime.clock.now(), settings=runtime.settings, keys=runtime.keys, limit=self.batch_size
            )

    def send_due_messages(self) -> int:
        runtime = self.runtime
        idempotent = {name for name, channel in runtime.channels.items() if channel.idempotent}
        with runtime.session() as session:
            ids = dispatch.claim_due_messages(
                session,
                now=runtime.clock.now(),
                settings=runtime.settings,
                idempotent_channels=idempotent,
                limit=self.batch_size,
            )
        for message_id in ids:
            if self.stopping.is_set():
                break  # the lease runs out and another worker (or this one, restarted) takes it
            self._send_one(message_id)
        return len(ids)

    def _send_one(self, message_id: int) -> int:
        runtime = self.runtime
        with runtime.session() as session:
            plan = dispatch.prepare_send(
                session, message_id, now=runtime.clock.now(), settings=runtime.settings, keys=runtime.keys
            )
        if plan is None:
            return 0
        channel = runtime.channels.get(plan.channel)
        if channel is None:
            with runtime.session() as session:
                dispatch.record_failure(
                    session,
                    message_id,
                    claim=plan.claim,
                    error=f"channel '{plan.channel}' is not configured",
                    permanent=True,
                    now=runtime.clock.now(),
                    settings=runtime.settings,
                )
            return 0

        def handoff() -> None:
            with runtime.session() as session:
                if not dispatch.mark_in_flight(
                    session, message_id, claim=plan.claim, now=runtime.clock.now(), settings=runtime.settings
                ):
                    raise ClaimLostError

        try:
            receipt = channel.send(plan.delivery, handoff=handoff)
        except ClaimLostError:
            # Another worker took the message over after our lease ran out; it is theirs to record.
            log.info("claim_lost", message_id=message_id)
            return 0
        except DeliveryUnknownError as exc:
            with runtime.session() as session:
                dispatch.record_unknown(session, message_id, claim=plan.claim, error=exc.message)
            log.warning("delivery_unknown", message_id=message_id, error=exc.message)
            return 0
        except (TransientChannelError, PermanentChannelError) as exc:
            with runtime.session() as session:
                dispatch.record_failure(
                    session,
                    message_id,
                    claim=plan.claim,
                    error=exc.message,
                    permanent=isinstance(exc, PermanentChannelError),
                    now=runtime.clock.now(),
                    settings=runtime.settings,
                )
            log.info("send_failed", message_id=message_id, channel=plan.channel, error=exc.message)
            return 0
        with runtime.session() as session:
            dispatch.record_sent(session, message_id, receipt, claim=plan.claim, now=runtime.clock.now())
        return 1

    def run_jobs(self) -> int:
        runtime = self.runtime
        now = runtime.clock.now()
        with runtime.session() as session:
            claimed = [
                (job.id, job.kind, dict(job.payload), job.attempts)
                for job in jobs.claim_due(
                    session,
                    now=now,
                    lease=dt.timedelta(seconds=runtime.settings.worker_lease_seconds),
                    limit=self.batch_size,
                )
            ]
        for job_id, kind, payload, attempts in claimed:
            handler = JOB_HANDLERS.get(kind)
            try:
                if handler is None:
                    raise LookupError(f"no handler for job kind '{kind}'")
                with runtime.session() as session:
                    handler(session, payload, runtime.clock.now())
                    jobs.complete(session, job_id)
            except Exception as exc:  # noqa: BLE001 - a failing job must not stop the others
                delay = min(3600.0, 5.0 * 2 ** min(attempts, 10))
                with runtime.session() as session:
                    jobs.fail(
                        session,
                        job_id,
                        error="".join(traceback.format_exception_only(exc)),
                        retry_at=runtime.clock.now() + dt.timedelta(seconds=delay),
                    )
                log.error("job_failed", job_id=job_id, kind=kind, error=str(exc))
        return len(claimed)

    def tick(self) -> WorkDone:
        done = WorkDone()
        done.steps = self.run_timers()
        done.messages = self.send_due_messages()
        done.jobs = self.run_jobs()
        return done

    def run_until_idle(self, *, max_rounds: int = 10_000) -> WorkDone:
        """Do all work due now, including work that other work made due, then return."""
        total = WorkDone()
        for _ in range(max_rounds):
            done = self.tick()
            total.steps += done.steps
            total.messages += done.messages
            total.jobs += done.jobs
            if done.total == 0 or self.stopping.is_set():
                break
        return total

    def run_forever(self) -> None:
        log.info("worker_started")
        while not self.stopping.is_set():
            try:
                done = self.run_until_idle(max_rounds=50)
            except Exception:
                log.exception("worker_tick_failed")
                done = WorkDone()
            if done.total == 0:
                self.stopping.wait(self.runtime.settings.worker_poll_seconds)
        log.info("worker_stopped")
