from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator, model_validator

from followup.channels import capabilities
from followup.customers.schemas import CustomerSample, Locale, check_time_zone
from followup.kernel.durations import Duration
from followup.kernel.schemas import Schema
from followup.privacy.enums import MAX_CHANNELS, ChannelName
from followup.rules.tree import MAX_DEPTH, RuleNode, depth
from followup.strategies.schedule import check_cron

# An event older than this when it arrives is a backfill: it is recorded and contacts nobody.
MAX_EVENT_AGE = dt.timedelta(days=3)

# A proactive strategy's period: long enough to spread over, short enough to be a cadence.
MIN_CADENCE = dt.timedelta(days=7)
MAX_CADENCE = dt.timedelta(days=366)

StrategyKind = Literal["event", "periodic", "proactive"]
EventType = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$", max_length=64)]
Key = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class Trigger(Schema):
    event_types: list[EventType] = Field(min_length=1, max_length=50)
    match: RuleNode | None = Field(
        default=None, description="a rule over the event's own fields (event.*) the event must also meet"
    )
    first_time: bool = Field(
        default=False,
        description="only the customer's first event that meets event_types and match, among all stored",
    )

    @field_validator("match")
    @classmethod
    def _depth(cls, match: RuleNode | None) -> RuleNode | None:
        if match is not None and depth(match) > MAX_DEPTH:
            raise ValueError(f"the match rule is nested deeper than {MAX_DEPTH} levels")
        return match


class Schedule(Schema):
    """When a periodic strategy fires: a five-field cron expression on the wall clock of a zone."""

    cron: str = Field(max_length=100, examples=["0 10 1 * *"])
    time_zone: str = Field(max_length=64, examples=["Asia/Shanghai"])

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value)

    @field_validator("time_zone", mode="before")
    @classmethod
    def _zone(cls, value: object) -> object:
        return check_time_zone(value) if isinstance(value, str) else value


class Owner(Schema):
    """The account manager a proactive follow-up comes from: the email's From name and Reply-To."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f-\x9f]*$", examples=["Wang Fang"])
    email: str = Field(
        max_length=254,
        pattern=r"^[^@\s\x00-\x1f\x7f-\x9f\"<>,;]+@[^@\s\x00-\x1f\x7f-\x9f\"<>,;]+\.[^@\s\x00-\x1f\x7f-\x9f\"<>,;]+$",
        examples=["wang.fang@wallet.example"],
    )


class MessageTemplate(Schema):
    """The words of a strategy's message in one locale: Jinja2 in a sandbox (see docs/strategies.md)."""

    subject: str = Field(min_length=1, examples=["{{ customer.attributes.name }}，本月的钱包小结"])
    body: str = Field(min_length=1, examples=["本月你用钱包支付了 {{ stats.volume_30d | money('CNY') }}"])


class Variant(Schema):
    """One arm of an experiment: its share of customers and, optionally, its own words and survey."""

    key: Key
    weight: float = Field(gt=0, le=1_000_000, description="its share: weight over the sum of the weights")
    message: dict[Locale, MessageTemplate] | None = Field(default=None, description="default: the strategy's")
    survey: Key | None = Field(default=None, description="default: the strategy's survey")


# `"channels": "auto"` chooses among these, in this order of fallback, those installed here.
AUTO_CHANNELS: tuple[str, ...] = (capabilities.PUSH, capabilities.SMS, capabilities.EMAIL, capabilities.INAPP)


class AutoChannels(Schema):
    """The personal channel: per customer, one of these is chosen (preference, then consent and
    reachability, then what has worked for customers like them); the others stay as fallbacks."""

    auto: list[ChannelName] = Field(min_length=1, max_length=MAX_CHANNELS)

    @field_validator("auto")
    @classmethod
    def _unique(cls, channels: list[str]) -> list[str]:
        if len(set(channels)) != len(channels):
            raise ValueError("each channel may appear once")
        return channels


class CascadeStep(Schema):
    """A step of a timed cascade: this channel, only if the step before was not opened (or the
    follow-up not answered) within the time given, counted from the step before."""

    channel: ChannelName
    if_not_opened_within: Duration | None = None
    if_not_answered_within: Duration | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> CascadeStep:
        if self.if_not_opened_within is not None and self.if_not_answered_within is not None:
            raise ValueError("give one of if_not_opened_within and if_not_answered_within, not both")
        wait = self.if_not_opened_within or self.if_not_answered_within
        if wait is not None and not dt.timedelta(minutes=1) <= wait <= dt.timedelta(days=30):
            raise ValueError("a cascade step waits between one minute and 30 days")
        return self

    @property
    def wait(self) -> tuple[str, int] | None:
        """("opened" | "answered", seconds), or None for a step that follows only on a refusal."""
        if self.if_not_opened_within is not None:
            return ("opened", int(self.if_not_opened_within.total_seconds()))
        if self.if_not_answered_within is not None:
            return ("answered", int(self.if_not_answered_within.total_seconds()))
        return None


def _name(step: str | CascadeStep) -> str:
    return step if isinstance(step, str) else step.channel


def _channels_form(value: object) -> str:
    if isinstance(value, dict | AutoChannels):
        return "object"
    return "list" if isinstance(value, list) else "auto"


# A list (the cascade), "auto", or {"auto": [...]}: told apart by their form, so an error speaks of
# the form the client used.
Channels = Annotated[
    Annotated[list[ChannelName | CascadeStep], Tag("list")]
    | Annotated[Literal["auto"], Tag("auto")]
    | Annotated[AutoChannels, Tag("object")],
    Discriminator(_channels_form),
]


class RewardSpec(Schema):
    points: int = Field(ge=1, le=1_000_000)


class StrategyCreate(Schema):
    key: Key
    # Its length and characters are checked on write against the settings
    # (strategies.check_strategy_limits), so a name stored under looser limits still reads.
    name: str | None = None
    kind: StrategyKind
    status: Literal["active", "paused"] = "active"
    trigger: Trigger | None = None
    schedule: Schedule | None = Field(
        default=None, validate_default=True, description="periodic strategies: when each wave fires"
    )
    audience: RuleNode | None = None
    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    holdout_percent: float = Field(default=0.0, ge=0.0, le=100.0)
    delay: Duration = dt.timedelta(0)
    channels: Channels = Field(
        description=(
            "the channels in order of preference (a cascade); or the personal channel: `auto` "
            "(push, sms, email, inapp: those installed) or {`auto`: [...]}, chosen per customer"
        ),
    )
    survey: Key
    reward: RewardSpec | None = None
    remind_after: Duration | None = None
    expire_after: Duration = dt.timedelta(days=7)
    recontact_days: int = Field(default=30, ge=0, le=3650)
    max_per_wave: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="periodic: follow-ups per wave at most; proactive: per hourly sweep",
    )
    cooldown_days: int = Field(
        default=0, ge=0, le=3650, description="periodic: days after a wave of this strategy reached a customer"
    )
    spread: Duration = Field(
        default=dt.timedelta(0), description="periodic: a wave's follow-ups are spread evenly over this time"
    )
    cadence: Duration | None = Field(
        default=None,
        validate_default=True,
        description="proactive: each customer in the audience is followed up once per period of this length",
    )
    message: dict[Locale, MessageTemplate] | None = Field(
        default=None,
        description="the message's subject and text per locale, as templates; the survey's own words when left out",
    )
    variants: list[Variant] | None = Field(
        default=None,
        min_length=2,
        max_length=10,
        description="an experiment: each customer sticks to one variant, drawn by the weights",
    )
    owner: Owner | None = Field(
        default=None, description="the email comes from this person: their name as From, their address as Reply-To"
    )
    debounce: Duration | None = Field(
        default=None,
        description="event: one follow-up for a burst of matching events of a customer, sent this long "
        "after the last of them (the last wins)",
    )
    call_queue: str = Field(
        default="calls",
        pattern=r"^[a-z][a-z0-9_-]{0,31}$",
        description="the `phone` channel: the queue whose agents call these customers",
    )
    max_call_attempts: int = Field(
        default=3, ge=1, le=10, description="the `phone` channel: calls not answered before the next channel or expiry"
    )
    security_check: bool = Field(
        default=False,
        description='event: a check on the customer\'s own account, such as "Was this you?" after a new '
        "sign-in: a `service` message (consent given unless withdrawn), sent at any hour, never held out "
        "or held by an open security case, and outside the fatigue budget (it neither spends it nor is "
        "refused by it); it asks about every event it follows, so `recontact_days` must be 0",
    )
    max_event_age: Duration = Field(
        default=MAX_EVENT_AGE,
        description="event: an event older than this when it arrives contacts nobody (reason stale_event)",
    )

    @field_validator("trigger")
    @classmethod
    def _trigger_for_events(cls, trigger: Trigger | None, info: ValidationInfo) -> Trigger | None:
        kind = info.data.get("kind")
        if trigger is not None and kind in ("periodic", "proactive"):
            raise ValueError(f"a {kind} strategy has no trigger; only event strategies do")
        return trigger

    @field_validator("schedule")
    @classmethod
    def _schedule_for_periodic(cls, schedule: Schedule | None, info: ValidationInfo) -> Schedule | None:
        kind = info.data.get("kind")
        if kind == "periodic" and schedule is None:
            raise ValueError(
                "a periodic strategy needs a schedule, e.g. {'cron': '0 10 1 * *', 'time_zone': 'Asia/Shanghai'}"
            )
        if kind in ("event", "proactive") and schedule is not None:
            raise ValueError(f"a {kind} strategy has no schedule; only periodic strategies do")
        return schedule

    @field_validator("cadence")
    @classmethod
    def _cadence(cls, cadence: dt.timedelta | None, info: ValidationInfo) -> dt.timedelta | None:
        kind = info.data.get("kind")
        if kind == "proactive" and cadence is None:
            raise ValueError(
                "a proactive strategy needs a cadence, e.g. 'P90D': everyone in the audience once per 90 days"
            )
        if kind != "proactive" and cadence is not None:
            raise ValueError(f"a {kind} strategy has no cadence; only proactive strategies do")
        if cadence is not None and not MIN_CADENCE <= cadence <= MAX_CADENCE:
            raise ValueError("cadence must be between P7D and P366D")
        return cadence

    @field_validator("debounce")
    @classmethod
    def _debounce(cls, debounce: dt.timedelta | None, info: ValidationInfo) -> dt.timedelta | None:
        if debounce is None:
            return None
        kind = info.data.get("kind")
        if kind != "event":
            raise ValueError(f"a {kind} strategy has no debounce; only event strategies do")
        if not dt.timedelta(minutes=1) <= debounce <= dt.timedelta(days=7):
            raise ValueError("debounce must be between PT1M and P7D")
        return debounce

    @field_validator("max_event_age")
    @classmethod
    def _max_event_age(cls, age: dt.timedelta) -> dt.timedelta:
        if not dt.timedelta(hours=1) <= age <= dt.timedelta(days=365):
            raise ValueError("max_event_age must be between PT1H and P365D")
        return age

    @field_validator("variants")
    @classmethod
    def _unique_variants(cls, variants: list[Variant] | None) -> list[Variant] | None:
        if variants is not None and len({variant.key for variant in variants}) != len(variants):
            raise ValueError("each variant needs its own key")
        return variants

    @field_validator("channels")
    @classmethod
    def _unique_channels(
        cls, channels: list[str | CascadeStep] | str | AutoChannels
    ) -> list[str | CascadeStep] | str | AutoChannels:
        if isinstance(channels, list):
            if not 1 <= len(channels) <= MAX_CHANNELS:
                raise ValueError(f"list between 1 and {MAX_CHANNELS} channels")
            names = [_name(step) for step in channels]
            if len(set(names)) != len(names):
                raise ValueError("each channel may appear once; the order is the order of preference")
            first = channels[0]
            if isinstance(first, CascadeStep) and first.wait is not None:
                raise ValueError("the first channel is tried at once: only the later steps wait for a condition")
        return channels

    @property
    def channel_list(self) -> tuple[str, ...]:
        """The channels in order: those listed, or those the personal channel chooses among."""
        if isinstance(self.channels, AutoChannels):
            return tuple(self.channels.auto)
        if self.channels == "auto":
            return AUTO_CHANNELS
        return tuple(_name(step) for step in self.channels)

    @property
    def channel_waits(self) -> tuple[tuple[str, int] | None, ...] | None:
        """For a timed cascade, each step's condition ("opened" | "answered", seconds) or None;
        None when no step waits for one."""
        if not isinstance(self.channels, list):
            return None
        waits = tuple(step.wait if isinstance(step, CascadeStep) else None for step in self.channels)
        return waits if any(wait is not None for wait in waits) else None

    @property
    def auto_channel(self) -> bool:
        """Whether the channel is chosen per customer (the personal channel)."""
        return not isinstance(self.channels, list)

    @field_validator("audience")
    @classmethod
    def _depth(cls, audience: RuleNode | None) -> RuleNode | None:
        if audience is not None and depth(audience) > MAX_DEPTH:
            raise ValueError(f"the audience rule is nested deeper than {MAX_DEPTH} levels")
        return audience

    @model_validator(mode="after")
    def _check(self) -> StrategyCreate:
        if self.kind == "event" and self.trigger is None:
            raise ValueError("an event strategy needs a trigger with event_types")
        if self.security_check and self.kind != "event":
            raise ValueError("security_check is for event strategies: a check asks about the event that just happened")
        if self.security_check and self.recontact_days != 0:
            raise ValueError("a security check asks about every event it follows: set recontact_days to 0")
        if self.kind != "event" and self.trigger is not None:
            raise ValueError(f"a {self.kind} strategy has no trigger; only event strategies do")
        if self.kind == "periodic" and self.schedule is None:
            raise ValueError(
                "a periodic strategy needs a schedule: {'cron': '0 10 1 * *', 'time_zone': 'Asia/Shanghai'}"
            )
        if self.kind != "periodic" and self.schedule is not None:
            raise ValueError(f"a {self.kind} strategy has no schedule; only periodic strategies do")
        if self.spread < dt.timedelta(0):
            raise ValueError("spread must not be negative")
        if self.delay < dt.timedelta(0) or self.delay > dt.timedelta(days=30):
            raise ValueError("delay must be between PT0S and P30D")
        if self.expire_after < dt.timedelta(hours=1) or self.expire_after > dt.timedelta(days=90):
            raise ValueError("expire_after must be between PT1H and P90D")
        if self.remind_after is not None and not dt.timedelta(minutes=10) <= self.remind_after < self.expire_after:
            raise ValueError("remind_after must be at least PT10M and shorter than expire_after")
        return self


class StrategyOut(StrategyCreate):
    id: int
    version: int
    next_run_at: dt.datetime | None = Field(
        description="periodic: when the next wave fires; proactive: the next sweep (hourly)"
    )
    created_at: dt.datetime
    updated_at: dt.datetime


class StrategyUpdate(Schema):
    status: Literal["active", "paused"]


class SegmentCreate(Schema):
    """A named audience over `customer.*` (no `event.*`: a segment is found in the database)."""

    key: Key
    # Length and characters checked on write against the settings, like a strategy's name.
    name: str = Field(min_length=1)
    rule: RuleNode

    @field_validator("rule")
    @classmethod
    def _depth(cls, rule: RuleNode) -> RuleNode:
        if depth(rule) > MAX_DEPTH:
            raise ValueError(f"the rule is nested deeper than {MAX_DEPTH} levels")
        return rule


class SegmentUpdate(Schema):
    """Fields left out are kept."""

    name: str | None = Field(default=None, min_length=1)
    rule: RuleNode | None = None

    @field_validator("rule")
    @classmethod
    def _depth(cls, rule: RuleNode | None) -> RuleNode | None:
        if rule is not None and depth(rule) > MAX_DEPTH:
            raise ValueError(f"the rule is nested deeper than {MAX_DEPTH} levels")
        return rule


class SegmentOut(SegmentCreate):
    version: int
    used_by: list[str] = Field(description="strategies (`strategy:<key>`) and segments (`segment:<key>`) naming it")
    created_at: dt.datetime
    updated_at: dt.datetime


class SegmentPreview(Schema):
    count: int
    by_locale: dict[str, int]
    sample: list[CustomerSample] = Field(description="at most 20, the first by the order they became customers")


class WaveOut(Schema):
    """One wave of a periodic strategy and what became of its audience."""

    fired_at: dt.datetime = Field(description="the schedule's firing this wave belongs to")
    run_at: dt.datetime = Field(description="when a worker planned it")
    strategy_version: int
    missed: int = Field(description="earlier firings this wave caught up for (a worker was down)")
    audience: int = Field(description="customers the audience selected")
    in_cooldown: int = Field(description="of those, left out: followed up by this strategy within cooldown_days")
    sampled: int = Field(description="drawn by sample_rate from the rest")
    capped: int = Field(description="drawn but left out by max_per_wave")
    planned: int = Field(description="follow-ups planned")
    suppressed: int = Field(description="follow-ups the contact policy or the holdout suppressed")


class PreviewEvent(Schema):
    """An event for a template to speak of in a preview (as `event.*`)."""

    type: EventType = "payment.succeeded"
    event_id: str = Field(default="preview", max_length=128)
    amount: int | None = Field(default=None, ge=0, le=10**15)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    attributes: dict[str, str | int | float | bool | None] = Field(default_factory=dict, max_length=50)
    occurred_at: dt.datetime | None = None


class MessagePreviewRequest(Schema):
    customer_id: str = Field(min_length=1, max_length=128)
    event: PreviewEvent | None = Field(
        default=None, description="the event the message is about; leave out for periodic and proactive strategies"
    )


class MessagePreview(Schema):
    customer_id: str
    variant: str | None = Field(default=None, description="the variant this customer sticks to, when there are any")
    locale: str = Field(description="the customer's locale; the template of that locale, else English, else the first")
    subject: str
    body: str


class PreviewDay(Schema):
    date: dt.date
    count: int


class StrategyPreview(Schema):
    """What a strategy would do, planned for real and rolled back: nothing is written."""

    matched: int = Field(description="events that matched (event strategies) or the audience (periodic, proactive)")
    would_contact: int = Field(description="follow-ups the contact policy would allow: what a real run plans")
    refused: dict[str, int] = Field(description="the others, by reason")
    by_channel: dict[str, int] = Field(description="the channel the policy would choose; sums to would_contact")
    by_day: list[PreviewDay] = Field(description="when the invitations would be due (UTC days)")
    sample: list[CustomerSample] = Field(description="at most 20 of the customers it would contact, masked")


class StrategyPreviewRequest(Schema):
    strategy: StrategyCreate
    days: int = Field(default=30, ge=1, le=365, description="event strategies: the stored events of the last N days")


class SavedPreviewRequest(Schema):
    days: int = Field(default=30, ge=1, le=365, description="event strategies: the stored events of the last N days")
