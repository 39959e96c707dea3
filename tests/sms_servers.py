"""Local HTTP servers that play the SMS providers: our generic gateway, Twilio's Messages API and
Alibaba Cloud's SendSms, each on 127.0.0.1 in a thread of its own.

Each server checks a request the way its provider does, with the provider's published algorithm
written again here (not imported from the code under test): the gateway's Bearer token and
Idempotency-Key, Twilio's basic auth, Alibaba Cloud's RPC signature. A request that fails the
check is answered as the provider would answer it, and recorded in `refused`.

A test scripts unusual answers with `server.script(Answer(...))`: the next request gets it
(a status, a Retry-After, a delay longer than the client's read timeout, or a dropped connection).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote_plus


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: object = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering
    drop: bool = False  # read the request, then close the connection without a word


class LocalServer:
    """A threaded HTTP/1.1 server on a free loopback port; `decide` answers each request."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.refused: list[Received] = []
        self._scripted: deque[Answer] = deque()
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Received(
                    method=self.command,
                    path=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=self.rfile.read(length),
                )
                answer = owner._answer(request)
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.drop:
                    self.close_connection = True
                    return
                body = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    # A late answer to a client that timed out and closed: what the test wanted.
                    self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self._scripted.extend(answers)

    def _answer(self, request: Received) -> Answer:
        with self._lock:
            self.received.append(request)
            refusal = self.check(request)
            if refusal is not None:
                self.refused.append(request)
                return refusal
            if self._scripted:
                return self._scripted.popleft()
            return self.accept(request)

    def check(self, request: Received) -> Answer | None:
        """The provider's refusal of a request that fails its checks, or None."""
        return None

    def accept(self, request: Received) -> Answer:
        return Answer()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class GenericGateway(LocalServer):
    """docs/channels/sms-gateway.md from the gateway's side: Bearer token, Idempotency-Key equal to
    the reference, and a second request with a known key answered with the first id, unsent."""

    def __init__(self, *, token: str) -> None:
        self.token = token
        self.sent: list[dict[str, object]] = []  # the messages that went out to a handset
        self._ids: dict[str, str] = {}
        self._next = itertools.count(1)
        super().__init__()

    def check(self, request: Received) -> Answer | None:
        if request.method != "POST" or request.path != "/messages":
            return Answer(404, {"error": "not_found"})
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Answer(401, {"error": "unauthorized"})
        body = request.json()
        if not isinstance(body, dict) or request.headers.get("idempotency-key") != body.get("reference"):
            return Answer(400, {"error": "bad_idempotency_key"})
        return None

    def accept(self, request: Received) -> Answer:
        key = request.headers["idempotency-key"]
        if key not in self._ids:
            self._ids[key] = f"gw-{next(self._next)}"
            body = request.json()
            assert isinstance(body, dict)
            self.sent.append(body)
        return Answer(201, {"id": self._ids[key]})


class TwilioApi(LocalServer):
    """Twilio's Messages API: basic auth with the account SID and auth token, a form body."""

    def __init__(self, *, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._next = itertools.count(1)
        super().__init__()

    def check(self, request: Received) -> Answer | None:
        if request.path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return Answer(404, {"code": 20404, "message": "The requested resource was not found", "status": 404})
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return Answer(401, {"code": 20003, "message": "Authenticate", "status": 401})
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return Answer(400, {"code": 21600, "message": "not a form", "status": 400})
        return None

    def accept(self, request: Received) -> Answer:
        sid = f"SM{next(self._next):032x}"
        return Answer(201, {"sid": sid, "status": "queued"})


def aliyun_percent_encode(value: str) -> str:
    """Alibaba Cloud's documented recipe: form-encode, then + to %20, * to %2A and %7E back to ~."""
    return quote_plus(value, safe="*").replace("+", "%20").replace("*", "%2A").replace("%7E", "~")


def aliyun_signature(params: dict[str, str], secret: str, method: str) -> str:
    canonical = "&".join(
        f"{aliyun_percent_encode(k)}={aliyun_percent_encode(v)}" for k, v in sorted(params.items()) if k != "Signature"
    )
    string_to_sign = f"{method}&{aliyun_percent_encode('/')}&{aliyun_percent_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class AliyunApi(LocalServer):
    """Alibaba Cloud's dysmsapi endpoint: recomputes the RPC signature of every request."""

    def __init__(self, *, access_key_id: str, access_key_secret: str) -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self._next = itertools.count(1)
        super().__init__()

    def check(self, request: Received) -> Answer | None:
        params = request.form()
        if params.get("AccessKeyId") != self.access_key_id:
            return Answer(404, {"Code": "InvalidAccessKeyId.NotFound", "Message": "Specified access key is not found."})
        try:
            given = base64.b64decode(params.get("Signature", ""), validate=True)
        except binascii.Error:
            given = b""
        expected = base64.b64decode(aliyun_signature(params, self.access_key_secret, request.method))
        if not hmac.compare_digest(given, expected):
            return Answer(400, {"Code": "SignatureDoesNotMatch", "Message": "Specified signature is not matched."})
        return None

    def accept(self, request: Received) -> Answer:
        number = next(self._next)
        return Answer(200, {"Code": "OK", "Message": "OK", "BizId": f"9006197{number:08d}^0", "RequestId": "F655A8D5"})
