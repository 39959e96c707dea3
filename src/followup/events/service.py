"""Event ingest: the hot path. One batch, one transaction, bulk statements throughout."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from followup.config import Settings
from followup.customers import service as customers
from followup.events.repository import EventRepository
from followup.events.schemas import MAX_BATCH, EventIn, IngestResult, Rejection
from followup.kernel.errors import FollowupError
from followup.strategies import service as strategies
from followup.strategies.service import EventFact


class BatchTooLarge(FollowupError):
    status_code = 413
    code = "batch_too_large"


def _first_error(exc: ValidationError) -> tuple[str, str]:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "event"
    return where, f"{where}: {error['msg'].removeprefix('Value error, ')}"


def ingest_events(session: Session, raw_events: Sequence[Any], *, now: dt.datetime, settings: Settings) -> IngestResult:
    """Validate, deduplicate on event_id, store, update customer activity and plan follow-ups.

    Good events are kept even when others in the batch are rejected; a repeated event_id counts as
    a duplicate and changes nothing.
    """
    if len(raw_events) > MAX_BATCH:
        raise BatchTooLarge(
            f"A batch holds at most {MAX_BATCH} events; split it and send the rest in another call.", field="events"
        )
    rejected: list[Rejection] = []
    valid: list[EventIn] = []
    seen: set[str] = set()
    duplicates = 0
    for index, raw in enumerate(raw_events):
        try:
            event = EventIn.model_validate(raw)
        except ValidationError as exc:
            _, message = _first_error(exc)
            event_id = raw.get("event_id") if isinstance(raw, dict) else None
            rejected.append(
                Rejection(
                    index=index,
                    event_id=event_id if isinstance(event_id, str) else None,
                    code="invalid_event",
                    message=message,
                )
            )
            continue
        if event.event_id in seen:
            duplicates += 1
            continue
        seen.add(event.event_id)
        valid.append(event)
    if not valid:
        return IngestResult(accepted=0, duplicates=duplicates, rejected=rejected)

    ids = customers.ensure_customers(session, (event.customer_id for event in valid), now=now)
    rows: list[dict[str, Any]] = [
        {
            "event_id": e.event_id,
            "type": e.type,
            "customer_id": ids[e.customer_id],
            "occurred_at": e.occurred_at,
            "received_at": now,
            "amount": e.amount,
            "currency": e.currency,
            "attributes": e.attributes,
        }
        for e in valid
    ]
    inserted = EventRepository(session).insert_new(rows)
    duplicates += len(valid) - len(inserted)

    facts: list[EventFact] = []
    activity: dict[int, tuple[int, dt.datetime]] = {}
    for row in rows:
        new_id = inserted.get(row["event_id"])
        if new_id is None:
            continue
        cid = row["customer_id"]
        count, last = activity.get(cid, (0, row["occurred_at"]))
        activity[cid] = (count + 1, max(last, row["occurred_at"]))
        facts.append(
            EventFact(
                id=new_id,
                event_id=row["event_id"],
                type=row["type"],
                customer_id=cid,
                occurred_at=row["occurred_at"],
                amount=row["amount"],
                currency=row["currency"],
                attributes=row["attributes"],
            )
        )
    customers.record_activity(session, activity)
    strategies.plan_followups_for_events(session, facts, now=now, settings=settings)
    return IngestResult(accepted=len(inserted), duplicates=duplicates, rejected=rejected)


def count_events(session: Session) -> int:
    return EventRepository(session).count()
