"""The worker loop: due follow-up timers, due messages, outbox jobs, webhook deliveries, and the
escalation of cases past their deadlines.

Every piece of work is claimed from the database, so any number of workers on any number of
hosts can run together; a worker killed at any point leaves rows that another picks up.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from followup.bootstrap import worker_tasks
from followup.cases import service as cases
from followup.channels import capabilities
from followup.channels.base import (
    AddressUnusableError,
    DeliveryUnknownError,
    PermanentChannelError,
    TransientChannelError,
)
from followup.channels.email import SmtpChannel
from followup.customers.contacts import ContactStatus
from followup.dispatch import service as dispatch
from followup.kernel import jobs
from followup.kernel.jobs import Tasks, Timer
from followup.kernel.logging import get_logger
from followup.runtime import Runtime
from followup.webhooks import sender as webhook_sender
from followup.webhooks import service as webhooks

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


# Outcomes are written in groups: at least this often, and at most this many at once. A worker that
# stops between two writes leaves its last accepted emails `in_flight`, and they become `unknown`
# (never sent again) instead of `sent`: the price of not writing once per message. ADR 0018.
WRITE_EVERY_SECONDS = 0.5
WRITE_EVERY_COUNT = 25


class _Outcomes:
    """What sends came to, not yet written: written together every `WRITE_EVERY_COUNT` outcomes
    or `WRITE_EVERY_SECONDS`, and at the end of the batch, so a batch costs a few transactions
    rather than one per message.

    Accepted messages are written in a few statements for all of them; the rare others (a refusal,
    an unknown fate, a crash) one by one, as each needs its own reading of the message.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: list[dispatch.Sent] = []
        self._others: list[Callable[[Session], None]] = []
        self._since = time.monotonic()

    def sent(self, item: dispatch.Sent) -> None:
        with self._lock:
            self._sent.append(item)

    def other(self, record: Callable[[Session], None]) -> None:
        with self._lock:
            self._others.append(record)

    def due(self) -> bool:
        with self._lock:
            pending = len(self._sent) + len(self._others)
            return pending >= WRITE_EVERY_COUNT or (
                pending > 0 and time.monotonic() - self._since >= WRITE_EVERY_SECONDS
            )

    def take(self) -> tuple[list[dispatch.Sent], list[Callable[[Session], None]]]:
        with self._lock:
            taken = self._sent, self._others
            self._sent, self._others = [], []
            self._since = time.monotonic()
        return taken

    def write(self, runtime: Runtime) -> None:
        """Write what is pending, together; if that breaks, each on its own, so that one outcome
        that cannot be written (a bug) fails its own message only."""
        sent, others = self.take()
        if not sent and not others:
            return
        try:
            with runtime.session() as session:
                dispatch.record_sent_many(session, sent)
                for record in others:
                    record(session)
            return
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:  # noqa: BLE001 - find the outcome that breaks
            log.warning("outcomes_batch_failed", error=type(exc).__name__)
        for item in sent:
            _write_alone(runtime, functools.partial(_record_one_sent, item=item), item)
        for record in others:
            _write_alone(runtime, record, None)


def _record_one_sent(session: Session, *, item: dispatch.Sent) -> None:
    dispatch.record_sent_many(session, [item])


def _write_alone(runtime: Runtime, record: Callable[[Session], None], sent: dispatch.Sent | None) -> None:
    try:
        with runtime.session() as session:
            record(session)
    except (OperationalError, InterfaceError):
        raise
    except Exception as exc:  # noqa: BLE001 - one bad outcome must never stop the others
        log.error("record_crashed", error=type(exc).__name__, where=_where(exc))
        if sent is None:
            return
        # Accepted by the provider, yet not recordable: unknown, never resent.
        with runtime.session() as session:
            dispatch.record_internal_error(
                session,
                sent.message_id,
                claim=sent.claim,
                error_type=type(exc).__name__,
                handed_over=True,
                tried=sent.tried,
                now=sent.at,
            )


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
        self._started = False

    def run_timers(self) -> int:
        if not self._started:
            self._started = True
            for timer in self.tasks.at_start:
                self._run_timer(timer)
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
        """Claim a batch of due messages, prepare it in one transaction, send it, and write the
        outcomes together. A channel that allows it (`concurrency` above 1: an HTTP provider's)
        has that many sends in flight at once; the others send one after another."""
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
        if not claims:
            return 0
        outcomes = _Outcomes()
        by_channel: dict[str, list[dispatch.SendPlan]] = {}
        for plan in self._prepare(claims):
            by_channel.setdefault(plan.channel, []).append(plan)
        try:
            for name, plans in by_channel.items():
                concurrency = int(getattr(runtime.channels.get(name), "concurrency", 1))
                if concurrency <= 1 or len(plans) == 1:
                    for plan in plans:
                        if self.stopping.is_set():
                            break  # the lease runs out and another worker (or this one, restarted) takes it
                        self._send_isolated(plan, outcomes)
                    continue
                with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"send-{name}") as pool:
                    for _ in pool.map(lambda plan: self._send_isolated(plan, outcomes), plans):
                        pass
        finally:
            outcomes.write(runtime)
        return len(claims)

    def _prepare(self, claims: list[dispatch.Claim]) -> list[dispatch.SendPlan]:
        """The batch's send plans, in one transaction; a message whose preparation broke fails alone."""
        runtime = self.runtime
        now = runtime.clock.now()
        with runtime.session() as session:
            prepared = dispatch.prepare_sends(session, claims, now=now, settings=runtime.settings, keys=runtime.keys)
        for claimed, exc in prepared.broken:
            log.error("send_crashed", message_id=claimed.message_id, error=type(exc).__name__, where=_where(exc))
            with runtime.session() as session:
                dispatch.record_internal_error(
                    session,
                    claimed.message_id,
                    claim=claimed.claim,
                    error_type=type(exc).__name__,
                    handed_over=False,
                    tried=None,
                    now=now,
                )
        return prepared.plans

    def _send_isolated(self, plan: dispatch.SendPlan, outcomes: _Outcomes) -> None:
        """Send one message so that nothing it raises reaches the others or the loop.

        Anything but the channel's own typed errors is a bug or bad stored data (a title with a
        line break, content that no longer decrypts): it would fail the same way on every retry,
        so the message fails for good, once, and its follow-up moves on to the next channel.
        """
        if self.stopping.is_set():
            return
        progress = _Progress(channel=plan.channel)
        try:
            self._send_one(plan, progress, outcomes)
            if outcomes.due():
                outcomes.write(self.runtime)
        except (OperationalError, InterfaceError):
            # The database is unreachable or busy, not this message at fault: the tick fails and
            # the message is claimed again when its lease runs out (within the attempt limit).
            raise
        except Exception as exc:  # noqa: BLE001 - one bad message must never stop the others
            log.error(
                "send_crashed",
                message_id=plan.message_id,
                channel=progress.channel,
                error=type(exc).__name__,
                where=_where(exc),
            )
            error_type, handed_over, tried = type(exc).__name__, progress.handed_over, progress.tried()
            outcomes.other(
                lambda session: dispatch.record_internal_error(
                    session,
                    plan.message_id,
                    claim=plan.claim,
                    error_type=error_type,
                    handed_over=handed_over,
                    tried=tried,
                    now=self.runtime.clock.now(),
                )
            )

    def _send_one(self, plan: dispatch.SendPlan, progress: _Progress, outcomes: _Outcomes) -> None:
        runtime = self.runtime
        message_id = plan.message_id
        channel = runtime.channels.get(plan.channel)
        if channel is None:
            at = runtime.clock.now()
            outcomes.other(
                lambda session: dispatch.record_failure(
                    session,
                    message_id,
                    claim=plan.claim,
                    error=f"channel '{plan.channel}' is not configured",
                    error_code="channel_not_configured",
                    permanent=True,
                    tried=dispatch.Tried(at, 0),
                    now=at,
                    settings=runtime.settings,
                )
            )
            return

        handoff = _Handoff(runtime, message_id, plan.claim, progress)
        progress.start(runtime.clock.now())
        try:
            receipt = channel.send(plan.delivery, handoff=handoff)
        except ClaimLostError:
            # Another worker took the message over after our lease ran out; it is theirs to record.
            log.info("claim_lost", message_id=message_id)
            return
        except DeliveryUnknownError as exc:
            tried, at, unknown = progress.tried(), runtime.clock.now(), exc
            outcomes.other(
                lambda session: dispatch.record_unknown(
                    session,
                    message_id,
                    claim=plan.claim,
                    error=unknown.message,
                    tried=tried,
                    now=at,
                    provider=unknown.provider,
                    earlier=unknown.tries,
                )
            )
            log.warning("delivery_unknown", message_id=message_id, error=unknown.message)
            return
        except (TransientChannelError, PermanentChannelError) as exc:
            self._refused(plan, exc, progress, outcomes)
            return
        # The channel has the message: whatever happens from here must not make it a failure.
        progress.handed_over = True
        outcomes.sent(dispatch.Sent(message_id, plan.claim, receipt, progress.tried(), runtime.clock.now()))

    def _refused(
        self,
        plan: dispatch.SendPlan,
        exc: TransientChannelError | PermanentChannelError,
        progress: _Progress,
        outcomes: _Outcomes,
    ) -> None:
        runtime = self.runtime
        permanent = isinstance(exc, PermanentChannelError)
        unusable = None
        if isinstance(exc, AddressUnusableError):
            unusable = dispatch.Unusable(plan.delivery.contact_id, ContactStatus(exc.status))
        tried, at = progress.tried(), runtime.clock.now()
        outcomes.other(
            lambda session: dispatch.record_failure(
                session,
                plan.message_id,
                claim=plan.claim,
                error=exc.message,
                error_code=exc.code or ("permanent_refusal" if permanent else "transient_refusal"),
                permanent=permanent,
                tried=tried,
                now=at,
                settings=runtime.settings,
                provider=exc.provider,
                earlier=exc.tries,
                unusable=unusable,
                retry_after=exc.retry_after if isinstance(exc, TransientChannelError) else None,
            )
        )
        log.info("send_failed", message_id=plan.message_id, channel=plan.channel, error=exc.message)

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

    def deliver_webhooks(self) -> int:
        """Post due webhook deliveries: claimed in one transaction, posted outside any, each try
        recorded in a transaction of its own (webhooks.service)."""
        runtime = self.runtime
        with runtime.session() as session:
            due = webhooks.claim_due(session, now=runtime.clock.now(), keys=runtime.keys, limit=self.batch_size)
        if not due:
            return 0
        with webhook_sender.open_client() as client:
            for delivery in due:
                if self.stopping.is_set():
                    break  # the lease runs out and another worker takes it
                now = runtime.clock.now()
                tried = webhook_sender.post(
                    client,
                    delivery,
                    timestamp=int(now.timestamp()),
                    allow_private=runtime.settings.webhooks_allow_private,
                )
                with runtime.session() as session:
                    webhooks.record_try(
                        session,
                        delivery.id,
                        tried,
                        now=runtime.clock.now(),
                        retry_base=runtime.settings.retry_base_seconds,
                    )
                if not tried.delivered:
                    log.info("webhook_not_delivered", delivery_id=delivery.id, status=tried.status, error=tried.error)
        return len(due)

    def escalate_cases(self) -> int:
        """Mark the cases past a deadline, once per deadline (each announced as `case.updated` to
        the webhooks), then email their queues' supervisors. The mark is the record; an email that
        does not go out is logged and not tried again, since the webhook carries the same news."""
        runtime = self.runtime
        with runtime.session() as session:
            breaches = cases.escalate_breaches(session, now=runtime.clock.now(), limit=self.batch_size)
        email = runtime.channels.get(capabilities.EMAIL)
        for breach in breaches:
            log.info("case_breached", case_id=breach.case_id, queue=breach.queue, deadline=breach.breach)
            if not isinstance(email, SmtpChannel):
                continue
            subject = f"Case {breach.case_id} missed its {breach.breach.replace('_', ' ')} deadline"
            text = (
                f"Case {breach.case_id} in the {breach.queue} queue ({breach.priority} priority) was due by "
                f"{breach.due_at:%Y-%m-%d %H:%M} UTC.\n\n"
                f"{runtime.settings.public_url}/console/cases/{breach.case_id}\n"
            )
            for supervisor in breach.supervisors:
                try:
                    email.send_notice(supervisor, subject, text)
                except (TransientChannelError, PermanentChannelError) as exc:
                    log.warning("breach_notice_not_sent", case_id=breach.case_id, error=str(exc))
        return len(breaches)

    def tick(self) -> WorkDone:
        done = WorkDone()
        done.steps = self.run_timers()
        done.messages = self.send_due_messages()
        done.jobs = self.run_jobs() + self.deliver_webhooks() + self.escalate_cases()
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
