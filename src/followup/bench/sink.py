"""A loopback SMTP server that counts what it receives: the far end of the dispatch benchmark."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Counter:
    """How many messages the far end of a benchmark took, safe to read from another thread."""

    def __init__(self) -> None:
        self.received = 0
        self._lock = threading.Lock()

    def wait_for(self, count: int, *, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.received >= count:
                    return self.received
            time.sleep(0.01)
        return self.received


class CountingSink(Counter):
    """aiosmtpd handler: accepts every message and counts it; keeps none of them."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.received += 1
        return "250 OK: queued"


class SmtpSink:
    """`with SmtpSink() as sink:` an SMTP server on 127.0.0.1:`sink.port`, in a thread."""

    def __init__(self) -> None:
        self.handler = CountingSink()
        self.port = free_port()
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpSink:
        self._controller.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._controller.stop()
