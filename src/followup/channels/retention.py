"""How long the in-app inbox and SMS short links are kept (ADR 0026).

Inbox items (FOLLOWUP_RETENTION_INBOX) are deleted once older than the period. A short link holds
a survey link sealed; it goes with the messages' content (FOLLOWUP_RETENTION_MESSAGES), counted
from when it expired.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from followup.channels.repository import RetentionRepository


def count_inbox_older(session: Session, cutoff: dt.datetime) -> int:
    return RetentionRepository(session).count_inbox_older(cutoff)


def purge_inbox_older(session: Session, cutoff: dt.datetime, *, limit: int) -> int:
    return RetentionRepository(session).delete_inbox_older(cutoff, limit=limit)


def count_links_expired(session: Session, cutoff: dt.datetime) -> int:
    return RetentionRepository(session).count_links_expired(cutoff)


def purge_links_expired(session: Session, cutoff: dt.datetime, *, limit: int) -> int:
    return RetentionRepository(session).delete_links_expired(cutoff, limit=limit)
