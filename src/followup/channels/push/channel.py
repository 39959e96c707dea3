"""The push channel: a notification to the customer's newest device, through the provider of its
platform (FCM for android, APNs for ios). A device's token belongs to one platform, so there is no
failover between the two; a provider's "unregistered" marks the device, and the follow-up moves on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from followup.channels.base import Delivery
from followup.channels.capabilities import BUILT_IN, PUSH
from followup.channels.health import ProviderHealth
from followup.channels.provider_channel import ProviderChannel
from followup.channels.providers import Outgoing, Provider
from followup.channels.rate_limit import RateLimiter
from followup.kernel.time import Clock


class PushChannel(ProviderChannel):
    def __init__(
        self,
        by_platform: Mapping[str, Provider],
        *,
        health: ProviderHealth,
        limiter: RateLimiter,
        clock: Clock,
    ) -> None:
        providers = list(by_platform.values())
        idempotent = all(provider.idempotent for provider in providers)
        super().__init__(
            PUSH, replace(BUILT_IN[PUSH], idempotent=idempotent), providers, health=health, limiter=limiter, clock=clock
        )
        self._by_platform = dict(by_platform)

    def route(self, delivery: Delivery) -> list[Provider]:
        provider = self._by_platform.get(delivery.platform or "")
        return [provider] if provider is not None else []

    def outgoing(self, delivery: Delivery) -> Outgoing:
        content = delivery.content
        text = (content.short_body or content.body).strip()
        if content.question:
            text = f"{text}\n{content.question.strip()}"
        collapse = f"followup-{delivery.followup_id}" if delivery.followup_id is not None else None
        return Outgoing(
            to=delivery.address or "",
            text=text,
            title=content.subject,
            reference=delivery.idempotency_key,
            link=content.link or None,
            collapse_id=collapse,
        )
