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


class ChannelError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransientChannelError(ChannelError):
    pass


class PermanentChannelError(ChannelError):
    pass


class DeliveryUnknownError(ChannelError):
    """The provider may or may not have accepted the message; it must not be sent again blindly."""


@dataclass(frozen=True)
class Delivery:
    message_id: int
    idempotency_key: str
    customer_id: int
    address: str | None
    content: MessageContent


@dataclass(frozen=True)
class Receipt:
    provider_ref: str


@dataclass(frozen=True)
class ChannelContext:
    """What a channel is built with (`registry.default_channels`, and a plugin's entry point): the
    settings, the clock, the keys, and a writing unit of work for a channel that keeps its own
    rows (the inbox) — not the process's runtime."""

    settings: Settings
    clock: Clock
    keys: KeyProvider
    session: Callable[[], AbstractContextManager[Session]]


class Channel(Protocol):
    name: str
    capabilities: Capabilities

    def send(self, delivery: Delivery, *, handoff: Callable[[], None]) -> Receipt: ...
