"""How long what was written about a case is kept (FOLLOWUP_RETENTION_FREE_TEXT, ADR 0026).

Once a case has been resolved or closed for longer than the period, its notes, replies and
resolutions are cleared; the case and its timeline stay with their kinds, times and outcomes, for
the SLA and quality figures. A case still being worked keeps its texts, however old.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from followup.cases.repository import RetentionRepository


def count_texts_of_done(session: Session, cutoff: dt.datetime) -> int:
    return RetentionRepository(session).count_texts_of_done(cutoff)


def purge_texts_of_done(session: Session, cutoff: dt.datetime, *, limit: int) -> int:
    return RetentionRepository(session).clear_texts_of_done(cutoff, limit=limit)
