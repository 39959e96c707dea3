"""The channel protocol: one method to hand a message to the outside world.

A channel raises `TransientChannelError` when trying again later may work (connection refused,
4xx SMTP reply) and `PermanentChannelError` when it never will (address rejected). A channel
that takes an idempotency key says so in its capabilities (`capabilities.Capabilities`); the
dispatcher may then retry a send whose fate is unknown. A channel without one calls `handoff()`
at the last moment before the provider could have accepted the message, so that the dispatcher
can record the point after which a crash leaves the message's fate unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from followup.channels.capabilities import Capabilities
from followup.channels.schemas import MessageContent
from followup.config import Settings
from followup.kernel.crypto import KeyProvider
from followup.kernel.time import Clock


@dataclass(frozen=True)
class ProviderTry:
    """One provider's part in a send that went on to another (failover), or skipped it (its
    circuit was open): recorded as an attempt of its own."""

    provider: str
    outcome: str  # transient | skipped
    error_code: str | None
    latency_ms: int


class ChannelError(Exception):
    def __init__(
        self, message: str, *, code: str | None = None, provider: str | None = None, tries: tuple[ProviderTry, ...] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code  # a short stable word for the attempt's error code
        self.provider = provider  # the provider that answered so, for a channel with several
        self.tries = tries  # the providers tried or skipped before it


class TransientChannelError(ChannelError):
    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        provider: str | None = None,
        tries: tuple[ProviderTry, ...] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, provider=provider, tries=tries)
        self.retry_after = retry_after  # seconds the provider asked us to wait


class PermanentChannelError(ChannelError):
    pass


class DeliveryUnknownError(ChannelError):
    """The provider may or may not have accepted the message; it must not be sent again blindly."""


class AddressUnusableError(PermanentChannelError):
    """The provider says the address is dead: the contact point becomes `status` (bounced,
    invalid, unregistered) and the policy stops using it until the wallet gives a new one."""

    def __init__(
        self,
        message: str,
        *,
        status: str,
        code: str | None = None,
        provider: str | None = None,
        tries: tuple[ProviderTry, ...] = (),
    ) -> None:
        super().__init__(message, code=code, provider=provider, tries=tries)
        self.status = status


@dataclass(frozen=True)
class Delivery:
    message_id: int
    idempotency_key: str
    customer_id: int
    address: str | None
    content: MessageContent
    followup_id: int | None = None
    contact_id: int | None = None  # the contact point `address` was read from
    # The provider an earlier claim of this message may have reached (its worker stopped): only it
    # may be tried now. `resumed` says an earlier claim was lost at all (then, with no provider
    # named, only the first provider in order could have been reached).
    pinned_provider: str | None = None
    resumed: bool = False
    platform: str | None = None  # a push device's: android, ios
    locale: str = "zh-CN"


@dataclass(frozen=True)
class Receipt:
    provider_ref: str
    provider: str | None = None  # which provider took it, for a channel with several
    tries: tuple[ProviderTry, ...] = ()  # the providers tried or skipped before it
    segments: int | None = None  # an SMS's segment count


@dataclass(frozen=True)
class ChannelContext:
    """What a channel is built with (`registry.default_channels`, and a plugin's entry point): the
    settings, the clock, the keys, and a writing unit of work for a channel that keeps its own
    rows (the inbox) — not the process's runtime."""

    settings: Settings
    clock: Clock
    keys: KeyProvider
    session: Callable[[], AbstractContextManager[Session]]


class Handoff(Protocol):
    """What the dispatcher hands a channel to record how far a send got.

    Calling it marks the point of no return (see the module's docstring); a channel with several
    providers names the one it is about to hand the message to. `pin(provider)` records, without
    that point, which provider is about to see a message with an idempotency key: if the worker
    stops there, the message is tried again at that provider only, never through another.
    """

    def __call__(self, provider: str | None = None) -> None: ...

    def pin(self, provider: str) -> None: ...


class Channel(Protocol):
    name: str
    capabilities: Capabilities

    def send(self, delivery: Delivery, *, handoff: Handoff) -> Receipt: ...
