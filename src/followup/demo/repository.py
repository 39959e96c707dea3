"""Read-only counts over the whole database for the demo's summary.

The demo stands above every domain (like the CLI), so it reads their tables here, in one place,
rather than adding a count to each domain for a report only the demo prints.
"""

from __future__ import annotations

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from followup.models import Case, ContactPoint, Event, Followup, FollowupHistory, Message, RewardEntry


class DemoCounts:
    def __init__(self, session: Session) -> None:
        self.session = session

    def events_by_type(self) -> dict[str, int]:
        rows = self.session.execute(select(Event.type, func.count()).group_by(Event.type))
        return {str(kind): int(count) for kind, count in rows}

    def followups_by_status(self) -> dict[str, int]:
        rows = self.session.execute(select(Followup.status, func.count()).group_by(Followup.status))
        return {str(status): int(count) for status, count in rows}

    def refusals_by_reason(self) -> dict[str, int]:
        rows = self.session.execute(
            select(Followup.reason, func.count())
            .where(Followup.status.in_(("suppressed", "failed")))
            .group_by(Followup.reason)
        )
        return {reason or "unknown": count for reason, count in rows}

    def history_actions(self) -> dict[tuple[str, str], int]:
        rows = self.session.execute(
            select(FollowupHistory.action, FollowupHistory.reason, func.count()).group_by(
                FollowupHistory.action, FollowupHistory.reason
            )
        )
        return {(action, reason or ""): count for action, reason, count in rows}

    def followups_sent(self) -> int:
        """Follow-ups whose invitation reached the customer on some channel."""
        return int(
            self.session.scalar(
                select(func.count(distinct(Message.followup_id))).where(
                    Message.step == "invite", Message.status == "sent"
                )
            )
            or 0
        )

    def messages(self) -> dict[tuple[str, str, str], int]:
        """The follow-ups' messages (not the replies outside any follow-up, such as an opt-out's
        confirmation) by channel, step and status."""
        rows = self.session.execute(
            select(Message.channel, Message.step, Message.status, func.count())
            .where(Message.followup_id.is_not(None))
            .group_by(Message.channel, Message.step, Message.status)
        )
        return {(channel, step, status): count for channel, step, status, count in rows}

    def rewards(self) -> tuple[int, int]:
        count, points = self.session.execute(
            select(func.count(), func.coalesce(func.sum(RewardEntry.delta), 0)).where(RewardEntry.delta > 0)
        ).one()
        return int(count), int(points)

    def cases(self) -> dict[tuple[str, str], int]:
        rows = self.session.execute(select(Case.priority, Case.kind, func.count()).group_by(Case.priority, Case.kind))
        return {(priority, kind): count for priority, kind, count in rows}

    def dead_contacts(self) -> dict[tuple[str, str], int]:
        """Contact points a provider said were dead, by kind and status."""
        rows = self.session.execute(
            select(ContactPoint.kind, ContactPoint.status, func.count())
            .where(ContactPoint.status != "valid")
            .group_by(ContactPoint.kind, ContactPoint.status)
        )
        return {(str(kind), str(status)): int(count) for kind, status, count in rows}
