"""The worker loop: due follow-up timers, due messages, outbox jobs.

Every piece of work is claimed from the database, so any number of workers on any number of
hosts can run together; a worker killed at any point leaves rows that another picks up.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import traceback
from dataclasses import dataclass

from sqlalchemy.exc import InterfaceError, OperationalError

from followup.bootstrap import worker_tasks
from followup.channels.base import (
    AddressUnusableError,
    DeliveryUnknownError,
    PermanentChannelError,
    TransientChannelError,
)
from followup.customers.contacts import ContactStatus
from followup.dispatch import service as dispatch
from followup.kernel import jobs
from followup.kernel.jobs import Tasks, Timer
from followup.kernel.logging import get_logger
from followup.runtime import Runtime

log = get_logger(__name__)


class ClaimLostError(Exception):
    """Raised from a channel's hand-over when this worker no longer holds the message."""


@dataclass
class _Progress:
    """How far one send got, for the record of a send that broke, and when the try began."""

    channel: str | None = None
    handed_over: bool = False
    started_at: dt.datetime | None = None
    _started: float = 0.0

    def start(self, now: dt.datetime) -> None:
        self.started_at, self._started = now, time.monotonic()

    def tried(self) -> dispatch.Tried | None:
        """The try so far: when it began and how long it has taken (None before the channel was asked)."""
        if self.started_at is None:
            return None
        return dispatch.Tried(self.started_at, int((time.monotonic() - self._started) * 1000))


class _Handoff:
    """The channel's hand-over (see `channels.base.Handoff`), recorded in a transaction of its own."""

    def __init__(self, runtime: Runtime, message_id: int, claim: int, progress: _Progress) -> None:
        self._runtime, self._message_id, self._claim, self._progress = runtime, message_id, claim, progress

    def __call__(self, provider: str | None = None) -> None:
        runtime = self._runtime
        with runtime.session() as session:
            if not dispatch.mark_in_flight(
                session,
                self._message_id,
                claim=self._claim,
                now=runtime.clock.now(),
                settings=runtime.settings,
                provider=provider,
            ):
                raise ClaimLostError
        self._progress.handed_over = True

    def pin(self, provider: str) -> None:
        with self._runtime.session() as session:
            if not dispatch.pin_provider(session, self._message_id, claim=self._claim, provider=provider):
                raise ClaimLostError


def _where(exc: BaseException) -> str:
    """Where an exception was raised, file and line only: its text may quote personal data."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [frame for frame in frames if "/followup/" in frame.filename.replace("\\", "/")]
    if not frames:
        return "unknown"
    frame = (ours or frames)[-1]
    return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}"


@dataclass
class WorkDone:
    steps: int = 0
    messages: int = 0
    jobs: int = 0

    @property
    def total(self) -> int:
        return self.steps + self.messages + self.jobs


class Worker:
    def __init__(self, runtime: Runtime, *, batch_size: int = 200, tasks: Tasks | None = None) -> None:
        self.runtime = runtime
        self.batch_size = batch_size
        self.tasks = tasks if tasks is not None else worker_tasks()
        self.stopping = threading.Event()

    def run_timers(self) -> int:
        return sum(self._run_timer(timer) for timer in self.tasks.timers)

    def _run_timer(self, timer: Timer) -> int:
        runtime = self.runtime

        def run(*, one_by_one: bool) -> int:
            with runtime.session() as session:
                return timer(
                    session,
                    now=runtime.clock.now(),
                    settings=runtime.settings,
                    keys=runtime.keys,
                    limit=self.batch_size,
                    one_by_one=one_by_one,
                )

        try:
            return run(one_by_one=False)
        except Exception as exc:  # noqa: BLE001 - find the step that broke instead of failing every tick
            log.warning("timer_batch_failed", error=type(exc).__name__)
        # Step by step: a step that breaks again fails its own follow-up and no other.
        return run(one_by_one=True)

    def send_due_messages(self) -> int:
        runtime = self.runtime
        idempotent = {name for name, channel in runtime.channels.items() if channel.capabilities.idempotent}
        with runtime.session() as session:
            claims = dispatch.claim_due_messages(
                session,
                now=runtime.clock.now(),
                settings=runtime.settings,
                idempotent_channels=idempotent,
                limit=self.batch_size,
            )
        for claimed in claims:
            if self.stopping.is_set():
                break  # the lease runs out and another worker (or this one, restarted) takes it
            self._send_isolated(claimed)
        return len(claims)

    def _send_isolated(self, claimed: dispatch.Claim) -> None:
        """Send one message so that nothing it raises reaches the others or the loop.

        Anything but the channel's own typed errors is a bug or bad stored data (a title with a
        line break, content that no longer decrypts): it would fail the same way on every retry,
        so the message fails for good, once, and its follow-up moves on to the next channel.
        """
        progress = _Progress()
        try:
            self._send_one(claimed, progress)
        except (OperationalError, InterfaceError):
            # The database is unreachable or busy, not this message at fault: the tick fails and
            # the message is claimed again when its lease runs out (within the attempt limit).
            raise
        except Exception as exc:  # noqa: BLE001 - one bad message must never stop the others
            log.error(
                "send_crashed",
                message_id=claimed.message_id,
                channel=progress.channel,
                error=type(exc).__name__,
                where=_where(exc),
            )
            with self.runtime.session() as session:
                dispatch.record_internal_error(
                    session,
                    claimed.message_id,
                    claim=claimed.claim,
                    error_type=type(exc).__name__,
                    handed_over=progress.handed_over,
                    tried=progress.tried(),
                    now=self.runtime.clock.now(),
                )

    def _send_one(self, claimed: dispatch.Claim, progress: _Progress) -> int:
        runtime = self.runtime
        message_id = claimed.message_id
        with runtime.session() as session:
            plan = dispatch.prepare_send(
                session, claimed, now=runtime.clock.now(), settings=runtime.settings, keys=runtime.keys
            )
        if plan is None:
            return 0
        progress.channel = plan.channel
        channel = runtime.channels.get(plan.channel)
        if channel is None:
            with runtime.session() as session:
                dispatch.record_failure(
                    session,
                    message_id,
                    claim=plan.claim,
                    error=f"channel '{plan.channel}' is not configured",
                    error_code="channel_not_configured",
                    permanent=True,
                    tried=dispatch.Tried(runtime.clock.now(), 0),
                    now=runtime.clock.now(),
                    settings=runtime.settings,
                )
            return 0

        handoff = _Handoff(runtime, message_id, plan.claim, progress)
        progress.start(runtime.clock.now())
        try:
            receipt = channel.send(plan.delivery, handoff=handoff)
        except ClaimLostError:
            # Another worker took the message over after our lease ran out; it is theirs to record.
            log.info("claim_lost", message_id=message_id)
            return 0
        except DeliveryUnknownError as exc:
            with runtime.session() as session:
                dispatch.record_unknown(
                    session,
                    message_id,
                    claim=plan.claim,
                    error=exc.message,
                    tried=progress.tried(),
                    now=runtime.clock.now(),
                    provider=exc.provider,
                    earlier=exc.tries,
                )
            log.warning("delivery_unknown", message_id=message_id, error=exc.message)
            return 0
        except (TransientChannelError, PermanentChannelError) as exc:
            permanent = isinstance(exc, PermanentChannelError)
            unusable = None
            if isinstance(exc, AddressUnusableError):
                unusable = dispatch.Unusable(plan.delivery.contact_id, ContactStatus(exc.status))
            with runtime.session() as session:
                dispatch.record_failure(
                    session,
                    message_id,
                    claim=plan.claim,
                    error=exc.message,
                    error_code=exc.code or ("permanent_refusal" if permanent else "transient_refusal"),
                    permanent=permanent,
                    tried=progress.tried(),
                    now=runtime.clock.now(),
                    settings=runtime.settings,
                    provider=exc.provider,
                    earlier=exc.tries,
                    unusable=unusable,
                    retry_after=exc.retry_after if isinstance(exc, TransientChannelError) else None,
                )
            log.info("send_failed", message_id=message_id, channel=plan.channel, error=exc.message)
            return 0
        # The channel has the message: whatever happens from here must not make it a failure.
        progress.handed_over = True
        with runtime.session() as session:
            dispatch.record_sent(
                session, message_id, receipt, claim=plan.claim, tried=progress.tried(), now=runtime.clock.now()
            )
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
            handler = self.tasks.jobs.get(kind)
            try:
                if handler is None:
                    raise LookupError(f"no handler for job kind '{kind}'")
                with runtime.session() as session:
                    context = jobs.JobContext(
                        session=session, now=runtime.clock.now(), settings=runtime.settings, keys=runtime.keys
                    )
                    handler(context, payload)
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
