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
from typing import Any

from sqlalchemy.orm import Session

from followup.config import Settings
from followup.followups.planning import plan_json
from followup.followups.repository import PickTable
from followup.followups.schemas import PlanItem, PlanStats
from followup.kernel.db import BulkStatements
from followup.policy import service as policy
from followup.policy.enums import DeferralReason

# One customer of a bulk plan: (customer id, when their invite is due before quiet hours, their
# time zone, the reason they are left out before the policy is asked — a holdout — or None). A
# plain tuple: a wave hands over tens of thousands of them.
BulkPick = tuple[int, dt.datetime, str, str | None]


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
    policy.lock_budgets(session, [row[0] for row in rows if row[4] is None])  # no preset reason
    joins, refusal, params = policy.refusal_sql(
        session,
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
    written = table.insert_followups(plan_json(template, {}, None), joins=joins, refusal=refusal, params=params | keys)
    deferred = any(row[2] for row in rows)
    stats.deferred = table.insert_history(keys, deferral=DeferralReason.QUIET_HOURS if deferred else None)
    # Every planned follow-up, and only those, holds one reservation.
    stats.planned = policy.reserve_contacts_from(session, table.planned_reservations_sql(), keys)
    stats.suppressed = written - stats.planned
    if stats.suppressed:
        stats.reasons = table.suppression_reasons(keys)
    stats.duplicates = len(picks) - written
    table.drop()
    return stats


_UNSEEN: Any = object()


def _pick_rows(bulk: BulkStatements, picks: Sequence[BulkPick], *, settings: Settings) -> list[tuple[Any, ...]]:
    """The picks as the table's rows, in customer order (the order the follow-ups are written in,
    so each index grows at its end): when each invite is due after quiet hours, whether quiet hours
    held it, the history's words for it, and the preset reason. Quiet hours are decided per zone and
    minute: their window is whole minutes, so every send within one minute of one zone is held or
    not alike."""
    held: dict[str, tuple[Any, int, str] | None] = {}  # zone and minute → the held invite's columns
    fast = not bulk.postgres  # on SQLite a UTC time is stored as its first 26 ISO characters
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    for customer_id, send_at, time_zone, preset_reason in picks:
        # One ISO form gives the minute, the stored time and the history's words alike.
        iso = send_at.isoformat(" ", "microseconds")
        key = f"{time_zone} {iso[:16]}{iso[26:]}"
        release_row = held.get(key, _UNSEEN)
        if release_row is _UNSEEN:
            minute = send_at.replace(second=0, microsecond=0)
            release = policy.defer_for_quiet_hours(minute, time_zone=time_zone, settings=settings)
            release_row = held[key] = (
                None if release is None else (bulk.db_time(release), 1, f"invite due {release.isoformat()}")
            )
        if release_row is not None:
            append((customer_id, *release_row, preset_reason))
        elif fast and iso[26:] == "+00:00":
            shown = iso[11:19] if iso[20:26] == "000000" else iso[11:26]  # as isoformat() shows it
            append((customer_id, iso[:26], 0, f"invite due {iso[:10]}T{shown}+00:00", preset_reason))
        else:
            append((customer_id, bulk.db_time(send_at), 0, f"invite due {send_at.isoformat()}", preset_reason))
    rows.sort()
    return rows
