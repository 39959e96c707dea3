"""The synthetic wallet a benchmark measures against: settings, a survey, three strategies,
customers and a deterministic stream of events."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from followup.config import Settings, SmsProviderSettings
from followup.customers import service as customers
from followup.customers.schemas import CustomerUpsert
from followup.kernel.actors import SYSTEM
from followup.kernel.crypto import generate_master_key_text
from followup.kernel.db import make_engine
from followup.migrations.runner import upgrade
from followup.runtime import Runtime
from followup.strategies import service as strategies
from followup.strategies.schemas import StrategyCreate
from followup.surveys import service as surveys
from followup.surveys.schemas import SurveyCreate

SURVEY: dict[str, Any] = {
    "key": "wallet-feedback",
    "title": {"zh-CN": "钱包体验回访", "en": "Your wallet"},
    "questions": [
        {"id": "nps", "type": "nps", "prompt": {"zh-CN": "您有多大可能向朋友推荐我们？", "en": "Recommend us?"}},
        {"id": "comment", "type": "text", "required": False, "prompt": {"zh-CN": "还有什么？", "en": "Anything else?"}},
    ],
}

# The three strategies of issue 3: after a failed payment, after the first use of a feature,
# after a large transfer.
# The bench replays a backlog up to weeks old (see ingest.INGEST_NOW); each strategy keeps such
# events in play (`max_event_age`), so every match still costs the contact policy's checks.
STRATEGIES: list[dict[str, Any]] = [
    {
        "key": "after-failed-payment",
        "kind": "event",
        "trigger": {"event_types": ["payment.failed"]},
        "audience": {"field": "event.amount", "op": "gte", "value": 100},
        "delay": "PT10M",
        "channels": ["email", "inapp"],
        "survey": "wallet-feedback",
        "remind_after": "P2D",
        "recontact_days": 14,
        "max_event_age": "P60D",
    },
    {
        "key": "after-first-feature-use",
        "kind": "event",
        "trigger": {"event_types": ["feature.first_used"]},
        "audience": {"not": {"field": "customer.attributes.tier", "op": "eq", "value": "staff"}},
        "delay": "PT1H",
        "channels": ["inapp", "email"],
        "survey": "wallet-feedback",
        "recontact_days": 30,
        "max_event_age": "P60D",
    },
    {
        "key": "after-large-transfer",
        "kind": "event",
        "trigger": {"event_types": ["transfer.succeeded"]},
        "audience": {
            "all": [
                {"field": "event.amount", "op": "gte", "value": 500000},
                {"not": {"field": "customer.attributes.tier", "op": "eq", "value": "staff"}},
            ]
        },
        "delay": "PT30M",
        "channels": ["email", "inapp"],
        "survey": "wallet-feedback",
        "reward": {"points": 10},
        "remind_after": "P2D",
        "recontact_days": 30,
        "max_event_age": "P60D",
    },
]

# (type, weight): most events trigger nothing, as in a real wallet.
EVENT_MIX: list[tuple[str, int]] = [
    ("payment.succeeded", 50),
    ("payment.qr_succeeded", 15),
    ("topup.succeeded", 10),
    ("transfer.succeeded", 12),
    ("withdrawal.succeeded", 5),
    ("payment.failed", 5),
    ("feature.first_used", 3),
]
FEATURES = ["bill_split", "savings_jar", "qr_pay", "card_bind"]
EPOCH = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
SMS_SIGN = "好钱包"  # carriers require a 【sign】 on every SMS to a mainland number


def bench_settings(
    database_url: str,
    *,
    smtp_port: int = 2525,
    public_url: str = "http://127.0.0.1:8000",
    sms_providers: Sequence[SmsProviderSettings] = (),
) -> Settings:
    """Settings from arguments only: no .env and no FOLLOWUP_ variables leak into a measurement."""
    return Settings(
        _env_file=None,
        database_url=database_url,
        master_key=SecretStr(generate_master_key_text()),
        smtp_url=f"smtp://127.0.0.1:{smtp_port}",
        smtp_from="feedback@wallet.example",
        public_url=public_url,
        sms_providers=list(sms_providers),
        sms_sign=SMS_SIGN,
        log_level="WARNING",
    )


def migrate(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def daytime_zone(now: dt.datetime) -> str:
    """An IANA zone where it is about noon at `now`, so quiet hours never hold a benchmark up."""
    offset = 12 - now.astimezone(dt.UTC).hour
    if offset == 0:
        return "Etc/UTC"
    # The Etc zones count the other way round: Etc/GMT-8 is UTC+8.
    return f"Etc/GMT-{offset}" if offset > 0 else f"Etc/GMT+{-offset}"


def create_strategies(runtime: Runtime, *, channels: list[str] | None = None) -> None:
    """The survey and the three strategies; `channels` overrides every strategy's channel list."""
    now = runtime.clock.now()
    with runtime.session() as session:
        surveys.create_survey(
            session, SurveyCreate.model_validate(SURVEY), limits=runtime.settings.input_limits, now=now
        )
        for body in STRATEGIES:
            spec = {**body, "channels": channels} if channels else body
            strategies.create_strategy(
                session,
                StrategyCreate.model_validate(spec),
                available_channels=set(runtime.channels),
                limits=runtime.settings.input_limits,
                actor=SYSTEM,
                now=now,
            )


def customer_id(number: int) -> str:
    return f"cust-{number:07d}"


def phone_number(number: int) -> str:
    """A mainland mobile number in E.164 form, one per customer number."""
    return f"+86{13_800_000_000 + number}"


def create_reachable_customers(
    runtime: Runtime, count: int, *, time_zone: str = "Asia/Shanghai", with_phone: bool = False
) -> None:
    """Customers with an email address and consent to be asked for feedback by email and in-app;
    `with_phone` adds a mobile number and consent to SMS (off by default: it costs every other
    benchmark a contact point per customer)."""
    now = runtime.clock.now()
    with runtime.session() as session:
        for number in range(count):
            external_id = customer_id(number)
            body: dict[str, Any] = {
                "email": f"{external_id}@example.com",
                "locale": "zh-CN" if number % 3 else "en",
                "time_zone": time_zone,
                "attributes": {"tier": ("gold", "silver", "basic")[number % 3]},
                "consents": {"feedback": {"email": True, "inapp": True}},
            }
            if with_phone:
                body["phone"] = phone_number(number)
                body["consents"]["feedback"]["sms"] = True
            customers.upsert_customer(
                session,
                external_id,
                CustomerUpsert.model_validate(body),
                keys=runtime.keys,
                limits=runtime.settings.input_limits,
                actor=SYSTEM,
                now=now,
                built_in_notice_version=runtime.settings.privacy_notice_version,
            )


def event_batches(total: int, batch_size: int, *, customer_pool: int, seed: int = 7) -> Iterator[list[dict[str, Any]]]:
    """`total` events as the wallet would send them (JSON-shaped dicts), in batches; deterministic."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible on purpose
    types = [name for name, _ in EVENT_MIX]
    weights = [weight for _, weight in EVENT_MIX]
    produced = 0
    while produced < total:
        size = min(batch_size, total - produced)
        batch: list[dict[str, Any]] = []
        for kind in rng.choices(types, weights, k=size):
            occurred = EPOCH + dt.timedelta(seconds=produced * 2)
            event: dict[str, Any] = {
                "event_id": f"evt-{produced:09d}",
                "type": kind,
                "customer_id": customer_id(rng.randrange(customer_pool)),
                "occurred_at": occurred.isoformat(),
                "attributes": {},
            }
            if kind == "feature.first_used":
                event["attributes"] = {"feature": rng.choice(FEATURES)}
            else:
                event["amount"] = rng.choice((800, 5_000, 26_000, 120_000, 650_000))
                event["currency"] = "CNY"
                event["attributes"] = {"channel": rng.choice(("app", "qr", "web"))}
            batch.append(event)
            produced += 1
        yield batch


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"
