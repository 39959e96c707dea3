"""Providers' health, shared by every worker: failures in a row open a provider's circuit.

A provider that fails `threshold` sends in a row (timeouts, refused connections, 429, 5xx) is
skipped until `cooldown` has passed; then the next send tries it again, and a failure opens the
circuit anew while a success closes it. Each skip is counted. A worker reads which circuits are
open at most once a second, and writes a success only when it changes something (the provider
had failures) or once a minute (the console's "last success"), so a healthy provider costs
nothing per message.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy.orm import Session

from followup.channels.repository import ProviderStateRepository
from followup.kernel.time import Clock

_READ_EVERY = 1.0  # seconds between reads of the open circuits
_SUCCESS_EVERY = dt.timedelta(minutes=1)


class ProviderHealth:
    def __init__(
        self,
        channel: str,
        session: Callable[[], AbstractContextManager[Session]],
        *,
        clock: Clock,
        threshold: int,
        cooldown: dt.timedelta,
    ) -> None:
        self.channel = channel
        self._session = session
        self._clock = clock
        self._threshold = threshold
        self._cooldown = cooldown
        self._lock = threading.Lock()
        self._open: dict[str, dt.datetime] = {}
        self._read_at = -_READ_EVERY
        self._failing: set[str] = set()
        self._success_written: dict[str, dt.datetime] = {}

    def open_until(self, provider: str) -> dt.datetime | None:
        """When the provider's circuit closes again; None when it is closed now."""
        now = self._clock.now()
        with self._lock:
            if time.monotonic() - self._read_at >= _READ_EVERY:
                with self._session() as session:
                    self._open = ProviderStateRepository(session).open_circuits(self.channel, now=now)
                self._read_at = time.monotonic()
            until = self._open.get(provider)
        return until if until is not None and until > now else None

    def record_skip(self, provider: str) -> None:
        with self._session() as session:
            state = ProviderStateRepository(session).for_update(self.channel, provider)
            state.skipped += 1

    def record_failure(self, provider: str, code: str) -> None:
        now = self._clock.now()
        with self._session() as session:
            state = ProviderStateRepository(session).for_update(self.channel, provider)
            state.failures_in_row += 1
            state.last_error_code, state.last_error_at = code[:64], now
            if state.failures_in_row >= self._threshold:
                state.open_until = now + self._cooldown
                with self._lock:
                    self._open[provider] = state.open_until
        with self._lock:
            self._failing.add(provider)

    def record_error(self, provider: str, code: str) -> None:
        """An error that says nothing of the provider's health (a refused address): remembered as
        its last error only."""
        now = self._clock.now()
        with self._session() as session:
            state = ProviderStateRepository(session).for_update(self.channel, provider)
            state.last_error_code, state.last_error_at = code[:64], now

    def record_success(self, provider: str) -> None:
        now = self._clock.now()
        with self._lock:
            written = self._success_written.get(provider)
            if provider not in self._failing and written is not None and now - written < _SUCCESS_EVERY:
                return
            self._failing.discard(provider)
            self._success_written[provider] = now
            self._open.pop(provider, None)
        with self._session() as session:
            state = ProviderStateRepository(session).for_update(self.channel, provider)
            state.failures_in_row, state.open_until, state.last_success_at = 0, None, now
