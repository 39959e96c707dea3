"""A synthetic wallet world: customers and a month of their events, the same for the same seed.

Nothing here touches the database. The world also keeps what the engine must not know but the
simulated customers do — who had a payment fail, who was hacked — so that their answers can
depend on what happened to them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers

# The simulated month. Fixed, so that a seed gives the same world on any day it is run; it holds
# the end of summer time in Europe/London (25 October) and America/New_York (1 November).
MONTH_START = dt.datetime(2026, 10, 5, 0, 0, tzinfo=dt.UTC)
DAYS = 30
EVENTS_PER_CUSTOMER_DAY = 1.66
LARGE_TRANSFER = 500_000  # 5,000.00 in minor units: the large-transfer strategy's threshold

# (locale, time zone, weight)
ZONES: tuple[tuple[str, str, float], ...] = (
    ("zh-CN", "Asia/Shanghai", 0.58),
    ("zh-CN", "Asia/Hong_Kong", 0.06),
    ("zh-CN", "Asia/Singapore", 0.04),
    ("zh-CN", "Europe/London", 0.02),
    ("en", "Asia/Singapore", 0.08),
    ("en", "Europe/London", 0.10),
    ("en", "America/New_York", 0.07),
    ("en", "Australia/Sydney", 0.05),
)
TIERS: tuple[tuple[str, float], ...] = (("basic", 0.55), ("silver", 0.25), ("gold", 0.14), ("platinum", 0.05))
STAFF_SHARE = 0.01
# Share of a customer's events by hour of the local day: quiet nights, a lunch and an evening peak.
HOURLY = (
    0.6, 0.3, 0.2, 0.15, 0.15, 0.3, 0.8, 2.0, 3.2, 3.0, 3.2, 4.0,
    5.2, 4.6, 3.4, 3.2, 3.4, 4.0, 5.0, 5.6, 5.2, 4.0, 2.6, 1.4,
)  # fmt: skip
# Monday first: payments peak at the weekend, transfers on weekdays.
WEEKDAY = (0.92, 0.92, 0.95, 0.98, 1.1, 1.3, 1.2)
FEATURES = ("bill_split", "savings_pot", "credit_card_repay", "mobile_topup", "red_packet", "travel_mode")
FAILURE_REASONS = ("insufficient_funds", "bank_declined", "network_timeout", "risk_review", "card_expired")
MERCHANTS = ("food", "grocery", "transport", "retail", "utilities", "entertainment", "travel")


@dataclass(frozen=True)
class SimCustomer:
    customer_id: str
    locale: str
    time_zone: str
    tier: str
    email: str | None
    consents: dict[str, bool] | None
    # How much the customer likes the wallet, 0..1, before anything happens this month.
    mood: float
    # Their account is taken over this month: a new-device login that was not them.
    compromised: bool
    # Their mobile number in E.164 (a few went out of service: the carrier reports them invalid).
    phone: str | None = None
    # The wallet app on their phone: (platform, push token); a few tokens are stale (unregistered).
    device: tuple[str, str] | None = None

    def upsert_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "locale": self.locale,
            "time_zone": self.time_zone,
            "attributes": {"tier": self.tier},
            "value_tier": self.tier,
        }
        if self.email is not None:
            body["email"] = self.email
        if self.phone is not None:
            body["phone"] = self.phone
        if self.consents is not None:
            body["consents"] = {"feedback": self.consents}
        return body


@dataclass(frozen=True)
class Mishap:
    at: dt.datetime
    kind: str  # "payment_failed", "dispute", "takeover"


@dataclass
class World:
    seed: int
    start: dt.datetime
    days: int
    customers: list[SimCustomer]
    events: list[dict[str, Any]]  # sorted by time; each event as the wallet would post it
    event_times: list[dt.datetime]  # the UTC time of each event, same order
    mishaps: dict[str, list[Mishap]] = field(default_factory=dict)

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(days=self.days)

    def events_before(self, start_index: int, until: dt.datetime) -> int:
        """The index of the first event at or after `until`, searching from `start_index`."""
        return bisect_left(self.event_times, until, lo=start_index)

    def recent_mishaps(self, customer_id: str, at: dt.datetime, *, within: dt.timedelta) -> list[Mishap]:
        return [m for m in self.mishaps.get(customer_id, ()) if at - within <= m.at <= at]


def _pick(rng: random.Random, options: tuple[tuple[Any, float], ...]) -> Any:
    return rng.choices([o[0] for o in options], weights=[o[1] for o in options])[0]


def _customer(rng: random.Random, number: int) -> SimCustomer:
    locale, zone = _pick(rng, tuple(((loc, tz), w) for loc, tz, w in ZONES))
    tier = "staff" if rng.random() < STAFF_SHARE else _pick(rng, TIERS)
    customer_id = f"c-{number:05d}"
    email: str | None = None
    roll = rng.random()
    if roll < 0.86:
        domain = "bounce.example" if rng.random() < 0.03 else "example.com"
        email = f"{customer_id}@{domain}"
    consents: dict[str, bool] | None
    consent_roll = rng.random()
    if consent_roll < 0.05:
        consents = None  # never asked: no consent on any channel
    elif consent_roll < 0.09:
        consents = {"email": False, "inapp": False}
    else:
        consents = {
            "email": rng.random() < 0.8,
            "inapp": rng.random() < 0.93,
            "sms": rng.random() < 0.7,
            "push": rng.random() < 0.75,
            # Drawn apart, so the rest of the world stays what it was before calls were simulated.
            "phone": random.Random(f"phone|{customer_id}").random() < 0.7,  # noqa: S311 - a simulation
        }
    mood = min(1.0, max(0.0, rng.gauss({"platinum": 0.72, "gold": 0.66}.get(tier, 0.6), 0.18)))
    return SimCustomer(
        customer_id=customer_id,
        locale=locale,
        time_zone=zone,
        tier=tier,
        email=email,
        consents=consents,
        mood=mood,
        compromised=rng.random() < 0.02,
        phone=_phone(rng, number, zone) if rng.random() < 0.9 else None,
        device=_device(rng) if rng.random() < 0.65 else None,
    )


# Mobile numbers by the customer's zone: a prefix the region's mobile ranges start with, and how
# many digits follow it. The last digits are the customer's number, so every one is different.
_MOBILE = {
    "Asia/Shanghai": ("+86138", 8),
    "Asia/Hong_Kong": ("+8529", 7),
    "Asia/Singapore": ("+658", 7),
    "Europe/London": ("+447700", 6),
    "America/New_York": ("+1212555", 4),
    "Australia/Sydney": ("+614", 8),
}
DEAD_NUMBER_SHARE = 0.03  # out of service: the carrier's receipt says so, and the phone is marked invalid
STALE_TOKEN_SHARE = 0.04  # the app was removed: the platform says unregistered


def _phone(rng: random.Random, number: int, zone: str) -> str:
    """A valid mobile number of the zone's region, drawn until one is (a few draws at most)."""
    prefix, digits = _MOBILE[zone]
    while True:
        phone = prefix + "".join(rng.choice("0123456789") for _ in range(digits))
        if phonenumbers.is_valid_number(phonenumbers.parse(phone)):
            return phone


def is_dead_number(phone: str) -> bool:
    """Out of service (the demo's carrier says so): a fixed few of the numbers, by their digits."""
    return int(hashlib.sha256(phone.encode()).hexdigest()[:8], 16) % 1000 < DEAD_NUMBER_SHARE * 1000


def _device(rng: random.Random) -> tuple[str, str]:
    stale = rng.random() < STALE_TOKEN_SHARE  # marked in the token itself, for the demo's push service
    if rng.random() < 0.7:
        token = "fcm:" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(40))
        return ("android", ("stale-" if stale else "") + token)
    token = "".join(rng.choice("0123456789abcdef") for _ in range(64))
    return ("ios", ("dead" + token[4:]) if stale else token)


class _EventMaker:
    def __init__(self, rng: random.Random, start: dt.datetime, days: int) -> None:
        self.rng = rng
        self.start = start
        self.end = start + dt.timedelta(days=days)
        self.days = days
        self.out: list[tuple[dt.datetime, dict[str, Any]]] = []
        self.day_weights = [WEEKDAY[(start + dt.timedelta(days=d)).weekday()] for d in range(days)]
        self.hours = list(range(24))

    def local_time(self, zone: ZoneInfo, *, day: int | None = None, hour: int | None = None) -> dt.datetime | None:
        rng = self.rng
        if day is None:
            day = rng.choices(range(self.days), weights=self.day_weights)[0]
        if hour is None:
            hour = rng.choices(self.hours, weights=HOURLY)[0]
        date = (self.start + dt.timedelta(days=day)).date()
        local = dt.datetime(date.year, date.month, date.day, hour, rng.randrange(60), rng.randrange(60), tzinfo=zone)
        at = local.astimezone(dt.UTC)
        if not self.start <= at < self.end:
            return None
        return at

    def add(self, customer: SimCustomer, zone: ZoneInfo, at: dt.datetime, event_type: str, **fields: Any) -> None:
        event: dict[str, Any] = {
            "event_id": "",  # numbered in time order once the month is sorted
            "type": event_type,
            "customer_id": customer.customer_id,
            # As a wallet would send it: local time with its offset.
            "occurred_at": at.astimezone(zone).isoformat(),
            **fields,
        }
        self.out.append((at, event))


def _amount(rng: random.Random, median: float, sigma: float) -> int:
    return max(100, int(rng.lognormvariate(math.log(median), sigma)))


def _payment(
    rng: random.Random,
    maker: _EventMaker,
    mishaps: dict[str, list[Mishap]],
    *,
    person: SimCustomer,
    zone: ZoneInfo,
    at: dt.datetime,
    mode: str,
    fail_rate: float,
    median: float,
    sigma: float,
) -> None:
    """A QR or online payment that fails at `fail_rate`; a failure is remembered as a mishap."""
    fail = rng.random() < fail_rate
    amount = _amount(rng, median, sigma)
    attributes = {"mode": mode, "merchant": rng.choice(MERCHANTS)}
    if fail:
        attributes["reason"] = rng.choice(FAILURE_REASONS)
        mishaps.setdefault(person.customer_id, []).append(Mishap(at, "payment_failed"))
    event_type = "payment.failed" if fail else "payment.succeeded"
    maker.add(person, zone, at, event_type, amount=amount, currency="CNY", attributes=attributes)


def build_world(*, seed: int, customers: int, days: int = DAYS, start: dt.datetime = MONTH_START) -> World:
    """The customers and their events for a seed; the same seed gives the same world."""
    rng = random.Random(seed)  # noqa: S311 - a simulation, not a secret
    people = [_customer(rng, number) for number in range(1, customers + 1)]
    maker = _EventMaker(rng, start, days)
    mishaps: dict[str, list[Mishap]] = {}
    zones = {tz: ZoneInfo(tz) for _, tz, _ in ZONES}
    for person in people:
        zone = zones[person.time_zone]
        activity = rng.lognormvariate(0, 0.8) * {"platinum": 1.8, "gold": 1.4, "silver": 1.1}.get(person.tier, 1.0)
        count = max(1, int(activity * EVENTS_PER_CUSTOMER_DAY * days / 1.55))
        flaky = rng.random() < 0.12  # a card that often fails
        big_sender = rng.random() < 0.15
        for _ in range(count):
            at = maker.local_time(zone)
            if at is None:
                continue
            weekend = at.astimezone(zone).weekday() >= 5
            roll = rng.random()
            if roll < (0.40 if weekend else 0.32):
                _payment(
                    rng,
                    maker,
                    mishaps,
                    person=person,
                    zone=zone,
                    at=at,
                    mode="qr",
                    fail_rate=0.12 if flaky else 0.015,
                    median=3500,
                    sigma=0.9,
                )
            elif roll < 0.58:
                _payment(
                    rng,
                    maker,
                    mishaps,
                    person=person,
                    zone=zone,
                    at=at,
                    mode="online",
                    fail_rate=0.10 if flaky else 0.02,
                    median=12000,
                    sigma=1.0,
                )
            elif roll < (0.72 if not weekend else 0.69):
                median = 180_000 if big_sender else 25_000
                maker.add(
                    person,
                    zone,
                    at,
                    "transfer.succeeded",
                    amount=_amount(rng, median, 1.1),
                    currency="CNY",
                    attributes={"to": rng.choice(("friend", "family", "merchant", "self"))},
                )
            elif roll < 0.84:
                maker.add(
                    person,
                    zone,
                    at,
                    "topup.succeeded",
                    amount=_amount(rng, 50_000, 0.8),
                    currency="CNY",
                    attributes={"source": rng.choice(("bank_card", "bank_transfer"))},
                )
            elif roll < 0.92:
                maker.add(
                    person,
                    zone,
                    at,
                    "withdrawal.succeeded",
                    amount=_amount(rng, 80_000, 0.9),
                    currency="CNY",
                    attributes={"to": "bank_card"},
                )
            elif roll < 0.965:
                maker.add(
                    person,
                    zone,
                    at,
                    "refund.succeeded",
                    amount=_amount(rng, 6000, 0.9),
                    currency="CNY",
                    attributes={"merchant": rng.choice(MERCHANTS)},
                )
            elif roll < 0.972:
                maker.add(
                    person,
                    zone,
                    at,
                    "dispute.opened",
                    amount=_amount(rng, 20000, 1.0),
                    currency="CNY",
                    attributes={"reason": rng.choice(("not_received", "not_as_described", "charged_twice"))},
                )
                mishaps.setdefault(person.customer_id, []).append(Mishap(at, "dispute"))
            else:
                maker.add(
                    person,
                    zone,
                    at,
                    "login.new_device",
                    attributes={"platform": rng.choice(("ios", "android")), "same_city": rng.random() < 0.8},
                )
        # First use of a feature: once per feature, for about half the features a customer tries.
        for feature in FEATURES:
            if rng.random() < 0.2:
                at = maker.local_time(zone)
                if at is not None:
                    maker.add(person, zone, at, "feature.first_used", attributes={"feature": feature})
        if person.compromised:
            # The takeover: a login at night from a device that was not theirs.
            at = maker.local_time(zone, day=rng.randrange(days), hour=rng.choice((1, 2, 3, 4)))
            if at is not None:
                maker.add(person, zone, at, "login.new_device", attributes={"platform": "android", "same_city": False})
                mishaps.setdefault(person.customer_id, []).append(Mishap(at, "takeover"))
    maker.out.sort(key=lambda pair: (pair[0], pair[1]["customer_id"], pair[1]["type"]))
    for number, (_, event) in enumerate(maker.out, start=1):
        event["event_id"] = f"evt-{number:07d}"
    for found in mishaps.values():
        found.sort(key=lambda mishap: mishap.at)
    return World(
        seed=seed,
        start=start,
        days=days,
        customers=people,
        events=[event for _, event in maker.out],
        event_times=[at for at, _ in maker.out],
        mishaps=mishaps,
    )
