"""How long the wallet's events are kept (FOLLOWUP_RETENTION_EVENTS, ADR 0026).

An event older than the period, by when it happened, is deleted. What it added to its customer's
activity stays in the day buckets (`customer_activity_days`), so every stat keeps its value; ingest
refuses an event already older than the period, since it would go at once and a replay of a
deleted one could no longer be recognised by its `event_id`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from followup.events.repository import RetentionRepository


def count_older(session: Session, cutoff: dt.datetime) -> int:
    return RetentionRepository(session).count_older(cutoff)


def purge_older(session: Session, cutoff: dt.datetime, *, limit: int) -> int:
    return RetentionRepository(session).delete_older(cutoff, limit=limit)
