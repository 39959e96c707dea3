"""How long answers are kept (ADR 0026).

Free text (FOLLOWUP_RETENTION_FREE_TEXT): a response's comments and text answers are cleared; its
scores stay, so NPS, CSAT and CES do not move.

Responses (FOLLOWUP_RETENTION_RESPONSES): a response older than the period is deleted whole, scores
included. The metrics of periods older than that are no longer held: that is what the period
says. The follow-up stays `responded`, so response rates do not move.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from followup.surveys.repository import RetentionRepository


def count_texts_older(session: Session, cutoff: dt.datetime) -> int:
    return RetentionRepository(session).count_texts_older(cutoff)


def purge_texts_older(session: Session, cutoff: dt.datetime, *, limit: int) -> int:
    return RetentionRepository(session).clear_texts_older(cutoff, limit=limit)


def count_responses_older(session: Session, cutoff: dt.datetime) -> int:
    return RetentionRepository(session).count_older(cutoff)


def purge_responses_older(session: Session, cutoff: dt.datetime, *, limit: int) -> int:
    return RetentionRepository(session).delete_older(cutoff, limit=limit)
