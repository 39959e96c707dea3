"""The month on a simulated clock: events ingested as they happen, the worker run as time passes,
and customers answering through the same services the hosted survey page calls."""

from __future__ import annotations

import datetime as dt
import heapq
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from followup.channels import capabilities
from followup.channels.base import Delivery, Handoff, PermanentChannelError, Receipt
from followup.channels.capabilities import BUILT_IN, EMAIL, INAPP
from followup.channels.health import ProviderHealth
from followup.channels.inapp import InAppChannel
from followup.channels.phone import CallQueueChannel
from followup.channels.providers import AddressGoneError, InboundSms, Outgoing
from followup.channels.push.channel import PushChannel
from followup.channels.rate_limit import DatabaseRateLimiter
from followup.channels.sms.channel import SmsChannel
from followup.config import Settings
from followup.customers import service as customers
from followup.customers.schemas import CustomerUpsert
from followup.data_rights import service as data_rights
from followup.demo.people import Staffroom
from followup.demo.world import LARGE_TRANSFER, SimCustomer, World, is_dead_number
from followup.dispatch import receipts
from followup.dispatch import service as dispatch
from followup.events import service as events
from followup.followups import inbound
from followup.followups import service as followups
from followup.kernel.actors import SYSTEM, Actor
from followup.kernel.time import ManualClock
from followup.privacy import service as privacy
from followup.runtime import Runtime, build_runtime
from followup.strategies import service as strategies
from followup.strategies.schemas import StrategyCreate
from followup.surveys import service as surveys
from followup.surveys.schemas import SurveyCreate
from followup.surveys.service import AnswerInvalid, InvitationInvalid
from followup.worker import Worker

STEP = dt.timedelta(hours=1)
NOTICE_VERSION = "demo"

SURVEYS: tuple[dict[str, Any], ...] = (
    {
        "key": "payment-csat",
        "title": {"zh-CN": "支付失败回访", "en": "About your payment"},
        "questions": [
            {
                "id": "csat",
                "type": "csat",
                "prompt": {
                    "zh-CN": "您对我们处理这次支付问题的方式满意吗？",
                    "en": "How satisfied are you with how we handled this payment?",
                },
            },
            {
                "id": "comment",
                "type": "text",
                "required": False,
                "prompt": {"zh-CN": "还有什么想告诉我们？", "en": "Anything else you would like to tell us?"},
            },
        ],
    },
    {
        "key": "feature-nps",
        "title": {"zh-CN": "新功能体验", "en": "Your first try of a feature"},
        "questions": [
            {
                "id": "nps",
                "type": "nps",
                "prompt": {
                    "zh-CN": "您有多大可能向朋友推荐这个功能？",
                    "en": "How likely are you to recommend this feature to a friend?",
                },
            },
            {
                "id": "comment",
                "type": "text",
                "required": False,
                "prompt": {"zh-CN": "有什么可以做得更好？", "en": "What could we do better?"},
            },
        ],
    },
    {
        "key": "transfer-nps",
        "title": {"zh-CN": "转账体验回访", "en": "Your transfer"},
        "questions": [
            {
                "id": "nps",
                "type": "nps",
                "prompt": {
                    "zh-CN": "您有多大可能向朋友推荐我们的钱包？",
                    "en": "How likely are you to recommend our wallet to a friend?",
                },
            },
            {
                "id": "comment",
                "type": "text",
                "required": False,
                "prompt": {"zh-CN": "还有什么想告诉我们？", "en": "Anything else you would like to tell us?"},
            },
        ],
    },
    {
        "key": "relationship-nps",
        "title": {"zh-CN": "钱包使用感受", "en": "How is the wallet doing for you?"},
        "questions": [
            {
                "id": "nps",
                "type": "nps",
                "prompt": {
                    "zh-CN": "您有多大可能向朋友推荐我们的钱包？",
                    "en": "How likely are you to recommend our wallet to a friend?",
                },
            },
            {
                "id": "comment",
                "type": "text",
                "required": False,
                "prompt": {"zh-CN": "最希望我们改进什么？", "en": "What should we improve first?"},
            },
        ],
    },
    # "Was this you?", as examples/was-this-you.yaml has it.
    {
        "key": "was-this-you",
        "title": {"zh-CN": "新设备登录确认", "en": "A new sign-in to your wallet"},
        "questions": [
            {
                "id": "was_it_you",
                "type": "yes_no",
                "prompt": {
                    "zh-CN": "刚才在新设备上登录的是你吗？",
                    "en": "Was it you who just signed in on a new device?",
                },
            }
        ],
    },
)
WAS_IT_YOU = "was_it_you"

STRATEGIES: tuple[dict[str, Any], ...] = (
    {
        "key": "after-failed-payment",
        "name": "After a failed payment",
        "kind": "event",
        "trigger": {"event_types": ["payment.failed"]},
        "audience": {"not": {"field": "customer.attributes.tier", "op": "eq", "value": "staff"}},
        "holdout_percent": 10,
        "delay": "PT1H",
        "channels": ["sms", "email", "inapp"],
        "survey": "payment-csat",
        "remind_after": "P1D",
        "expire_after": "P3D",
        "recontact_days": 14,
    },
    {
        # examples/was-this-you.yaml, with SMS first: the demo runs an SMS gateway.
        "key": "was-this-you",
        "name": "Was this you? (new device)",
        "kind": "event",
        "trigger": {"event_types": ["login.new_device"]},
        "max_event_age": "PT1H",
        "recontact_days": 0,
        "security_check": True,
        "channels": ["sms", "email"],
        "survey": "was-this-you",
        "expire_after": "P1D",
    },
    {
        "key": "after-first-use",
        "name": "After the first use of a feature",
        "kind": "event",
        "trigger": {"event_types": ["feature.first_used"]},
        "sample_rate": 0.6,
        "delay": "PT2H",
        # A push first; the inbox item if the push was not opened in three hours.
        "channels": [{"channel": "push"}, {"channel": "inapp", "if_not_opened_within": "PT3H"}],
        "survey": "feature-nps",
        "expire_after": "P5D",
        "recontact_days": 30,
    },
    {
        "key": "after-large-transfer",
        "name": "After a large transfer",
        "kind": "event",
        "trigger": {"event_types": ["transfer.succeeded"]},
        "audience": {
            "all": [
                {"field": "event.amount", "op": "gte", "value": LARGE_TRANSFER},
                {"not": {"field": "customer.attributes.tier", "op": "eq", "value": "staff"}},
            ]
        },
        "delay": "PT30M",
        # A timed cascade: push first; SMS if the push was not opened in two hours; email if the
        # follow-up was not answered within a day of that.
        "channels": [
            {"channel": "push"},
            {"channel": "sms", "if_not_opened_within": "PT2H"},
            {"channel": "email", "if_not_answered_within": "P1D"},
        ],
        "survey": "transfer-nps",
        "reward": {"points": 20},
        "remind_after": "P2D",
        "expire_after": "P7D",
        "recontact_days": 30,
    },
    {
        "key": "first-qr-payment",
        "name": "After the first QR payment",
        "kind": "event",
        "trigger": {
            "event_types": ["payment.succeeded"],
            "match": {"field": "event.attributes.mode", "op": "eq", "value": "qr"},
            "first_time": True,
        },
        "sample_rate": 0.5,
        "delay": "PT1H",
        "channels": ["sms", "inapp", "email"],
        "survey": "feature-nps",
        "expire_after": "P5D",
        "recontact_days": 14,
    },
    {
        "key": "monthly-panel",
        "name": "Monthly NPS panel of active customers",
        "kind": "periodic",
        "schedule": {"cron": "0 10 1 * *", "time_zone": "Asia/Shanghai"},
        "audience": {"field": "customer.stats.active_days_30d", "op": "gte", "value": 4},
        "sample_rate": 0.2,
        "cooldown_days": 90,
        "spread": "PT4H",
        "channels": ["email", "inapp"],
        "survey": "relationship-nps",
        "expire_after": "P3D",
    },
    {
        "key": "top-tier-care",
        "name": "Top tier, by their account manager",
        "kind": "proactive",
        "audience": {"field": "customer.value_tier", "op": "eq", "value": "platinum"},
        "cadence": "P30D",
        "owner": {"name": "王芳 Wang Fang", "email": "wang.fang@wallet.example"},
        # The account manager's email (the in-app inbox for those without email); the account team
        # calls (the `calls` queue) those who have not answered within two days.
        "channels": [
            {"channel": "email"},
            {"channel": "inapp"},
            {"channel": "phone", "if_not_answered_within": "P2D"},
        ],
        "survey": "relationship-nps",
        "expire_after": "P7D",
        # A spending summary in the customer's own numbers, in their locale.
        "message": {
            "zh-CN": {
                "subject": "您的钱包月报：{{ survey.title }}",
                "body": "本月你用钱包支付了 {{ stats.volume_30d | money('CNY') }}，共 {{ stats.payments_30d }} 笔。"
                "作为我们的白金客户，想听听你的感受。",
            },
            "en": {
                "subject": "Your month with the wallet",
                "body": "This month you moved {{ stats.volume_30d | money('CNY') }} in {{ stats.payments_30d }} "
                "payments. As one of our platinum customers, we would value your view.",
            },
        },
    },
)

# Chance that a customer answers a message, by channel and locale; a reminder is answered less.
RESPONSE_RATE = {
    ("email", "zh-CN"): 0.22,
    ("email", "en"): 0.30,
    ("inapp", "zh-CN"): 0.42,
    ("inapp", "en"): 0.33,
    ("sms", "zh-CN"): 0.30,
    ("sms", "en"): 0.24,
    ("push", "zh-CN"): 0.26,
    ("push", "en"): 0.22,
}
# Of those who answer an SMS, the share who reply with their score instead of tapping the link.
SMS_REPLY_SHARE = 0.65
# Of those asked "Was this you?" about a sign-in that was not theirs, the share who answer.
TAKEOVER_ANSWER_RATE = 0.9
# Of those who get an SMS, the share who reply STOP (or 退订) instead.
SMS_STOP_SHARE = 0.012
# Of those who get a push, the share who open it (the app reports the opening).
PUSH_OPEN_SHARE = 0.45
# What a customer who received a message does on their privacy page (the link every message
# carries), per message seen: download their data, withdraw consent to the channel, ask for
# deletion. Erasures wait two days (the demo's FOLLOWUP_ERASURE_GRACE), so the month's last show
# as pending with their deadlines.
PRIVACY_SHARES = (("export", 0.004), ("withdraw", 0.006), ("erase", 0.002))
DEMO_ERASURE_GRACE = dt.timedelta(days=2)
SMS_PROVIDER = "demo-sms"
REMINDER_FACTOR = 0.55
# Median hours between a message and the answer.
ANSWER_DELAY_HOURS = {"email": 5.0, "inapp": 1.5, "sms": 0.6, "push": 0.8}

COMMENTS: dict[str, dict[str, tuple[str, ...]]] = {
    "zh-CN": {
        "good": (
            "到账很快，操作也简单。",
            "体验很好，继续保持！",
            "界面清晰，一次就成功了。",
            "扫码付款很方便。",
            "客服回复及时，点赞。",
        ),
        "bad": (
            "支付失败了好几次，很影响心情。",
            "扣款了但是订单没有成功，希望尽快处理。",
            "提示信息看不懂，不知道哪里出了问题。",
            "退款太慢了，等了好几天。",
            "银行卡绑定总是失败。",
        ),
        "security": (
            "收到陌生设备登录提醒，不是我本人操作，请帮我检查账户。",
            "我的账户被盗刷了一笔，请尽快冻结。",
            "昨天收到冒充客服的钓鱼短信，差点被骗。",
        ),
    },
    "en": {
        "good": (
            "Fast and easy, thanks.",
            "Worked first time, great app.",
            "The transfer arrived in seconds.",
            "Love the new feature.",
            "Support answered quickly.",
        ),
        "bad": (
            "My payment failed twice at the till, embarrassing.",
            "Charged but the order did not go through.",
            "The error message did not tell me what was wrong.",
            "Refunds take far too long.",
            "Could not link my bank card.",
        ),
        "security": (
            "I got a new device login alert and it was not me. Please check my account.",
            "There is an unauthorized payment on my account.",
            "Someone sent me a phishing text pretending to be you.",
        ),
    },
}


def demo_settings(database_url: str, *, public_url: str, master_key: SecretStr | None = None) -> Settings:
    """Settings for the demo: every value that shapes the month is fixed here, whatever the
    environment says, so that a seed always gives the same month. Without a master key, the key
    is kept in a file beside the SQLite database."""
    return Settings(
        _env_file=None,
        database_url=database_url,
        public_url=public_url,
        master_key=master_key,
        quiet_hours_start="21:00",
        quiet_hours_end="08:00",
        fatigue_max_followups=1,
        fatigue_window_days=14,
        send_max_attempts=5,
        retry_base_seconds=30.0,
        worker_lease_seconds=60,
        log_level="WARNING",
        webhooks_allow_private=True,  # the demo's risk team listens on loopback (`risk_desk`)
        erasure_grace=DEMO_ERASURE_GRACE,
        erasure_days=15,
    )


@dataclass(frozen=True)
class Sent:
    delivery: Delivery
    channel: str
    at: dt.datetime
    provider_ref: str | None = None


class DemoMailbox:
    """The demo's email channel: a mail server that takes every message, except for addresses at
    bounce.example, which it rejects for good (so the demo shows the cascade to in-app).

    The message itself stays sealed in the messages table, where the console's outbox reads it.
    """

    name = EMAIL
    capabilities = replace(BUILT_IN[EMAIL], idempotent=True)  # the demo's mail server takes a key

    def __init__(self, clock: ManualClock, sent: list[Sent], lock: threading.Lock) -> None:
        self._clock = clock
        self._sent = sent
        self._lock = lock

    def send(self, delivery: Delivery, *, handoff: Callable[[], None]) -> Receipt:
        if delivery.address and delivery.address.endswith("@bounce.example"):
            raise PermanentChannelError("550 5.1.1 mailbox unavailable")
        with self._lock:
            self._sent.append(Sent(delivery, self.name, self._clock.now()))
        return Receipt(provider_ref=f"demo-mail:{delivery.idempotency_key}")


class WatchedInbox:
    """The real in-app inbox, watched so that the simulated customers see what arrived."""

    name = INAPP
    capabilities = BUILT_IN[INAPP]

    def __init__(self, inbox: InAppChannel, clock: ManualClock, sent: list[Sent], lock: threading.Lock) -> None:
        self._inbox = inbox
        self._clock = clock
        self._sent = sent
        self._lock = lock

    def send(self, delivery: Delivery, *, handoff: Callable[[], None]) -> Receipt:
        receipt = self._inbox.send(delivery, handoff=handoff)
        with self._lock:
            self._sent.append(Sent(delivery, self.name, self._clock.now()))
        return receipt


class DemoSmsGateway:
    """The demo's SMS gateway, in-process: takes every message (as a carrier's gateway does, even
    for a number out of service: the receipt says so later)."""

    name = SMS_PROVIDER
    kind = "generic"
    rate_per_second: float | None = None
    concurrency = 1
    idempotent = True

    def __init__(self) -> None:
        self._next = 0

    def send(self, outgoing: Outgoing) -> str:
        self._next += 1
        return f"demo-sms-{self._next}"

    def close(self) -> None:
        pass


class DemoPushService:
    """The demo's push service, in-process, for one platform: a stale token (the app was removed)
    is refused as unregistered, as FCM and APNs do."""

    kind = "push"
    rate_per_second: float | None = None
    concurrency = 1
    idempotent = False

    def __init__(self, name: str) -> None:
        self.name = name
        self._next = 0

    def send(self, outgoing: Outgoing) -> str:
        if outgoing.to.startswith(("stale-", "dead")):
            raise AddressGoneError(
                "the platform no longer knows this device", code="UNREGISTERED", status="unregistered"
            )
        self._next += 1
        return f"{self.name}-{self._next}"

    def close(self) -> None:
        pass


class _Watched:
    """What a demo channel shares: every message it sends is seen by the simulated customers."""

    _sent: list[Sent]
    _lock: threading.Lock
    _demo_clock: ManualClock
    name: str

    def _seen(self, delivery: Delivery, receipt: Receipt) -> Receipt:
        with self._lock:
            self._sent.append(Sent(delivery, self.name, self._demo_clock.now(), receipt.provider_ref))
        return receipt


class DemoSmsChannel(_Watched, SmsChannel):
    def send(self, delivery: Delivery, *, handoff: Handoff) -> Receipt:
        return self._seen(delivery, super().send(delivery, handoff=handoff))


class DemoPushChannel(_Watched, PushChannel):
    def send(self, delivery: Delivery, *, handoff: Handoff) -> Receipt:
        return self._seen(delivery, super().send(delivery, handoff=handoff))


@dataclass
class AnswerStats:
    ratings: int = 0
    details: int = 0
    skipped: int = 0
    comments: int = 0
    security_comments: int = 0
    # Ratings turned away because the link no longer took them: the follow-up had expired, or the
    # customer had already answered it through another of its messages.
    late_after_expiry: int = 0
    late_already_answered: int = 0
    # By SMS: ratings given as a reply, opt-outs (STOP, 退订), and receipts of numbers out of service.
    sms_replies: int = 0
    sms_opt_outs: int = 0
    push_opened: int = 0
    # "No" to "Was this you?" (the customers whose account was taken over), each opening a security case.
    not_me: int = 0
    # On their privacy page: downloads of their data, consents withdrawn, deletions asked for.
    exports: int = 0
    withdrawals: int = 0
    erasures_asked: int = 0

    @property
    def too_late(self) -> int:
        return self.late_after_expiry + self.late_already_answered


@dataclass(order=True)
class _Pending:
    at: dt.datetime
    order: int
    step: str = field(compare=False)  # "rating" or "details"
    token: str = field(compare=False)
    followup: str = field(compare=False)  # the follow-up the message belongs to
    answers: dict[str, Any] = field(compare=False)


class Simulation:
    """One demo month: set up the world in the database, then play it hour by hour."""

    def __init__(self, runtime: Runtime, world: World, clock: ManualClock) -> None:
        self.runtime = runtime
        self.world = world
        self.clock = clock
        self._sent: list[Sent] = []
        self._lock = threading.Lock()
        runtime.channels = {
            "email": DemoMailbox(clock, self._sent, self._lock),
            "inapp": WatchedInbox(
                InAppChannel(runtime.session, keys=runtime.keys, clock=clock), clock, self._sent, self._lock
            ),
            "sms": self._watched(
                DemoSmsChannel(
                    [DemoSmsGateway()],
                    health=self._health("sms"),
                    limiter=DatabaseRateLimiter(runtime.session),
                    clock=clock,
                    keys=runtime.keys,
                    session=runtime.session,
                    public_url=runtime.settings.public_url,
                    sign="钱包",
                )
            ),
            "phone": CallQueueChannel(),  # worked by the demo's agents (`people`)
            "push": self._watched(
                DemoPushChannel(
                    {"android": DemoPushService("fcm"), "ios": DemoPushService("apns")},
                    health=self._health("push"),
                    limiter=DatabaseRateLimiter(runtime.session),
                    clock=clock,
                )
            ),
        }
        for name, channel in runtime.channels.items():
            capabilities.install(name, channel.capabilities)
        self.worker = Worker(runtime, batch_size=500)
        self.staffroom = Staffroom(runtime, clock, seed=world.seed)
        self.customer_of: dict[int, SimCustomer] = {}
        self.zones: dict[str, ZoneInfo] = {}
        self.answers = AnswerStats()
        self._pending: list[_Pending] = []
        self._answered: set[str] = set()  # follow-ups rated, so a later rating of one is told apart
        self._order = 0
        self._next_event = 0

    def _health(self, channel: str) -> ProviderHealth:
        settings = self.runtime.settings
        return ProviderHealth(
            channel,
            self.runtime.session,
            clock=self.clock,
            threshold=settings.provider_failure_threshold,
            cooldown=dt.timedelta(seconds=settings.provider_cooldown_seconds),
        )

    def _watched(self, channel: Any) -> Any:
        channel._sent, channel._lock, channel._demo_clock = self._sent, self._lock, self.clock
        return channel

    def set_up(self) -> None:
        """Surveys, the strategies and the customers, as the wallet's team would create them."""
        runtime, now = self.runtime, self.clock.now()
        with runtime.session() as session:
            for body in SURVEYS:
                surveys.create_survey(
                    session, SurveyCreate.model_validate(body), limits=runtime.settings.input_limits, now=now
                )
            for body in STRATEGIES:
                strategies.create_strategy(
                    session,
                    StrategyCreate.model_validate(body),
                    available_channels=set(runtime.channels),
                    limits=runtime.settings.input_limits,
                    actor=SYSTEM,
                    now=now,
                )
            for person in self.world.customers:
                row = customers.upsert_customer(
                    session,
                    person.customer_id,
                    CustomerUpsert.model_validate(person.upsert_body()),
                    keys=runtime.keys,
                    limits=runtime.settings.input_limits,
                    actor=SYSTEM,
                    now=now,
                    built_in_notice_version=NOTICE_VERSION,
                )
                self.customer_of[row.id] = person
                self.zones.setdefault(person.time_zone, ZoneInfo(person.time_zone))
                if person.device is not None:
                    platform, token = person.device
                    customers.register_device(
                        session, row, "app-1", platform=platform, token=token, keys=runtime.keys, now=now
                    )
        self.staffroom.set_up()

    def run(self, *, on_day: Callable[[int], None] | None = None) -> None:
        world = self.world
        steps = world.days * 24
        for number in range(steps):
            until = world.start + STEP * (number + 1)
            self._answer_until(until)
            self.clock.set(until)
            self._ingest_until(until)
            self.worker.run_until_idle()
            self.staffroom.work(until, _call_score)
            self._read_messages()
            if on_day is not None and (number + 1) % 24 == 0:
                on_day((number + 1) // 24)

    def _ingest_until(self, until: dt.datetime) -> None:
        world = self.world
        stop = world.events_before(self._next_event, until)
        if stop == self._next_event:
            return
        batch = world.events[self._next_event : stop]
        self._next_event = stop
        with self.runtime.session() as session:
            events.ingest_events(session, batch, now=self.clock.now(), settings=self.runtime.settings)

    def _read_messages(self) -> None:
        with self._lock:
            arrived, self._sent[:] = list(self._sent), []
        for sent in arrived:
            self._consider(sent)

    def _consider(self, sent: Sent) -> None:
        """A customer sees a message: maybe answers it later, with a score shaped by their month."""
        delivery = sent.delivery
        person = self.customer_of.get(delivery.customer_id)
        if person is None:
            return
        if delivery.content.transactional:
            return  # a reply the customer asked for (a confirmation, a thank-you): nothing to answer
        if delivery.content.purpose == "service" and not delivery.content.rating_links:
            # About their case (a security check, also service, asks its question below): "did we
            # solve it?" is answered.
            if "/c/" in delivery.content.link:
                rng = random.Random(f"{self.world.seed}|{delivery.idempotency_key}")  # noqa: S311 - a simulation
                at = self._awake(sent.at + dt.timedelta(hours=rng.lognormvariate(math.log(3), 0.8)), person, rng)
                token = delivery.content.link.rsplit("/c/", 1)[-1]
                self._push(at, "resurvey", token, "", {"mood": person.mood})
            return
        step = "remind" if "-remind-" in delivery.idempotency_key else "invite"
        seed = f"{self.world.seed}|{person.customer_id}|{step}|{sent.channel}|{sent.at.isoformat()}"
        rng = random.Random(seed)  # noqa: S311 - a simulation, not a secret
        self._maybe_visit_privacy_page(sent, random.Random(f"{seed}|privacy"))  # noqa: S311 - a simulation
        if sent.channel == "sms" and delivery.address and sent.provider_ref:
            # The carrier's receipt comes back within a minute: delivered, or the number is out of service.
            dead = is_dead_number(delivery.address)
            receipt = {"status": "failed" if dead else "delivered", "error": "invalid_number" if dead else None}
            self._push(sent.at + dt.timedelta(seconds=rng.randint(3, 50)), "receipt", sent.provider_ref, "", receipt)
            if dead:
                return
            if rng.random() < SMS_STOP_SHARE:
                stop = "退订" if person.locale == "zh-CN" else rng.choice(["STOP", "stop", "ＳＴＯＰ"])
                at = self._awake(sent.at + dt.timedelta(minutes=rng.randint(1, 90)), person, rng)
                self._push(at, "sms", delivery.address, "", {"text": stop})
                return
        if sent.channel == "push" and rng.random() < PUSH_OPEN_SHARE:
            at = sent.at + dt.timedelta(minutes=rng.lognormvariate(math.log(40), 1.0))
            self._push(at, "opened", str(delivery.message_id), "", {})
        chance = RESPONSE_RATE[(sent.channel, person.locale)] * (REMINDER_FACTOR if step == "remind" else 1.0)
        chance *= 0.7 + 0.6 * person.mood
        if delivery.content.rating_links and delivery.content.rating_links[0].label:
            # "Was this you?" about a sign-in that was not theirs: most owners answer, and at once.
            recent = self.world.recent_mishaps(person.customer_id, sent.at, within=dt.timedelta(days=1))
            chance = TAKEOVER_ANSWER_RATE if any(m.kind == "takeover" for m in recent) else chance
        if rng.random() >= chance:
            return
        delay = dt.timedelta(hours=rng.lognormvariate(math.log(ANSWER_DELAY_HOURS[sent.channel]), 1.0))
        at = self._awake(sent.at + delay, person, rng)
        content = delivery.content
        token = content.link.rsplit("/s/", 1)[-1]
        followup = delivery.idempotency_key.rsplit("-", 2)[0]  # "followup-{id}", before step and channel
        mishaps = self.world.recent_mishaps(person.customer_id, at, within=dt.timedelta(days=7))
        if content.rating_links and content.rating_links[0].label:  # "Was this you?": yes, unless it was a takeover
            said = "no" if any(m.kind == "takeover" for m in mishaps) else "yes"
            if sent.channel == "sms" and delivery.address and rng.random() < SMS_REPLY_SHARE:
                reply = rng.choice(["2", "否"] if said == "no" else ["1", "是"])
                self._push(at, "sms", delivery.address, followup, {"text": reply, "not_me": said == "no"})
            else:
                self._push(at, "rating", token, followup, {WAS_IT_YOU: said})
            return
        scale = "nps" if len(content.rating_links) == 11 else "csat"
        failed = sum(1 for m in mishaps if m.kind == "payment_failed")
        disputes = sum(1 for m in mishaps if m.kind == "dispute")
        takeover = any(m.kind == "takeover" for m in mishaps)
        score = _score(rng, scale, mood=person.mood, failed=failed, disputes=disputes, takeover=takeover)
        if sent.channel == "sms" and delivery.address and rng.random() < SMS_REPLY_SHARE:
            # A score sent back by SMS: "9", "9分", "10 thanks"; the engine thanks them with the link.
            words = rng.choice(["{}", "{}分", "{} 谢谢"] if person.locale == "zh-CN" else ["{}", "{} thanks"])
            text, security = words.format(score), takeover or rng.random() < 0.015
            if security:  # the words after the score are kept as a comment, and checked for security
                text = f"{score} {rng.choice(COMMENTS[person.locale]['security'])}"
            self._push(at, "sms", delivery.address, followup, {"text": text, "security": security})
            return
        self._push(at, "rating", token, followup, {scale: score})
        roll = rng.random()
        if roll < 0.55:
            mood = "security" if takeover or rng.random() < 0.015 else ("bad" if _is_low(scale, score) else "good")
            answers: dict[str, Any] = {}
            if mood == "security" or rng.random() < 0.6:
                answers["comment"] = rng.choice(COMMENTS[person.locale][mood])
            self._push(at + dt.timedelta(seconds=rng.randint(20, 240)), "details", token, followup, answers)
        elif roll < 0.8:
            self._push(at + dt.timedelta(seconds=rng.randint(5, 30)), "details", token, followup, {})

    def _maybe_visit_privacy_page(self, sent: Sent, rng: random.Random) -> None:
        roll = rng.random()
        for action, share in PRIVACY_SHARES:
            if roll < share:
                at = sent.at + dt.timedelta(minutes=rng.randint(2, 600))
                self._push(at, "privacy", str(sent.delivery.customer_id), "", {"do": action, "channel": sent.channel})
                return
            roll -= share

    def _visit_privacy_page(self, pending: _Pending, now: dt.datetime) -> None:
        """What the customer does on their page, through the services the page itself calls."""
        runtime = self.runtime
        with runtime.session() as session:
            customer = customers.get_by_id(session, int(pending.token))
            if customer is None or customer.erased_at is not None:
                return
            actor = Actor(kind="customer", id=str(customer.id))
            action = pending.answers["do"]
            if action == "export":
                data_rights.export_zip(
                    session, customer.external_id, source="privacy_page", actor=actor, keys=runtime.keys, now=now
                )
                self.answers.exports += 1
            elif action == "withdraw":
                changed = privacy.record_consents(
                    session,
                    customer.id,
                    {"feedback": {pending.answers["channel"]: False}},
                    subject_id=customer.external_id,
                    source="privacy_page",
                    built_in_notice_version=NOTICE_VERSION,
                    actor=actor,
                    now=now,
                )
                self.answers.withdrawals += changed
            else:
                data_rights.request_erasure(
                    session,
                    customer.external_id,
                    reason=None,
                    source="privacy_page",
                    actor=actor,
                    settings=runtime.settings,
                    keys=runtime.keys,
                    now=now,
                )
                self.answers.erasures_asked += 1

    def _awake(self, at: dt.datetime, person: SimCustomer, rng: random.Random) -> dt.datetime:
        """People answer while awake: an answer falling in the night waits for the morning."""
        local = at.astimezone(self.zones[person.time_zone])
        if 7 <= local.hour < 23:
            return at
        morning = local.replace(hour=7, minute=rng.randrange(60), second=rng.randrange(60))
        if local.hour >= 23:
            morning += dt.timedelta(days=1)
        return morning.astimezone(dt.UTC) + dt.timedelta(hours=rng.random() * 3)

    def _push(self, at: dt.datetime, step: str, token: str, followup: str, answers: dict[str, Any]) -> None:
        self._order += 1
        heapq.heappush(self._pending, _Pending(at, self._order, step, token, followup, answers))

    def _answer_until(self, until: dt.datetime) -> None:
        runtime = self.runtime
        while self._pending and self._pending[0].at < until:
            pending = heapq.heappop(self._pending)
            self.clock.set(max(self.clock.now(), pending.at))
            now = self.clock.now()
            if pending.step in ("receipt", "sms", "opened"):
                self._report(pending, now)
                continue
            if pending.step == "privacy":
                self._visit_privacy_page(pending, now)
                continue
            if pending.step == "resurvey":
                rng = random.Random(f"{self.world.seed}|resurvey|{pending.token}")  # noqa: S311 - a simulation
                self.staffroom.answer_resurvey(pending.token, at=now, rng=rng, mood=pending.answers["mood"])
                continue
            try:
                with runtime.session() as session:
                    if pending.step == "rating":
                        followups.record_rating(
                            session,
                            pending.token,
                            pending.answers,
                            now=now,
                            keys=runtime.keys,
                            slas=runtime.settings.case_sla,
                        )
                    else:
                        followups.record_details(
                            session,
                            pending.token,
                            pending.answers,
                            now=now,
                            keys=runtime.keys,
                            slas=runtime.settings.case_sla,
                        )
            except (InvitationInvalid, AnswerInvalid):
                if pending.step == "rating" and pending.followup in self._answered:
                    self.answers.late_already_answered += 1
                elif pending.step == "rating":
                    self.answers.late_after_expiry += 1
                continue
            stats = self.answers
            if pending.step == "rating":
                self._answered.add(pending.followup)
                stats.ratings += 1
                stats.not_me += int(pending.answers.get(WAS_IT_YOU) == "no")
            elif not pending.answers:
                stats.skipped += 1
            else:
                stats.details += 1
                comment = pending.answers.get("comment")
                if comment is not None:
                    stats.comments += 1
                    if any(comment in COMMENTS[locale]["security"] for locale in COMMENTS):
                        stats.security_comments += 1

    def _report(self, pending: _Pending, now: dt.datetime) -> None:
        """What comes back other than a page's answer: a carrier's receipt, an SMS the customer
        sent (a score, STOP), the app's report of a push opened — through the services the
        webhooks and the API call."""
        runtime, stats = self.runtime, self.answers
        with runtime.session() as session:
            if pending.step == "receipt":
                receipts.apply_receipt(
                    session,
                    provider=SMS_PROVIDER,
                    provider_id=pending.token,
                    status=pending.answers["status"],
                    error=pending.answers["error"],
                    at=now,
                    reference=None,
                    now=now,
                )
            elif pending.step == "opened":
                dispatch.mark_opened(session, int(pending.token), now=now)
                stats.push_opened += 1
            else:
                self._order += 1
                message = InboundSms(
                    provider_id=f"demo-in-{self._order}",
                    sender=pending.token,
                    to="1069",
                    text=pending.answers["text"],
                    at=now,
                )
                outcome = inbound.receive_sms(
                    session, SMS_PROVIDER, message, settings=runtime.settings, keys=runtime.keys, now=now
                )
                if outcome.kind == "stop":
                    stats.sms_opt_outs += 1
                elif outcome.kind == "yes_no":
                    self._answered.add(pending.followup)
                    stats.ratings += 1
                    stats.sms_replies += 1
                    stats.not_me += int(bool(pending.answers.get("not_me")))
                elif outcome.kind == "score":
                    self._answered.add(pending.followup)
                    stats.ratings += 1
                    stats.sms_replies += 1
                    if pending.answers.get("security"):
                        stats.comments += 1
                        stats.security_comments += 1
                elif pending.followup:  # a score for an invitation no longer open: kept as a comment
                    if pending.followup in self._answered:
                        stats.late_already_answered += 1
                    else:
                        stats.late_after_expiry += 1


def _call_score(rng: random.Random, _call_id: int) -> int:
    """What a top-tier customer says on the phone: their NPS, most often a good one."""
    return _score(rng, "nps", mood=0.72, failed=0, disputes=0, takeover=False)


def _is_low(scale: str, score: int) -> bool:
    return score <= 6 if scale == "nps" else score <= 2


def _score(rng: random.Random, scale: str, *, mood: float, failed: int, disputes: int, takeover: bool) -> int:
    """A failed payment, a dispute or a hacked account this week pull the score down."""
    trouble = 1.3 * min(failed, 3) + 2.0 * min(disputes, 2) + (3.0 if takeover else 0.0)
    if scale == "nps":
        mean = 5.6 + 4.4 * mood - trouble
        return min(10, max(0, round(rng.gauss(mean, 1.6))))
    mean = 2.4 + 2.6 * mood - 0.45 * trouble
    return min(5, max(1, round(rng.gauss(mean, 0.8))))


def build_demo_runtime(settings: Settings, *, start: dt.datetime) -> tuple[Runtime, ManualClock]:
    """A runtime on a manual clock; `Simulation` plugs in the demo's channels."""
    clock = ManualClock(start)
    runtime = build_runtime(settings, clock=clock, channels={})
    return runtime, clock


STRATEGY_KEYS: tuple[str, ...] = tuple(body["key"] for body in STRATEGIES)


@dataclass(frozen=True)
class DemoRun:
    runtime: Runtime
    clock: ManualClock
    world: World
    answers: AnswerStats
    people: Staffroom


def play_month(
    settings: Settings,
    world: World,
    *,
    on_set_up: Callable[[], None] | None = None,
    on_day: Callable[[int], None] | None = None,
) -> DemoRun:
    """Set the world up in the (migrated, empty) database of `settings` and play its month.

    The caller owns the returned runtime and closes it.
    """
    runtime, clock = build_demo_runtime(settings, start=world.start)
    simulation = Simulation(runtime, world, clock)
    try:
        simulation.set_up()
        if on_set_up is not None:
            on_set_up()
        simulation.run(on_day=on_day)
    except BaseException:
        simulation.staffroom.close()
        runtime.close()
        raise
    simulation.staffroom.close()  # every webhook the month made has been delivered by now
    return DemoRun(runtime=runtime, clock=clock, world=world, answers=simulation.answers, people=simulation.staffroom)
