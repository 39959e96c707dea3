"""Why the contact policy refuses or holds a follow-up, named once.

The values are stored (follow-up and message reasons) and shown (API, console, demo), so they
never change; a new reason is a new member.
"""

from __future__ import annotations

from enum import StrEnum


class RefusalReason(StrEnum):
    NO_CONSENT = "no_consent"  # reachable on some channel, but without consent there
    UNREACHABLE = "unreachable"  # no address for any of the channels
    FATIGUE = "fatigue"  # the customer's budget across every strategy and channel is spent
    DUPLICATE = "duplicate"  # this strategy reached the customer within its recontact days
    OPEN_SECURITY_CASE = "open_security_case"  # a security concern is being worked on
    HOLDOUT = "holdout"  # in the strategy's control group
    GLOBAL_HOLDOUT = (
        "global_holdout"  # in the slice of customers no strategy contacts (FOLLOWUP_GLOBAL_HOLDOUT_PERCENT)
    )
    NOT_SAMPLED = "not_sampled"  # left out by the strategy's sample rate
    STALE_EVENT = "stale_event"  # the event arrived older than the strategy's max_event_age (a backfill)
    LEFT_AUDIENCE = "left_audience"  # a proactive strategy's customer left its audience before the send
    DEBOUNCED = "debounced"  # a later event of the same burst took its place (the strategy's debounce)


class DeferralReason(StrEnum):
    QUIET_HOURS = "quiet_hours"
