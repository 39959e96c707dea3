"""Channels for tests and the demo: real objects honouring the protocol, no patching needed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

from followup.channels.base import Delivery, PermanentChannelError, Receipt, TransientChannelError
from followup.channels.capabilities import Capabilities, OptOut, lookup


class ScriptedCrash(RuntimeError):
    """What a channel with a bug raises: none of the channel errors the protocol names."""


class RecordingChannel:
    """Accepts everything and remembers it. `fail_next` scripts failures: "transient", "permanent",
    or "crash" (an exception outside the protocol, as a provider library's bug would raise).
    It has the capabilities of the built-in channel of its name (an address-less one otherwise),
    idempotent or not as told."""

    def __init__(self, name: str, *, idempotent: bool = True) -> None:
        self.name = name
        known = lookup(name) or Capabilities(address=None, opt_out=OptOut.APP_SETTING, idempotent=True)
        self.capabilities = replace(known, idempotent=idempotent)
        self.sent: list[Delivery] = []
        self.fail_next: list[str] = []
        self._lock = threading.Lock()

    def send(self, delivery: Delivery, *, handoff: Callable[[], None]) -> Receipt:
        with self._lock:
            failure = self.fail_next.pop(0) if self.fail_next else None
        if failure == "transient":
            raise TransientChannelError("scripted transient failure")
        if failure == "permanent":
            raise PermanentChannelError("scripted permanent failure")
        if failure == "crash":
            raise ScriptedCrash(f"scripted crash while sending to {delivery.address}")
        handoff()
        with self._lock:
            self.sent.append(delivery)
        return Receipt(provider_ref=f"{self.name}:{delivery.idempotency_key}")
