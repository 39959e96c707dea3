"""The follow-up domain's public operations.

The state machine is split by concern, each in its own module: `planning` (a follow-up for every
match, in bulk, inside ingest), `timers` (invite, remind, expire and the channel cascade),
`outreach` (the message a step sends) and `answers` (a rating and the questions after it). Other
domains and the web reach them here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from sqlalchemy.orm import Session

from followup.customers import service as customers
from followup.dispatch import service as dispatch
from followup.followups.answers import record_details, record_rating
from followup.followups.bulk_planning import BulkPick, plan_followups_in_bulk
from followup.followups.content import PersonalTextFailed, personal_text, template_context
from followup.followups.enums import FollowupStatus
from followup.followups.models import Followup
from followup.followups.planning import plan_followups
from followup.followups.repository import FollowupRepository
from followup.followups.schemas import FollowupOut, FollowupPlan, HistoryOut
from followup.followups.timers import cascade_undelivered, close, run_due_followups
from followup.surveys import service as surveys

__all__ = [
    "BulkPick",
    "PersonalTextFailed",
    "activity_by_strategy",
    "answered_since",
    "cascade_undelivered",
    "count_by_reason",
    "count_by_status",
    "invited_in_period",
    "list_followups",
    "personal_text",
    "plan_followups",
    "plan_followups_in_bulk",
    "record_details",
    "record_rating",
    "run_due_followups",
    "template_context",
]


def list_followups(
    session: Session,
    *,
    customer_id: int | None,
    status: str | None,
    limit: int,
    offset: int,
    strategy_id: int | None = None,
) -> tuple[list[FollowupOut], int]:
    repo = FollowupRepository(session)
    rows, total = repo.list_followups(
        customer_id=customer_id, strategy_id=strategy_id, status=status, limit=limit, offset=offset
    )
    history = repo.history(row.id for row in rows)
    messages = dispatch.summaries_for_followups(session, [row.id for row in rows])
    external = customers.external_ids(session, {row.customer_id for row in rows})
    return [
        FollowupOut(
            id=row.id,
            strategy=row.plan.get("strategy_key", ""),
            strategy_version=row.plan.get("strategy_version"),
            variant=row.plan.get("variant"),
            chosen_channel=(row.plan.get("channels") or [None])[0] if row.plan.get("channel_reason") else None,
            channel_reason=row.plan.get("channel_reason"),
            customer_id=external.get(row.customer_id, ""),
            event_id=row.event_ref,
            event_type=row.event_type,
            status=row.status,
            reason=row.reason,
            channel=row.channel,
            next_step=row.next_step,
            due_at=row.due_at,
            planned_at=row.planned_at,
            invited_at=row.invited_at,
            responded_at=row.responded_at,
            closed_at=row.closed_at,
            history=[
                HistoryOut(at=h.at, action=h.action, reason=h.reason, detail=h.detail) for h in history.get(row.id, [])
            ],
            messages=messages.get(row.id, []),
        )
        for row in rows
    ], total


def invited_in_period(
    session: Session, *, strategy_id: int | None, since: dt.datetime | None, until: dt.datetime | None
) -> list[Followup]:
    return FollowupRepository(session).in_period(strategy_id=strategy_id, since=since, until=until)


def activity_by_strategy(
    session: Session, strategy_ids: Collection[int], *, since: dt.datetime
) -> dict[int, tuple[int, int, int]]:
    """strategy id → (planned, invited, answered) since `since`, for many strategies at once
    (a strategy with none is left out). Invited and answered count by the invitation's time."""
    return FollowupRepository(session).activity_by_strategy(strategy_ids, since)


def answered_since(session: Session, strategy_ids: Collection[int], *, since: dt.datetime) -> list[tuple[int, int]]:
    """(follow-up id, strategy id) of those invited since `since` and answered."""
    return FollowupRepository(session).answered_since(strategy_ids, since)


def count_by_status(session: Session) -> dict[str, int]:
    return FollowupRepository(session).count_by("status")


def count_by_reason(session: Session) -> dict[str, int]:
    """Why follow-ups were refused or ended without an answer (no_consent, fatigue, duplicate, …)."""
    return FollowupRepository(session).count_by("reason")


def replay_contact_activity(session: Session) -> None:
    """Rebuild the customer stats follow-ups and answers keep (last follow-up, last NPS, answers per
    channel) from the follow-up history and the stored answers: part of `recompute-stats`."""
    customers.note_followups(session, FollowupRepository(session).last_invitations())
    customers.replay_responses(session, surveys.response_activity(session))


# A follow-up in these statuses reached, or is about to reach, its customer: it starts a cooldown.
_COOLING = (
    FollowupStatus.PLANNED,
    FollowupStatus.INVITED,
    FollowupStatus.REMINDED,
    FollowupStatus.RESPONDED,
    FollowupStatus.EXPIRED,
)


def customers_in_cooldown(session: Session, strategy_id: int, *, since: dt.datetime) -> set[int]:
    """The customers a strategy followed up since `since` (not those it suppressed or could not reach)."""
    return FollowupRepository(session).customers_since(strategy_id, since, _COOLING)


def awaiting_invite(
    session: Session, strategy_id: int, customer_ids: Collection[int] | None
) -> list[tuple[int, int, int | None]]:
    """(follow-up, customer, event) of this strategy's follow-ups planned and not yet sent (to
    these customers, or to anyone: None), locked until the transaction ends."""
    rows = FollowupRepository(session).awaiting_invite(strategy_id, customer_ids)
    return [(row.id, row.customer_id, row.event_id) for row in rows]


def customers_with_run(session: Session, strategy_id: int, run_key: str) -> set[int]:
    """The customers this strategy has a follow-up of this run for (planned, sent or suppressed)."""
    return FollowupRepository(session).customers_with_run(strategy_id, run_key)


def supersede(session: Session, followup_ids: Collection[int], *, reason: str, now: dt.datetime) -> None:
    """End follow-ups not yet sent, suppressed with `reason`, their contacts given back."""
    repo = FollowupRepository(session)
    for followup_id in sorted(followup_ids):
        followup = repo.get(followup_id)
        if followup is not None and followup.status == FollowupStatus.PLANNED:
            close(session, followup, status=FollowupStatus.SUPPRESSED, reason=reason, now=now)


def plan_of(followup: Followup) -> FollowupPlan:
    """The plan a follow-up was given when it was planned (its strategy version's choices)."""
    return FollowupPlan.model_validate(followup.plan)
