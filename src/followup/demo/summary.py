"""What the demo month left in the database, counted there and printed as tables."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.table import Table

from followup.data_rights import service as data_rights
from followup.demo.people import Staffroom
from followup.demo.repository import DemoCounts
from followup.demo.simulate import AnswerStats
from followup.insights import service as insights
from followup.insights.schemas import FunnelStage, MetricsGroup
from followup.runtime import Runtime
from followup.strategies import service as strategies

STATUS_ORDER = ("planned", "invited", "reminded", "responded", "expired", "suppressed", "failed")
PRIORITY_ORDER = ("security", "high", "normal")
# Why a follow-up left a channel for the strategy's next one, in words; always listed, even at 0.
CASCADE_REASONS = {
    "no_consent": "no consent to that channel",
    "unreachable": "no usable address for that channel",
    "send_failed": "sending failed for good",
    "undelivered": "the carrier could not deliver it",
    "not_opened": "not opened in time (a timed cascade)",
    "not_answered": "not answered in time (a timed cascade)",
}
SYNTHETIC = (
    "Every figure below is synthetic: invented customers, events and answers, played through the real "
    "engine and counted from what it stored. None describes a real wallet."
)


@dataclass(frozen=True)
class RequestSeen:
    kind: str
    status: str
    source: str
    requested_at: dt.datetime
    due_at: dt.datetime
    deadline_at: dt.datetime
    done_at: dt.datetime | None
    overdue: bool


@dataclass(frozen=True)
class StrategyMetrics:
    strategy: str
    total: MetricsGroup
    by_channel: tuple[MetricsGroup, ...]


@dataclass(frozen=True)
class DemoSummary:
    events_by_type: dict[str, int]
    followups_by_status: dict[str, int]
    # Follow-ups the contact policy let through at planning (a `planned` step in their history).
    planned: int
    # Follow-ups whose invitation reached the customer on some channel.
    sent: int
    refusals_by_reason: dict[str, int]
    deferred_for_quiet_hours: int
    # Moves to the strategy's next channel, by the reason the channel was left.
    cascaded_by_reason: dict[str, int]
    messages: dict[tuple[str, str, str], int]
    metrics: tuple[StrategyMetrics, ...]
    # Points each strategy grants per answer (0: no reward), by strategy key.
    reward_points: dict[str, int]
    rewards_granted: int
    points_granted: int
    cases: dict[tuple[str, str], int]
    # queued → accepted → delivered → opened or clicked → answered, per channel.
    funnel: tuple[FunnelStage, ...] = ()
    # Contact points a provider said were dead: (kind, status) → how many.
    dead_contacts: dict[tuple[str, str], int] | None = None
    # Customers' data requests (erasures, exports), newest first, as the operator's queue lists them
    # (without their random ids, so that one seed gives one summary).
    privacy_requests: tuple[RequestSeen, ...] = ()

    @property
    def events(self) -> int:
        return sum(self.events_by_type.values())

    @property
    def followups(self) -> int:
        return sum(self.followups_by_status.values())

    @property
    def cascaded(self) -> int:
        return sum(self.cascaded_by_reason.values())


def collect_summary(runtime: Runtime, strategy_keys: tuple[str, ...]) -> DemoSummary:
    with runtime.read_session() as session:
        counts = DemoCounts(session)
        history = counts.history_actions()
        metrics = []
        for key in strategy_keys:
            summary = insights.metrics_summary(session, strategy_key=key, since=None, until=None, group_by="channel")
            metrics.append(StrategyMetrics(strategy=key, total=summary.total, by_channel=tuple(summary.groups)))
        rewards, points = counts.rewards()
        reward_points = {}
        for key in strategy_keys:
            reward = strategies.describe_strategy(strategies.access_strategy(session, key)).reward
            reward_points[key] = reward.points if reward is not None else 0
        return DemoSummary(
            events_by_type=dict(sorted(counts.events_by_type().items())),
            followups_by_status=counts.followups_by_status(),
            planned=history.get(("planned", ""), 0),
            sent=counts.followups_sent(),
            refusals_by_reason=dict(sorted(counts.refusals_by_reason().items(), key=lambda kv: (-kv[1], kv[0]))),
            deferred_for_quiet_hours=history.get(("deferred", "quiet_hours"), 0),
            cascaded_by_reason={
                **dict.fromkeys(CASCADE_REASONS, 0),
                **{reason: count for (action, reason), count in history.items() if action == "cascaded"},
            },
            messages=dict(sorted(counts.messages().items())),
            metrics=tuple(metrics),
            reward_points=reward_points,
            rewards_granted=rewards,
            points_granted=points,
            cases=dict(sorted(counts.cases().items())),
            funnel=tuple(insights.funnel(session, since=None, until=None, group_by="channel").groups),
            dead_contacts=counts.dead_contacts(),
            privacy_requests=tuple(
                RequestSeen(r.kind, r.status, r.source, r.requested_at, r.due_at, r.deadline_at, r.done_at, r.overdue)
                for r in data_rights.list_requests(
                    session, kind=None, status=None, overdue=False, now=runtime.clock.now(), limit=500, offset=0
                )[0]
            ),
        )


def _n(value: int) -> str:
    return f"{value:,}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _score(value: float | None, count: int) -> str:
    return "–" if value is None else f"{value:+.0f} ({count})" if count else "–"


def render_summary(summary: DemoSummary, console: Console) -> None:
    console.print(SYNTHETIC)
    events = Table(title=f"Events ({_n(summary.events)})", title_justify="left", box=box.SIMPLE_HEAD)
    events.add_column("type")
    events.add_column("events", justify="right")
    for kind, count in sorted(summary.events_by_type.items(), key=lambda kv: -kv[1]):
        events.add_row(kind, _n(count))

    funnel = Table(title=f"Follow-ups ({_n(summary.followups)})", title_justify="left", box=box.SIMPLE_HEAD)
    funnel.add_column("stage")
    funnel.add_column("follow-ups", justify="right")
    funnel.add_row("planned (allowed by the contact policy)", _n(summary.planned))
    funnel.add_row("  of which deferred for quiet hours", _n(summary.deferred_for_quiet_hours))
    funnel.add_row("  moved on to the next channel, because of", _n(summary.cascaded))
    for reason, count in summary.cascaded_by_reason.items():
        funnel.add_row(f"    {CASCADE_REASONS.get(reason, reason)}", _n(count))
    funnel.add_row("sent", _n(summary.sent))
    for status in STATUS_ORDER:
        funnel.add_row(f"now {status}", _n(summary.followups_by_status.get(status, 0)))

    refusals = Table(title="Not contacted, and why", title_justify="left", box=box.SIMPLE_HEAD)
    refusals.add_column("reason")
    refusals.add_column("follow-ups", justify="right")
    for reason, count in summary.refusals_by_reason.items():
        refusals.add_row(reason, _n(count))

    messages = Table(title="Messages", title_justify="left", box=box.SIMPLE_HEAD)
    messages.add_column("channel")
    messages.add_column("step")
    messages.add_column("status")
    messages.add_column("messages", justify="right")
    for (channel, step, status), count in summary.messages.items():
        messages.add_row(channel, step, status, _n(count))

    metrics = Table(title="Answers per strategy and channel", title_justify="left", box=box.SIMPLE_HEAD)
    metrics.add_column("strategy", no_wrap=True)
    metrics.add_column("channel")
    for name in ("invited", "answered", "rate", "NPS (n)", "CSAT (n)"):
        metrics.add_column(name, justify="right", no_wrap=True)
    for item in summary.metrics:
        rows = [(item.strategy, "all", item.total)] + [("", g.key or "–", g) for g in item.by_channel]
        for strategy, channel, group in rows:
            metrics.add_row(
                strategy,
                channel,
                _n(group.invited),
                _n(group.responded),
                _pct(group.response_rate),
                _score(group.nps, group.nps_count),
                f"{group.csat:.0f}% ({group.csat_count})" if group.csat is not None else "–",
            )

    rewards = Table(title="Rewards and cases", title_justify="left", box=box.SIMPLE_HEAD)
    rewards.add_column("what")
    rewards.add_column("count", justify="right")
    for key, points in summary.reward_points.items():
        rewards.add_row(f"{key}: points per answer", _n(points) if points else "no reward")
    rewards.add_row("rewards granted", _n(summary.rewards_granted))
    rewards.add_row("points granted", _n(summary.points_granted))
    by_priority: dict[str, int] = {}
    for (priority, _kind), count in summary.cases.items():
        by_priority[priority] = by_priority.get(priority, 0) + count
    for priority in PRIORITY_ORDER:
        rewards.add_row(f"cases, priority {priority}", _n(by_priority.get(priority, 0)))

    channels = Table(title="Funnel per channel (invitations and reminders)", title_justify="left", box=box.SIMPLE_HEAD)
    channels.add_column("channel")
    for name in ("queued", "accepted", "delivered", "opened or clicked", "answered"):
        channels.add_column(name, justify="right")
    for stage in summary.funnel:
        channels.add_row(
            stage.key or "–",
            _n(stage.queued),
            _n(stage.accepted),
            _n(stage.delivered) if stage.key == "sms" else "no receipts",
            _n(stage.opened),
            _n(stage.answered),
        )
    for (kind, status), count in sorted((summary.dead_contacts or {}).items()):
        channels.caption = (channels.caption or "") + f"{kind.replace('_', ' ')} marked {status}: {count:,}. "

    for table in (events, funnel, refusals, messages, channels, metrics, rewards, _privacy_table(summary)):
        console.print(table)


def _privacy_table(summary: DemoSummary) -> Table:
    """The operator's queue at the month's end: exports by how they were asked, and every erasure
    with when it was asked, when it was due, its legal deadline and when it was done."""
    requests = summary.privacy_requests
    erasures = [r for r in requests if r.kind == "erasure"]
    exports = len(requests) - len(erasures)
    table = Table(
        title=f"Privacy requests: {_n(len(erasures))} erasures, {_n(exports)} exports",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for column in ("erasure asked from", "asked", "due", "deadline", "done"):
        table.add_column(column)
    for row in erasures[:12]:
        table.add_row(
            row.source,
            f"{row.requested_at:%m-%d %H:%M}",
            f"{row.due_at:%m-%d %H:%M}",
            f"{row.deadline_at:%m-%d}" + (" overdue" if row.overdue else ""),
            f"{row.done_at:%m-%d %H:%M}" if row.done_at else row.status,
        )
    table.caption = (
        "The worker erases a request once due (asked plus the demo's 2-day grace); each must be done by "
        "its deadline (15 days)."
    )
    return table


def render_answers(answers: AnswerStats, console: Console) -> None:
    """What the simulated customers did, including the answers the engine turned away, and why."""
    console.print(
        f"Simulated customers gave {answers.ratings:,} ratings and {answers.comments:,} comments "
        f"({answers.security_comments:,} about security). Ratings that came too late, turned away as a real "
        f"customer's would be: {answers.too_late:,} — {answers.late_after_expiry:,} after the follow-up had "
        f"expired, {answers.late_already_answered:,} through a second message (a reminder, or another "
        "channel) of a follow-up already answered."
    )
    console.print(
        f"By SMS: {answers.sms_replies:,} ratings given as a reply, {answers.sms_opt_outs:,} opt-outs by "
        f"keyword (STOP, 退订). Push notifications opened, as the app reported: {answers.push_opened:,}."
    )
    console.print(
        f'"Was this you?" after a sign-in on a new device: {answers.not_me:,} "not me" answers, each of which '
        "opened a security case at once and told the risk team."
    )
    console.print(
        f"On their privacy page: {answers.exports:,} customers downloaded their data, {answers.withdrawals:,} "
        f"withdrew a consent, {answers.erasures_asked:,} asked for their data to be deleted."
    )


def render_people(people: Staffroom, console: Console) -> None:
    """What the agents did with the calls and cases, and what the risk team's endpoint heard."""
    stats, heard = people.stats, people.desk.heard
    calls = ", ".join(f"{outcome.replace('_', ' ')} {count:,}" for outcome, count in sorted(stats.calls.items()))
    csat = stats.resurvey_csat
    mean = f"{sum(csat) / len(csat):.1f}" if csat else "–"
    console.print(
        f"Agents made {sum(stats.calls.values()):,} calls for the top-tier strategy ({calls or 'none'}); "
        f'they replied to {stats.replies:,} cases and resolved {stats.resolved:,}. Asked "did we solve it?", '
        f"customers said yes {stats.resurvey_yes:,} times (mean CSAT {mean}) and no {stats.resurvey_no:,} "
        "times, which reopened those cases."
    )
    concerns = heard.by_type.get("security.concern", 0)
    console.print(
        f"The risk team's webhook endpoint heard {concerns:,} security concerns, every signature checked "
        f"({heard.bad_signatures:,} did not match)."
    )
