"""The personal channel: which channel one customer is asked on, when a strategy says `"channels": "auto"`.

In order: the customer's stated preference, if it is reachable and consented; the only channel
that is, if there is one; otherwise what has worked for customers like them — Thompson sampling on
the response rates of their value tier per channel, over the follow-ups invited in the last
`channel_learning_days` — except that a share of `channel_exploration` goes to a channel at
random, so a channel that once did badly keeps being measured. The learning is the follow-ups
themselves (invited on a channel, answered or not): it moves as answers come in, with no counter of
its own to drift.

The draw is seeded by the strategy, the customer and the run, so a preview and the real run on the
same data choose the same channels, and a retried batch chooses as the first try did.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

from sqlalchemy.orm import Session

from followup.followups.enums import ChannelReason
from followup.followups.repository import FollowupRepository

# (value tier, channel) → (invited, answered)
Evidence = Mapping[tuple[str, str], tuple[int, int]]


class ChannelChoice(NamedTuple):
    channel: str
    reason: ChannelReason


def tier_of(value_tier: str | None) -> str:
    return value_tier or ""


def choose(
    options: Sequence[str],
    *,
    preferred: str | None,
    tier: str,
    evidence: Evidence,
    exploration: float,
    rng: random.Random,
) -> ChannelChoice:
    """One customer's channel among `options` (reachable and consented, at least one), and why."""
    if preferred is not None and preferred in options:
        return ChannelChoice(preferred, ChannelReason.PREFERENCE)
    if len(options) == 1:
        return ChannelChoice(options[0], ChannelReason.ONLY_REACHABLE)
    if rng.random() < exploration:
        return ChannelChoice(rng.choice(list(options)), ChannelReason.EXPLORE)
    best, best_draw = options[0], -1.0
    for channel in options:
        invited, answered = evidence.get((tier, channel), (0, 0))
        # Beta(1 + answered, 1 + unanswered): the posterior of the response rate from a flat prior.
        draw = rng.betavariate(1 + answered, 1 + max(invited - answered, 0))
        if draw > best_draw:
            best, best_draw = channel, draw
    return ChannelChoice(best, ChannelReason.LEARNED)


def seeded(strategy_id: int, customer_id: int, run_key: str) -> random.Random:
    digest = hashlib.sha256(f"channel|{strategy_id}|{customer_id}|{run_key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 - a draw, not a secret


def read_evidence(
    session: Session, tiers: Collection[str], channels: Collection[str], *, now: dt.datetime, days: int
) -> Evidence:
    """What customers of these tiers answered on these channels lately: one grouped query."""
    return FollowupRepository(session).responses_by_tier_and_channel(tiers, channels, now - dt.timedelta(days=days))


def in_order(chosen: str, channels: Sequence[str]) -> tuple[str, ...]:
    """The plan's channels with the chosen one first; the rest stay, in order, as fallbacks."""
    return (chosen, *(channel for channel in channels if channel != chosen))
