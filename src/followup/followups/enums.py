"""The follow-up's states and timer steps, named once."""

from __future__ import annotations

from enum import StrEnum


class FollowupStatus(StrEnum):
    PLANNED = "planned"
    INVITED = "invited"
    REMINDED = "reminded"
    RESPONDED = "responded"
    EXPIRED = "expired"
    SUPPRESSED = "suppressed"
    FAILED = "failed"


# Still waiting for the customer: an answer may come, a timer may still run.
OPEN_STATUSES = frozenset({FollowupStatus.PLANNED, FollowupStatus.INVITED, FollowupStatus.REMINDED})
# Invited and not answered yet: a reminder or an expiry applies.
AWAITING_ANSWER = frozenset({FollowupStatus.INVITED, FollowupStatus.REMINDED})


class Step(StrEnum):
    """The timer: what the worker does to a follow-up when its `due_at` comes."""

    INVITE = "invite"
    REMIND = "remind"
    EXPIRE = "expire"
    CASCADE = "cascade"  # a timed cascade's next step: sent if the one before was not opened / answered


class Reason(StrEnum):
    """Reasons the follow-up domain itself gives for ending a follow-up (the contact policy names its own)."""

    INTERNAL_ERROR = "internal_error"  # a step broke on stored data or a bug; the follow-up ends alone
    UNREACHABLE = "unreachable"  # the customer or the survey version is gone
    # A call's outcome that ends the follow-up or moves it on (`call_work`).
    NO_ANSWER = "no_answer"  # the calls allowed were made and none was answered
    WRONG_NUMBER = "wrong_number"  # the number is not the customer's
    CALL_REFUSED = "call_refused"  # the customer declined the survey on the phone
    DO_NOT_CALL = "do_not_call"  # the customer asked never to be called


class ChannelReason(StrEnum):
    """Why the personal channel (`"channels": "auto"`) chose a customer's channel; stored in the plan."""

    PREFERENCE = "preference"  # the customer's own preferred_channel, reachable and consented
    ONLY_REACHABLE = "only_reachable"  # the one channel both reachable and consented
    LEARNED = "learned"  # Thompson sampling on what customers of the same value tier answered
    EXPLORE = "explore"  # the exploration floor: a channel at random, so the learning never stops
