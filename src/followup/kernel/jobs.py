"""The outbox: work that must happen only if the current transaction commits.

A job is a row written in the caller's transaction. The worker claims due jobs, runs the handler
registered for the job's kind in its own transaction, and deletes the row on success. A handler
that raises is retried with backoff; handlers must therefore be idempotent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import String, Text, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from followup.config import Settings
from followup.kernel.crypto import KeyProvider
from followup.kernel.db import Base, BigId, BulkStatements, JSONType, UTCDateTime


@dataclass(frozen=True)
class JobContext:
    """What a job handler runs with: the job's own transaction, the time, the settings and the
    keys — not the process's runtime."""

    session: Session
    now: dt.datetime
    settings: Settings
    keys: KeyProvider


JobHandler = Callable[[JobContext, Mapping[str, Any]], None]


class Timer(Protocol):
    """Work a domain finds due by time: runs up to `limit` due items and says how many.

    With `one_by_one`, each item runs on its own, so one that breaks ends alone; the worker asks
    for that only after the batch as a whole failed.
    """

    def __call__(
        self,
        session: Session,
        *,
        now: dt.datetime,
        settings: Settings,
        keys: KeyProvider,
        limit: int,
        one_by_one: bool,
    ) -> int: ...


@dataclass(frozen=True)
class Tasks:
    """What one domain gives the worker (its `tasks.py` declares it): job handlers by kind, timers,
    and work to do once when a process starts (before its first round; the server runs it too)."""

    jobs: Mapping[str, JobHandler] = field(default_factory=dict)
    timers: tuple[Timer, ...] = ()
    at_start: tuple[Timer, ...] = ()

    @staticmethod
    def merge(parts: Iterable[Tasks]) -> Tasks:
        """One registry from every domain's; a job kind claimed twice is a mistake at start-up."""
        jobs: dict[str, JobHandler] = {}
        timers: list[Timer] = []
        at_start: list[Timer] = []
        for part in parts:
            for kind, handler in part.jobs.items():
                if kind in jobs:
                    raise ValueError(f"job kind '{kind}' has two handlers")
                jobs[kind] = handler
            timers.extend(part.timers)
            at_start.extend(part.at_start)
        return Tasks(jobs=jobs, timers=tuple(timers), at_start=tuple(at_start))


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


def enqueue(
    session: Session, kind: str, payload: Mapping[str, Any], *, now: dt.datetime, due_at: dt.datetime | None = None
) -> None:
    # At the driver, past the unit of work and SQLAlchemy's binding: answers enqueue one each,
    # holding the write lock.
    bulk = BulkStatements(session.connection())
    bulk.run(
        f"INSERT INTO jobs (kind, payload, due_at, attempts) VALUES (?, {bulk.json_slot()}, ?, 0)",  # noqa: S608 - a placeholder of ours
        (kind, bulk.db_json(dict(payload)), bulk.db_time(due_at or now)),
    )


def claim_due(session: Session, *, now: dt.datetime, lease: dt.timedelta, limit: int) -> list[Job]:
    """Lease due jobs to this worker. The caller commits right after, then runs each job."""
    ready = (
        select(Job.id)
        .where(Job.due_at <= now, (Job.lease_until.is_(None)) | (Job.lease_until < now))
        .order_by(Job.due_at, Job.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(ready))
    if not ids:
        return []
    session.execute(update(Job).where(Job.id.in_(ids)).values(lease_until=now + lease, attempts=Job.attempts + 1))
    return list(session.scalars(select(Job).where(Job.id.in_(ids)).order_by(Job.id)))


def complete(session: Session, job_id: int) -> None:
    session.execute(delete(Job).where(Job.id == job_id))


def fail(session: Session, job_id: int, *, error: str, retry_at: dt.datetime) -> None:
    session.execute(
        update(Job).where(Job.id == job_id).values(lease_until=None, due_at=retry_at, last_error=error[:2000])
    )
