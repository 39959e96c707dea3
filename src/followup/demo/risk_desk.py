"""The demo's risk team: a webhook endpoint on loopback that hears `security.concern` and checks
each delivery's Standard Webhooks signature, as the wallet's own risk system would."""

from __future__ import annotations

import hmac
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from followup.kernel import standard_webhooks

MAX_BODY = 1_000_000


@dataclass
class Heard:
    """What the endpoint received: each event type, and how many signatures did not check out."""

    by_type: dict[str, int] = field(default_factory=dict)
    bad_signatures: int = 0


class RiskDesk:
    """Start with `start()`, set `secret` to the endpoint's `whsec_` secret, stop with `close()`."""

    def __init__(self) -> None:
        self.secret = ""
        self.heard = Heard()
        self._lock = threading.Lock()
        desk = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("content-length") or 0), MAX_BODY)
                body = self.rfile.read(length)
                desk.receive(dict(self.headers.items()), body)
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: the demo prints its own summary

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/risk/followup"

    def start(self) -> None:
        self._thread.start()

    def receive(self, headers: dict[str, str], body: bytes) -> None:
        lowered = {key.lower(): value for key, value in headers.items()}
        msg_id, stamp = lowered.get("webhook-id", ""), lowered.get("webhook-timestamp", "")
        given = lowered.get("webhook-signature", "").split()
        try:
            expected = standard_webhooks.sign(self.secret, msg_id, int(stamp), body)
            kind = str(json.loads(body).get("type", "?"))
        except ValueError:
            expected, kind = "", "?"
        valid = bool(expected) and any(hmac.compare_digest(sig, expected) for sig in given)
        with self._lock:
            if not valid:
                self.heard.bad_signatures += 1
                return
            self.heard.by_type[kind] = self.heard.by_type.get(kind, 0) + 1

    def close(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for a serve_forever that must have begun
            self._server.shutdown()
        self._server.server_close()
