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

from sqlalchemy import text
from sqlalchemy.orm import Session

from followup.config import Settings
from followup.customers import service as customers
from followup.followups.enums import FollowupStatus, Step
from followup.followups.models import Followup, FollowupHistory
from followup.followups.planning import plan_json
from followup.followups.schemas import PlanItem, PlanStats
from followup.kernel.db import BulkStatements
from followup.policy import service as policy
from followup.policy.enums import DeferralReason

_PICKS = "followup_picks"
_PICK_COLUMNS = ("position", "customer_id", "due_at", "deferred", "preset", "detail")


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
    bulk = BulkStatements(session.connection())
    _fill_picks(session, bulk, picks, settings=settings)
    policy.lock_budgets(session, [pick.customer_id for pick in picks if pick.preset_reason is None])
    joins, refusal, params = policy.refusal_sql(
        customer="p.customer_id",
        alias="c",
        customers_sql=f"SELECT customer_id FROM {_PICKS}",  # noqa: S608 - our own table
        channels=template.channels,
        strategy_id=template.strategy_id,
        recontact_days=template.recontact_days,
        now=now,
        settings=settings,
        db_time=bulk.db_time,
    )
    params |= {
        "strategy": template.strategy_id,
        "run_key": template.key(),
        "plan": plan_json(template, {}, None),
        "now": bulk.db_time(now),
    }
    plan_slot = "CAST(:plan AS JSON)" if bulk.postgres else ":plan"
    planned, suppressed = f"'{FollowupStatus.PLANNED}'", f"'{FollowupStatus.SUPPRESSED}'"
    # Table and column names and the policy's expression are our own constants; values are bound.
    session.execute(
        text(
            f"INSERT INTO {Followup.__tablename__} (strategy_id, customer_id, run_key, status, reason, plan, "  # noqa: S608
            "next_step, due_at, planned_at, closed_at) "
            "SELECT :strategy, d.customer_id, :run_key, "
            f"CASE WHEN d.reason IS NULL THEN {planned} ELSE {suppressed} END, d.reason, {plan_slot}, "
            f"CASE WHEN d.reason IS NULL THEN '{Step.INVITE}' END, "
            "CASE WHEN d.reason IS NULL THEN d.due_at END, :now, CASE WHEN d.reason IS NULL THEN NULL ELSE :now END "
            f"FROM (SELECT p.position, p.customer_id, p.due_at, COALESCE(p.preset, {refusal}) AS reason "
            # CROSS JOIN keeps SQLite from walking every customer to find the picks in them.
            f"FROM {_PICKS} p CROSS JOIN {customers.customers_table()} c {joins} WHERE c.id = p.customer_id) d "
            "WHERE TRUE ORDER BY d.position "
            "ON CONFLICT (strategy_id, customer_id, run_key) DO NOTHING"
        ),
        params,
    )
    mine = (
        f"FROM {_PICKS} p CROSS JOIN {Followup.__tablename__} f WHERE f.strategy_id = :strategy "
        "AND f.customer_id = p.customer_id AND f.run_key = :run_key AND f.planned_at = :now"
    )
    keys = {"strategy": params["strategy"], "run_key": params["run_key"], "now": params["now"]}
    history = f"INSERT INTO {FollowupHistory.__tablename__} (followup_id, at, action, reason, detail) "
    session.execute(
        text(
            f"{history}SELECT f.id, :now, f.status, f.reason, CASE WHEN f.status = {planned} THEN p.detail END "
            f"{mine} ORDER BY p.position"
        ),
        keys,
    )
    session.execute(
        text(
            f"{history}SELECT f.id, :now, 'deferred', '{DeferralReason.QUIET_HOURS}', NULL "
            f"{mine} AND f.status = {planned} AND p.deferred = 1 ORDER BY p.position"
        ),
        keys,
    )
    policy.reserve_contacts_from(
        session, f"SELECT f.customer_id, f.strategy_id, f.id, :now {mine} AND f.status = {planned}", keys
    )
    for status, reason, count in session.execute(
        text(f"SELECT f.status, f.reason, COUNT(*) {mine} GROUP BY f.status, f.reason"), keys
    ):
        if status == FollowupStatus.PLANNED:
            stats.planned += int(count)
        else:
            stats.suppressed += int(count)
            stats.reasons[reason] = stats.reasons.get(reason, 0) + int(count)
    stats.duplicates = len(picks) - stats.planned - stats.suppressed
    session.execute(text(f"DROP TABLE {_PICKS}"))
    return stats


def _fill_picks(session: Session, bulk: BulkStatements, picks: Sequence[BulkPick], *, settings: Settings) -> None:
    """The picks as rows of a temporary table, in their order: when each invite is due after quiet
    hours, and the history's words for it. Quiet hours are decided per zone and minute: their
    window is whole minutes, so every send within one minute of one zone is held or not alike."""
    postgres = bulk.postgres
    session.execute(text(f"DROP TABLE IF EXISTS {'pg_temp' if postgres else 'temp'}.{_PICKS}"))
    session.execute(
        text(
            f"CREATE TEMPORARY TABLE {_PICKS} (position INTEGER PRIMARY KEY, customer_id BIGINT NOT NULL UNIQUE, "
            f"due_at {'TIMESTAMP WITH TIME ZONE' if postgres else 'TEXT'}, deferred INTEGER NOT NULL, "
            f"preset VARCHAR(32), detail TEXT){' ON COMMIT DROP' if postgres else ''}"
        )
    )
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
    bulk.insert_values(_PICKS, _PICK_COLUMNS, rows)
