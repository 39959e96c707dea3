"""A loopback SMS gateway speaking the generic protocol (docs/channels/sms-gateway.md) that counts
what it accepts: the far end of the SMS dispatch benchmark.

It keeps connections alive (HTTP/1.1, a Content-Length on every answer), as a real gateway does,
so a client that reuses its connections is not made to open one per message. `latency_ms` is a
fixed wait before each answer, standing for a provider's round trip: without it a loopback server
answers so fast that sending several messages at once could not show. It does not remember
idempotency keys: every message of a benchmark is sent once, and each side checks the count.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from followup.bench.sink import Counter

REQUIRED_FIELDS = ("to", "text", "sender", "reference", "callback_url")


class GatewayCounter(Counter):
    """What the gateway has accepted, and the most requests it was answering at one time."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0
        self.in_flight = 0
        self.peak_in_flight = 0

    def begin(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def end(self, *, accepted: bool) -> None:
        with self._lock:
            self.in_flight -= 1
            if accepted:
                self.received += 1
            else:
                self.refused += 1


def _handler(counter: GatewayCounter, *, token: str, latency: float) -> type[BaseHTTPRequestHandler]:
    expected_auth = f"Bearer {token}"

    class GatewayHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive; every answer below carries a Content-Length
        disable_nagle_algorithm = True  # headers and body go out as two writes; do not hold the second
        timeout = 60  # an idle kept-alive connection's thread ends after this many seconds

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            counter.begin()
            accepted = False
            try:
                problem = self._problem(body)
                if latency:
                    time.sleep(latency)
                if problem is None:
                    self._answer(200, {"id": uuid.uuid4().hex})
                    accepted = True
                else:
                    self._answer(problem[0], {"error": problem[1]})
            finally:
                counter.end(accepted=accepted)

        def _problem(self, body: bytes) -> tuple[int, str] | None:
            """What a gateway would refuse in this request, as (status, error word); None if nothing."""
            if self.path != "/messages":
                return 404, "not_found"
            if self.headers.get("Authorization") != expected_auth:
                return 401, "unauthorized"
            if not self.headers.get("Idempotency-Key"):
                return 400, "idempotency_key_missing"
            try:
                message = json.loads(body)
            except ValueError:
                return 400, "not_json"
            if not isinstance(message, dict) or any(name not in message for name in REQUIRED_FIELDS):
                return 400, "fields_missing"
            return None

        def _answer(self, status: int, document: dict[str, str]) -> None:
            payload = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per request on stderr would cost more than the request

    return GatewayHandler


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a kept-alive connection left open does not hold the exit
    request_queue_size = 128  # up to 64 clients connect at once; the default backlog of 5 would drop some


class SmsGateway:
    """`with SmsGateway(token=..., latency_ms=20) as gateway:` a gateway at `gateway.url`, in threads; what it
    accepted is `gateway.counter`."""

    def __init__(self, *, token: str, latency_ms: int = 0) -> None:
        self.token = token
        self.counter = GatewayCounter()
        handler = _handler(self.counter, token=token, latency=latency_ms / 1000)
        self._server = _Server(("127.0.0.1", 0), handler)  # port 0: the system picks a free one
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="bench-sms-gateway", daemon=True)

    def __enter__(self) -> SmsGateway:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
