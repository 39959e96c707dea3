"""How long what was sent and what came back is kept (ADR 0026).

Messages (FOLLOWUP_RETENTION_MESSAGES): past the period, a message's content (subject, text, the
links it carried) and the provider's error text are cleared; the message stays with its channel,
state, times and attempts, so delivery, open and response rates do not move. A message not yet
handed to a provider keeps its content until it is.

Free text (FOLLOWUP_RETENTION_FREE_TEXT): an SMS reply's words are cleared; what the reply was read
as (its kind and score) stays.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from followup.dispatch.repository import RetentionRepository


def count_content_older(session: Session, cutoff: dt.datetime) -> int:
    return RetentionRepository(session).count_content_older(cutoff)


def purge_content_older(session: Session, cutoff: dt.datetime, *, limit: int) -> int:
    return RetentionRepository(session).clear_content_older(cutoff, limit=limit)


def count_reply_texts_older(session: Session, cutoff: dt.datetime) -> int:
    return RetentionRepository(session).count_reply_texts_older(cutoff)


def purge_reply_texts_older(session: Session, cutoff: dt.datetime, *, limit: int) -> int:
    return RetentionRepository(session).clear_reply_texts_older(cutoff, limit=limit)
