"""How long each class of data is kept, and the worker's purge of what is older (ADR 0026).

Five data classes, each with its period (FOLLOWUP_RETENTION_*; P0D keeps it for ever): raw events,
messages and their content, free text, responses, inbox items. A class is made of parts, one per
table or column that a domain owns, and each domain purges its own through its `retention` module;
this is the one place that calls them all, as `service` does for erasure.

The worker looks at each part every `CHECK_EVERY`, purges at most `limit` rows of it per round
(the next round goes on at once while a part has more), and keeps a running record in
`retention_parts`: what went in all, and when. `followup privacy retention-report` reads that
record beside what would go now.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from followup.cases import retention as cases
from followup.channels import retention as channels
from followup.config import Settings
from followup.data_rights.repository import RetentionRepository
from followup.data_rights.schemas import RetentionClassOut, RetentionPartOut, RetentionReport
from followup.dispatch import retention as messages
from followup.events import retention as events
from followup.kernel.crypto import KeyProvider
from followup.kernel.logging import get_logger
from followup.surveys import retention as answers

log = get_logger(__name__)

# A part due a look is looked at again this long after a round that found it done; a round that
# purged a full batch leaves it due, so the backlog goes batch after batch.
CHECK_EVERY = dt.timedelta(minutes=15)

# The data classes, in the order the report lists them, and who reads the setting of each.
DATA_CLASSES = ("events", "messages", "free_text", "responses", "inbox")


@dataclass(frozen=True)
class Part:
    name: str
    data_class: str
    what: str  # what goes, as an operator reads it in the report
    count: Callable[[Session, dt.datetime], int]
    purge: Callable[[Session, dt.datetime, int], int]


def _batched(purge: Callable[..., int]) -> Callable[[Session, dt.datetime, int], int]:
    return lambda session, cutoff, limit: purge(session, cutoff, limit=limit)


PARTS: tuple[Part, ...] = (
    Part("events", "events", "events, deleted", events.count_older, _batched(events.purge_older)),
    Part(
        "messages.content",
        "messages",
        "messages' content and provider errors, cleared",
        messages.count_content_older,
        _batched(messages.purge_content_older),
    ),
    Part(
        "short_links",
        "messages",
        "SMS short links, deleted (counted from their expiry)",
        channels.count_links_expired,
        _batched(channels.purge_links_expired),
    ),
    Part(
        "responses.texts",
        "free_text",
        "comments and text answers, cleared",
        answers.count_texts_older,
        _batched(answers.purge_texts_older),
    ),
    Part(
        "replies.texts",
        "free_text",
        "SMS replies' words, cleared",
        messages.count_reply_texts_older,
        _batched(messages.purge_reply_texts_older),
    ),
    Part(
        "cases.texts",
        "free_text",
        "notes, replies and resolutions of done cases, cleared",
        cases.count_texts_of_done,
        _batched(cases.purge_texts_of_done),
    ),
    Part(
        "responses",
        "responses",
        "responses with their scores, deleted",
        answers.count_responses_older,
        _batched(answers.purge_responses_older),
    ),
    Part(
        "inbox",
        "inbox",
        "in-app inbox items, deleted",
        channels.count_inbox_older,
        _batched(channels.purge_inbox_older),
    ),
)
_BY_NAME = {part.name: part for part in PARTS}


def cutoff_of(data_class: str, *, settings: Settings, now: dt.datetime) -> dt.datetime | None:
    """Rows of the class older than this go; None while the class is kept for ever."""
    period = settings.retention[data_class]
    return None if period is None else now - period


def purge_due(
    session: Session, *, now: dt.datetime, settings: Settings, keys: KeyProvider, limit: int, one_by_one: bool
) -> int:
    """The worker's timer: purge the parts due a look, up to `limit` rows each; returns how many
    rows went (so the worker goes on while a backlog lasts)."""
    repo = RetentionRepository(session)
    repo.add_missing({part.name: part.data_class for part in PARTS}, now=now)
    purged = 0
    for state in repo.claim_due(now=now):
        part = _BY_NAME.get(state.part)
        cutoff = None if part is None else cutoff_of(part.data_class, settings=settings, now=now)
        count = 0
        if part is not None and cutoff is not None:
            if one_by_one:
                try:
                    with session.begin_nested():
                        count = part.purge(session, cutoff, limit)
                except Exception as exc:  # noqa: BLE001 - one part that breaks must not hold up the others
                    log.warning("retention_purge_failed", part=part.name, error=type(exc).__name__)
            else:
                count = part.purge(session, cutoff, limit)
        state.checked_at, state.last_cutoff = now, cutoff
        state.next_check_at = now if count >= limit else now + CHECK_EVERY
        if count:
            state.purged += count
            state.last_purged, state.last_purged_at = count, now
            log.info("retention_purged", part=state.part, count=count)
        purged += count
    session.flush()
    return purged


def retention_report(session: Session, *, now: dt.datetime, settings: Settings) -> RetentionReport:
    """Per data class: its period and cutoff, what would go now, and what went (from the worker's
    record; a part never looked at yet shows nothing gone)."""
    record = {row.part: row for row in RetentionRepository(session).parts()}
    out = []
    for data_class in DATA_CLASSES:
        cutoff = cutoff_of(data_class, settings=settings, now=now)
        parts = []
        for part in PARTS:
            if part.data_class != data_class:
                continue
            row = record.get(part.name)
            parts.append(
                RetentionPartOut(
                    part=part.name,
                    what=part.what,
                    due=0 if cutoff is None else part.count(session, cutoff),
                    purged=row.purged if row else 0,
                    last_purged=row.last_purged if row else 0,
                    last_purged_at=row.last_purged_at if row else None,
                    checked_at=row.checked_at if row else None,
                )
            )
        checked = [part.checked_at for part in parts if part.checked_at is not None]
        went = [part.last_purged_at for part in parts if part.last_purged_at is not None]
        out.append(
            RetentionClassOut(
                data_class=data_class,
                period_days=None if cutoff is None else (now - cutoff).days,
                cutoff=cutoff,
                due=sum(part.due for part in parts),
                purged=sum(part.purged for part in parts),
                last_purged_at=max(went) if went else None,
                checked_at=max(checked) if checked else None,
                parts=parts,
            )
        )
    return RetentionReport(at=now, classes=out)
