"""Event ingest: the hot path. One batch, one transaction, bulk statements throughout."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy.orm import Session

from followup.config import Settings
from followup.customers import service as customers
from followup.events.repository import EventRepository, NewEvent
from followup.events.schemas import (
    EVENTS,
    FRIENDLY,
    MAX_BATCH,
    EventIn,
    IngestResult,
    Rejection,
    encode_attributes,
    parse_occurred_at,
)
from followup.followups import service as followups
from followup.kernel.collector import collector_paused
from followup.kernel.errors import FollowupError
from followup.strategies import service as strategies
from followup.strategies.service import EventFact


class BatchTooLarge(FollowupError):
    status_code = 413
    code = "batch_too_large"


def _message(error: ErrorDetails) -> str:
    where = ".".join(str(part) for part in error["loc"][1:]) or "event"
    text = FRIENDLY.get((where, error["type"])) or error["msg"]
    return f"{where}: {text}"


def _echoable(value: Any) -> str | None:
    """The event_id to echo in a rejection, when it can be: a lone surrogate cannot be encoded in
    the answer, and a control character has no place in it."""
    if not isinstance(value, str) or len(value) > 128:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value if value.isprintable() else None


def _rejection(raw: Any, index: int, message: str, *, code: str = "invalid_event") -> Rejection:
    event_id = raw.get("event_id") if isinstance(raw, dict) else None
    return Rejection(index=index, event_id=_echoable(event_id), code=code, message=message)


def _validate(raw_events: Sequence[Any], rejected: list[Rejection]) -> list[tuple[int, EventIn]]:
    """The schema checks for the whole batch in one call. When some events fail, each is rejected
    with its first error and the rest are validated again without them."""
    indexes = list(range(len(raw_events)))
    try:
        return list(zip(indexes, EVENTS.validate_python(list(raw_events)), strict=True))
    except ValidationError as exc:
        first: dict[int, ErrorDetails] = {}
        for error in exc.errors(include_url=False):
            first.setdefault(int(error["loc"][0]), error)
    for index, error in sorted(first.items()):
        rejected.append(_rejection(raw_events[index], index, _message(error)))
    good = [index for index in indexes if index not in first]
    return list(zip(good, EVENTS.validate_python([raw_events[index] for index in good]), strict=True))


def ingest_events(session: Session, raw_events: Sequence[Any], *, now: dt.datetime, settings: Settings) -> IngestResult:
    """Validate, deduplicate on event_id, store, update customer activity and plan follow-ups.

    Good events are kept even when others in the batch are rejected; a repeated event_id counts as
    a duplicate and changes nothing.
    """
    if len(raw_events) > MAX_BATCH:
        raise BatchTooLarge(
            f"A batch holds at most {MAX_BATCH} events; split it and send the rest in another call.", field="events"
        )
    with collector_paused():
        return _ingest(session, raw_events, now=now, settings=settings)


def _ingest(session: Session, raw_events: Sequence[Any], *, now: dt.datetime, settings: Settings) -> IngestResult:
    rejected: list[Rejection] = []
    valid: list[tuple[EventIn, dt.datetime, str]] = []
    seen: set[str] = set()
    duplicates = 0
    limits = settings.input_limits
    # An event older than its retention would be purged at the worker's next look, and a replay of
    # one already purged could not be told from a new event by its event_id: both are refused.
    kept_for = settings.retention["events"]
    oldest = None if kept_for is None else now - kept_for
    for index, event in _validate(raw_events, rejected):
        try:
            occurred_at = parse_occurred_at(event["occurred_at"])
        except ValueError as exc:
            rejected.append(_rejection(raw_events[index], index, f"occurred_at: {exc}"))
            continue
        if oldest is not None and occurred_at < oldest:
            message = (
                f"occurred_at: the event is older than events are kept (FOLLOWUP_RETENTION_EVENTS, "
                f"{_days(kept_for)}), so it is not stored"
            )
            rejected.append(_rejection(raw_events[index], index, message, code="event_expired"))
            continue
        try:
            encoded = encode_attributes(event.get("attributes") or {}, limits=limits)
        except ValueError as exc:
            rejected.append(_rejection(raw_events[index], index, f"attributes: {exc}"))
            continue
        if event["event_id"] in seen:
            duplicates += 1
            continue
        seen.add(event["event_id"])
        valid.append((event, occurred_at, encoded))
    rejected.sort(key=lambda rejection: rejection.index)
    if not valid:
        return IngestResult(accepted=0, duplicates=duplicates, rejected=rejected)

    ids = customers.record_arrivals(session, [(event["customer_id"], at) for event, at, _ in valid], now=now)
    inserted = EventRepository(session).insert_new(
        [
            NewEvent(
                event["event_id"],
                event["type"],
                ids[event["customer_id"]],
                occurred_at,
                event.get("amount"),
                event.get("currency"),
                encoded,
            )
            for event, occurred_at, encoded in valid
        ],
        received_at=now,
    )
    duplicates += len(valid) - len(inserted)

    facts: list[EventFact] = []
    stored_before: dict[int, int] = {}
    for event, occurred_at, _ in valid:
        cid = ids[event["customer_id"]]
        new_id = inserted.get(event["event_id"])
        if new_id is None:
            stored_before[cid] = stored_before.get(cid, 0) + 1
            continue
        facts.append(
            EventFact(
                new_id,
                event["event_id"],
                event["type"],
                cid,
                occurred_at,
                event.get("amount"),
                event.get("currency"),
                event.get("attributes") or {},
            )
        )
    customers.uncount_events(session, stored_before)
    customers.record_activity(session, [(f.customer_id, f.type, f.occurred_at, f.amount, f.attributes) for f in facts])
    strategies.plan_followups_for_events(session, facts, now=now, settings=settings, history=event_history(session))
    return IngestResult(accepted=len(inserted), duplicates=duplicates, rejected=rejected)


def _days(period: dt.timedelta | None) -> str:
    return f"{0 if period is None else period.days} days"


def count_events(session: Session) -> int:
    return EventRepository(session).count()


def held_whole_since(*, now: dt.datetime, settings: Settings) -> dt.datetime | None:
    """The first UTC midnight from which the event log still holds every event (the retention
    purge has taken none of that day or later); None while events are kept for ever."""
    kept_for = settings.retention["events"]
    if kept_for is None:
        return None
    cutoff = now - kept_for
    midnight = dt.datetime.combine(cutoff.date(), dt.time(), tzinfo=dt.UTC)
    return midnight if midnight == cutoff else midnight + dt.timedelta(days=1)


def recompute_customer_stats(
    session: Session, *, since: dt.datetime | None = None, progress: Callable[[int], None] | None = None
) -> int:
    """Rebuild every customer's activity stats from the event log, the follow-up history and the
    stored answers; gives the values ingest and answers keep. Returns the events replayed.

    With `since` (`held_whole_since`: events older than the retention period are gone from the
    log), the day buckets before that midnight are kept as they are and only later days are rebuilt,
    so the purged events still count."""
    customers.clear_activity(session, kept_before=since)
    replayed = 0
    for chunk in EventRepository(session).activity_facts(since=since):
        customers.record_activity(
            session,
            [
                (cid, type_, occurred_at, amount, attributes if isinstance(attributes, dict) else {})
                for cid, type_, occurred_at, amount, attributes in chunk
            ],
        )
        replayed += len(chunk)
        if progress is not None:
            progress(len(chunk))
    followups.replay_contact_activity(session)
    return replayed


def event_history(session: Session) -> EventRepository:
    """The stored events as a strategy's planner and preview read them (strategies.EventHistory)."""
    return EventRepository(session)
