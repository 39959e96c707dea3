"""A channel that sends through providers: in order, skipping any whose circuit is open, each
held to its shared rate limit.

A provider that fails transiently (timeout before sending, refused connection, 429, 5xx) hands the
message to the next one, and the dispatcher records both tries. A provider whose answer never came
(`UnknownOutcomeError`) ends the send as unknown: the message may have gone, so no other provider
sees it. A provider without idempotency is only called after the dispatcher's `handoff()`, so a
crash during the call leaves the message unknown rather than sent twice.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence

from followup.channels.base import (
    AddressUnusableError,
    Delivery,
    DeliveryUnknownError,
    Handoff,
    PermanentChannelError,
    ProviderTry,
    Receipt,
    TransientChannelError,
)
from followup.channels.capabilities import Capabilities
from followup.channels.health import ProviderHealth
from followup.channels.providers import (
    AddressGoneError,
    Outgoing,
    PermanentProviderError,
    Provider,
    TransientProviderError,
    UnknownOutcomeError,
)
from followup.channels.rate_limit import RateLimiter, acquire
from followup.kernel.time import Clock


class ProviderChannel:
    """The failover, circuit and rate limit around a channel's providers; a subclass says which
    providers a delivery may use (`route`) and what to send them (`outgoing`)."""

    def __init__(
        self,
        name: str,
        capabilities: Capabilities,
        providers: Sequence[Provider],
        *,
        health: ProviderHealth,
        limiter: RateLimiter,
        clock: Clock,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.capabilities = capabilities
        self.providers = list(providers)
        self.health = health
        self._limiter = limiter
        self._clock = clock
        self._sleep = sleep
        # A worker sends a batch with up to `concurrency` threads; each provider takes at most its
        # own number of them at once.
        self._slots = {provider.name: threading.BoundedSemaphore(provider.concurrency) for provider in providers}
        self._paced = {provider.name: threading.Lock() for provider in providers if provider.rate_per_second}
        self.concurrency = max((provider.concurrency for provider in providers), default=1)

    def route(self, delivery: Delivery) -> list[Provider]:
        return self.providers

    def outgoing(self, delivery: Delivery) -> Outgoing:
        raise NotImplementedError

    def for_provider(self, outgoing: Outgoing, provider: Provider) -> Outgoing:
        """What this provider is sent (an SMS names its receipts' URL, which is the provider's)."""
        return outgoing

    def receipt(self, delivery: Delivery, outgoing: Outgoing, provider: Provider, provider_id: str) -> Receipt:
        return Receipt(provider_ref=provider_id, provider=provider.name)

    def close(self) -> None:
        for provider in self.providers:
            provider.close()

    def send(self, delivery: Delivery, *, handoff: Handoff) -> Receipt:
        providers = self.route(delivery)
        if not providers:
            raise PermanentChannelError(f"no {self.name} provider serves this address", code="no_provider")
        if delivery.pinned_provider is not None:
            # An earlier claim's worker stopped while this provider may have had the message.
            providers = [provider for provider in providers if provider.name == delivery.pinned_provider]
            if not providers:
                raise DeliveryUnknownError(
                    f"the {self.name} provider that may have the message is no longer configured",
                    code="pinned_provider_gone",
                    provider=delivery.pinned_provider,
                )
        elif delivery.resumed:
            providers = providers[:1]  # with nothing pinned, only the first could have been reached
        outgoing = self.outgoing(delivery)
        tries: list[ProviderTry] = []
        retry_after: float | None = None
        for provider in providers:
            closed_at = self.health.open_until(provider.name)
            if closed_at is not None:
                self.health.record_skip(provider.name)
                tries.append(ProviderTry(provider.name, "skipped", "circuit_open", 0))
                wait = (closed_at - self._clock.now()).total_seconds()
                retry_after = wait if retry_after is None else min(retry_after, wait)
                continue
            with contextlib.ExitStack() as pacing:
                # A provider with a rate limit takes one send at a time from this worker, its slot
                # taken and used in turn: threads sending at once could otherwise arrive bunched.
                if provider.name in self._paced:
                    pacing.enter_context(self._paced[provider.name])
                wait = acquire(
                    self._limiter, f"{self.name}:{provider.name}", provider.rate_per_second, sleep=self._sleep
                )
                if wait:
                    tries.append(ProviderTry(provider.name, "skipped", "rate_limited", 0))
                    retry_after = wait if retry_after is None else min(retry_after, wait)
                    continue
                if not provider.idempotent:
                    handoff(provider.name)  # past this point a stop leaves the message unknown
                elif provider is not providers[0]:
                    handoff.pin(provider.name)  # a stop now retries at this provider, never another
                started = time.monotonic()
                sent = self.for_provider(outgoing, provider)
                try:
                    with self._slots[provider.name]:
                        provider_id = provider.send(sent)
                except UnknownOutcomeError as exc:
                    self.health.record_failure(provider.name, exc.code)
                    raise DeliveryUnknownError(
                        exc.message, code=exc.code, provider=provider.name, tries=tuple(tries)
                    ) from exc
                except AddressGoneError as exc:
                    self.health.record_error(provider.name, exc.code)
                    raise AddressUnusableError(
                        exc.message, status=exc.status, code=exc.code, provider=provider.name, tries=tuple(tries)
                    ) from exc
                except PermanentProviderError as exc:
                    self.health.record_error(provider.name, exc.code)
                    raise PermanentChannelError(
                        exc.message, code=exc.code, provider=provider.name, tries=tuple(tries)
                    ) from exc
                except TransientProviderError as exc:
                    self.health.record_failure(provider.name, exc.code)
                    if provider is providers[-1]:
                        raise TransientChannelError(
                            exc.message,
                            code=exc.code,
                            provider=provider.name,
                            tries=tuple(tries),
                            retry_after=_later(retry_after, exc.retry_after),
                        ) from exc
                    tries.append(ProviderTry(provider.name, "transient", exc.code, _ms(started)))
                    retry_after = _later(retry_after, exc.retry_after)
                    continue
                self.health.record_success(provider.name)
                receipt = self.receipt(delivery, sent, provider, provider_id)
                return Receipt(
                    provider_ref=receipt.provider_ref,
                    provider=provider.name,
                    tries=tuple(tries),
                    segments=receipt.segments,
                )
        last = tries.pop() if tries else None
        raise TransientChannelError(
            f"every {self.name} provider is unavailable now",
            code=last.error_code if last else "no_provider",
            provider=last.provider if last else None,
            tries=tuple(tries),
            retry_after=retry_after,
        )


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _later(current: float | None, asked: float | None) -> float | None:
    if asked is None:
        return current
    return asked if current is None else max(current, asked)
