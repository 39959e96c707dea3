"""Planning: a follow-up for every match, planned or suppressed by the contact policy, in bulk.

This runs inside event ingest, so it reads and writes in batches: one policy check for the
batch, one insert of the follow-ups, one of their history, one of the contact reservations.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from sqlalchemy.orm import Session

from followup.config import Settings
from followup.customers import service as customers
from followup.customers.schemas import CustomerSnapshot
from followup.followups import channel_choice
from followup.followups.enums import ChannelReason, FollowupStatus, Step
from followup.followups.repository import FollowupRepository, NewFollowup
from followup.followups.schemas import FollowupPlan, MessageText, PlanItem, PlanStats
from followup.policy import service as policy
from followup.policy.schemas import Decision, PlanningRequest


def plan_followups(
    session: Session,
    items: Sequence[PlanItem],
    *,
    now: dt.datetime,
    settings: Settings,
    snapshots: Mapping[int, CustomerSnapshot] | None = None,
) -> PlanStats:
    """Insert a follow-up for every item: planned when the policy allows, suppressed with the
    reason when it does not. Bulk reads and bulk inserts: this runs inside event ingest."""
    stats = PlanStats()
    if not items:
        return stats
    to_check = [item for item in items if item.preset_reason is None]
    if snapshots is None and any(item.auto_channel for item in to_check):
        snapshots = customers.snapshots(session, {item.customer_id for item in to_check})
    checked = policy.check_planning(
        session,
        [
            PlanningRequest(
                customer_id=i.customer_id,
                strategy_id=i.strategy_id,
                channels=i.channels,
                recontact_days=i.recontact_days,
                send_at=i.send_at,
                auto_channel=i.auto_channel,
                security_check=i.security_check,
            )
            for i in to_check
        ],
        now=now,
        settings=settings,
        snapshots=snapshots,
    )
    personal = _PersonalChannel(session, to_check, checked, snapshots, now=now, settings=settings)
    decisions = iter(checked)
    plans: dict[tuple[object, ...], str] = {}
    rows: list[NewFollowup] = []
    notes: list[tuple[str, str | None]] = []
    chosen: list[tuple[str | None, ChannelReason | None]] = []
    checks: list[bool] = []  # security checks spend no fatigue budget: no reservation
    for item in items:
        decision_reason: str | None
        channel: str | None = None
        channel_reason: ChannelReason | None = None
        if item.preset_reason is not None:
            decision_reason, deferred, send_at = item.preset_reason, None, None
        else:
            decision = next(decisions)
            decision_reason = None if decision.allowed else decision.reason
            deferred, send_at, channel = decision.deferred, decision.send_at, decision.channel
            if decision.options:
                choice = personal.choose(item, decision.options)
                item = item._replace(channels=channel_choice.in_order(choice.channel, item.channels))  # noqa: PLW2901
                channel, channel_reason = choice.channel, choice.reason
        plan = plan_json(item, plans, channel_reason)
        if decision_reason is not None:
            status, next_step, closed_at = FollowupStatus.SUPPRESSED, None, now
        else:
            status, next_step, closed_at = FollowupStatus.PLANNED, Step.INVITE, None
        rows.append(
            NewFollowup(
                strategy_id=item.strategy_id,
                customer_id=item.customer_id,
                event_id=item.event_id,
                event_type=item.event_type,
                event_ref=item.event_ref,
                run_key=item.key(),
                status=status,
                reason=decision_reason,
                plan=plan,
                next_step=next_step,
                due_at=send_at if next_step else None,
                planned_at=now,
                closed_at=closed_at,
            )
        )
        notes.append((decision_reason or "", deferred))
        chosen.append((channel, channel_reason))
        checks.append(item.security_check)

    inserted = FollowupRepository(session).insert_many(rows)
    history: list[tuple[int, dt.datetime, str, str | None, str | None]] = []
    reservations: list[tuple[int, int, int]] = []
    for row, (reason, deferral), (channel, channel_reason), check in zip(rows, notes, chosen, checks, strict=True):
        followup_id = inserted.get((row.strategy_id, row.customer_id, row.run_key))
        if followup_id is None:
            stats.duplicates += 1
            continue
        if reason:
            stats.suppressed += 1
            stats.reasons[reason] = stats.reasons.get(reason, 0) + 1
            history.append((followup_id, now, FollowupStatus.SUPPRESSED, reason, None))
            continue
        stats.planned += 1
        if not check:
            reservations.append((row.customer_id, row.strategy_id, followup_id))
        assert row.due_at is not None  # noqa: S101 - a planned follow-up always has its invite due
        if channel is not None:
            stats.channels[channel] = stats.channels.get(channel, 0) + 1
        day = row.due_at.astimezone(dt.UTC).date()
        stats.days[day] = stats.days.get(day, 0) + 1
        stats.planned_customers.append(row.customer_id)
        detail = f"invite due {row.due_at.isoformat()}"
        if channel_reason is not None:
            detail += f"; channel {channel} ({channel_reason})"
        history.append((followup_id, now, FollowupStatus.PLANNED, None, detail))
        if deferral:
            stats.deferred += 1
            history.append((followup_id, now, "deferred", deferral, None))
    FollowupRepository(session).add_history(history)
    policy.reserve_contacts(session, reservations, now=now)
    return stats


class _PersonalChannel:
    """The personal channel for one planning batch: the evidence read once, and only when some
    customer of the batch needs a choice."""

    def __init__(
        self,
        session: Session,
        items: Sequence[PlanItem],
        decisions: Sequence[Decision],
        snapshots: Mapping[int, CustomerSnapshot] | None,
        *,
        now: dt.datetime,
        settings: Settings,
    ) -> None:
        self.snapshots = snapshots or {}
        self.exploration = settings.channel_exploration
        wanted = [(item, decision) for item, decision in zip(items, decisions, strict=True) if decision.options]
        tiers = {channel_choice.tier_of(self._snapshot(item).value_tier) for item, _ in wanted}
        channels = {channel for _, decision in wanted for channel in decision.options}
        self.evidence = (
            channel_choice.read_evidence(session, tiers, channels, now=now, days=settings.channel_learning_days)
            if wanted
            else {}
        )

    def _snapshot(self, item: PlanItem) -> CustomerSnapshot:
        return self.snapshots[item.customer_id]

    def choose(self, item: PlanItem, options: Sequence[str]) -> channel_choice.ChannelChoice:
        snapshot = self._snapshot(item)
        return channel_choice.choose(
            options,
            preferred=snapshot.preferred_channel,
            tier=channel_choice.tier_of(snapshot.value_tier),
            evidence=self.evidence,
            exploration=self.exploration,
            rng=channel_choice.seeded(item.strategy_id, item.customer_id, item.key()),
        )


def plan_json(item: PlanItem, cache: dict[tuple[object, ...], str], channel_reason: ChannelReason | None) -> str:
    """The plan copied onto the follow-up, as JSON text; the same for every item of one strategy
    version, so it is encoded once per batch and strategy (unless it carries its own event for a
    message template to speak of)."""
    key = (
        item.strategy_key,
        item.channels,
        item.waits,
        item.survey_version_id,
        item.reward_points,
        item.remind_after,
        item.expire_after,
        item.sender_name,
        item.reply_to,
        item.message,
        item.variant,
        item.strategy_version,
        channel_reason,
        item.call_queue,
        item.max_call_attempts,
        item.security_check,
    )
    encoded = None if item.event_context is not None else cache.get(key)
    if encoded is None:
        encoded = FollowupPlan(
            strategy_key=item.strategy_key,
            channels=item.channels,
            waits=item.waits,
            survey_version_id=item.survey_version_id,
            reward_points=item.reward_points,
            remind_after_s=int(item.remind_after.total_seconds()) if item.remind_after else None,
            expire_after_s=int(item.expire_after.total_seconds()),
            sender_name=item.sender_name,
            reply_to=item.reply_to,
            message=(
                {locale: MessageText(subject=subject, body=body) for locale, subject, body in item.message}
                if item.message
                else None
            ),
            event=item.event_context,
            variant=item.variant,
            strategy_version=item.strategy_version,
            channel_reason=channel_reason,
            call_queue=item.call_queue,
            max_call_attempts=item.max_call_attempts,
            security_check=item.security_check,
        ).model_dump_json(exclude_defaults=True)
        if item.event_context is None:
            cache[key] = encoded
    return encoded
