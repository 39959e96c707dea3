"""Planning in the database: a wave's follow-ups decided and written by a handful of statements.

`planning.plan_followups` decides each follow-up in Python; a periodic wave may hold a million
customers, so when every item shares one plan (one strategy, one run, no personal channel, no
variants, no event) the wave goes here instead. Python still does what only it can — the sticky
draw and the holdouts (already in the items), quiet hours per customer's zone and minute — and
hands the rows to a temporary table; the contact policy's refusals are one SQL expression
(`policy.refusal_sql`, the same checks in the same order) and the follow-ups, their history and
the contact reservations are each one `INSERT … SELECT`. The rows written are those
`plan_followups` writes for the same items, data and clock; a test holds the two to that.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from followup.config import Settings
from followup.customers import service as customers
from followup.followups.enums import FollowupStatus
from followup.followups.planning import plan_json
from followup.followups.repository import PickTable
from followup.followups.schemas import PlanItem, PlanStats
from followup.kernel.db import BulkStatements
from followup.policy import service as policy
from followup.policy.enums import DeferralReason


class BulkPick(NamedTuple):
    """One customer of a bulk plan: when their invite is due (before quiet hours), their zone, and
    the reason they are left out before the policy is asked (a holdout), if any."""

    customer_id: int
    send_at: dt.datetime
    time_zone: str
    preset_reason: str | None


def plan_followups_in_bulk(
    session: Session, template: PlanItem, picks: Sequence[BulkPick], *, now: dt.datetime, settings: Settings
) -> PlanStats:
    """Plan a follow-up for every pick, each with the template's plan (its strategy, run key,
    channels, survey, words): planned, or suppressed with the policy's reason. Each customer at
    most once; the template names no event, no variant and not the personal channel. The stats
    count planned and suppressed follow-ups and the reasons."""
    stats = PlanStats()
    if not picks:
        return stats
    if template.auto_channel or template.event_context is not None or template.run_key is None:
        raise ValueError("a bulk plan shares one plan: no personal channel, no event, one run")
    table = PickTable(session)
    rows = _pick_rows(table.bulk, picks, settings=settings)
    table.create(rows)
    policy.lock_budgets(session, [pick.customer_id for pick in picks if pick.preset_reason is None])
    joins, refusal, params = policy.refusal_sql(
        customer="p.customer_id",
        alias="c",
        customers_sql=table.customer_ids_sql(),
        channels=template.channels,
        strategy_id=template.strategy_id,
        recontact_days=template.recontact_days,
        now=now,
        settings=settings,
        db_time=table.bulk.db_time,
    )
    keys = table.keys(template.strategy_id, template.key(), now)
    joins = f"{customers.customer_join('c', 'p.customer_id')} {joins}"
    table.insert_followups(plan_json(template, {}, None), joins=joins, refusal=refusal, params=params | keys)
    deferred = any(row[3] for row in rows)
    table.insert_history(keys, deferral=DeferralReason.QUIET_HOURS if deferred else None)
    policy.reserve_contacts_from(session, table.planned_reservations_sql(), keys)
    for status, reason, count in table.outcomes(keys):
        if status == FollowupStatus.PLANNED:
            stats.planned += count
        else:
            stats.suppressed += count
            stats.reasons[reason or ""] = stats.reasons.get(reason or "", 0) + count
    stats.duplicates = len(picks) - stats.planned - stats.suppressed
    table.drop()
    return stats


def _pick_rows(bulk: BulkStatements, picks: Sequence[BulkPick], *, settings: Settings) -> list[tuple[Any, ...]]:
    """The picks as the table's rows, in their order: when each invite is due after quiet hours,
    and the history's words for it. Quiet hours are decided per zone and minute: their window is
    whole minutes, so every send within one minute of one zone is held or not alike."""
    held: dict[tuple[str, dt.datetime], dt.datetime | None] = {}
    rows: list[tuple[Any, ...]] = []
    for position, (customer_id, send_at, time_zone, preset_reason) in enumerate(picks):
        key = (time_zone, send_at.replace(second=0, microsecond=0))
        if key not in held:
            held[key] = policy.defer_for_quiet_hours(key[1], time_zone=time_zone, settings=settings)
        release = held[key]
        due = release or send_at
        rows.append(
            (
                position,
                customer_id,
                bulk.db_time(due),
                1 if release else 0,
                preset_reason,
                f"invite due {due.isoformat()}",
            )
        )
    return rows
