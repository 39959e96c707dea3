"""Local stand-ins for Google's and Apple's push services, speaking their protocols on 127.0.0.1.

`FcmServer` is Google's OAuth token endpoint and FCM's messages:send on one HTTP/1.1 server: it
verifies the JWT grant with the service account's public key, hands out access tokens, and
accepts a message only with a token it issued and has not revoked. `ApnsServer` speaks HTTP/2 only
(prior knowledge, on the `h2` library) and checks what Apple checks: the ES256 provider token, its
age, the topic and the push type.

Both answer with success unless a test queues `Answer`s: a status and body, or a misbehaviour
(`hang` never answers, `drop` closes the connection once the request has arrived).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from followup.channels.push.jwt import InvalidTokenError, verify
from followup.kernel.time import Clock

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
PROJECT_ID = "demo-wallet"


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: Any = None  # a JSON value, or None for no body
    headers: dict[str, str] = field(default_factory=dict)
    misbehave: Literal["hang", "drop"] | None = None


def fcm_error(status: int, state: str, *, error_code: str | None = None, message: str = "refused") -> Answer:
    """FCM's error body: a google.rpc.Status, with an FcmError detail when FCM names a cause."""
    error: dict[str, Any] = {"code": status, "message": message, "status": state}
    if error_code is not None:
        error["details"] = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}]
    return Answer(status=status, body={"error": error})


@dataclass(frozen=True)
class FcmMessage:
    authorization: str
    body: dict[str, Any]


class FcmServer:
    def __init__(self, *, public_key: rsa.RSAPublicKey, client_email: str, clock: Clock) -> None:
        self.public_key = public_key
        self.client_email = client_email
        self.clock = clock
        self.token_requests: list[dict[str, Any]] = []  # the verified claims of each grant
        self.grant_headers: list[dict[str, Any]] = []  # the JWT header of each grant
        self.messages: list[FcmMessage] = []  # every messages:send request, refused or not
        self.answers: list[Answer] = []  # for messages:send, in order; success once empty
        self.issued: list[str] = []
        self.revoked: set[str] = set()
        self.connections = 0
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.token_url = f"{self.url}/token"
        self.send_url = f"{self.url}/v1/projects/{PROJECT_ID}/messages:send"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Google's front ends do

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server.connections += 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.path == "/token":
                    self._reply(server._grant(body))
                elif self.path == f"/v1/projects/{PROJECT_ID}/messages:send":
                    answer = server._send(self.headers.get("authorization", ""), body)
                    if answer.misbehave == "hang":
                        server._release.wait(timeout=10)
                        self.close_connection = True
                    elif answer.misbehave == "drop":
                        self.close_connection = True
                    else:
                        self._reply(answer)
                else:
                    self._reply(Answer(404, {"error": {"code": 404, "status": "NOT_FOUND", "message": "no such path"}}))

            def _reply(self, answer: Answer) -> None:
                payload = b"" if answer.body is None else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                self.send_header("content-type", "application/json; charset=UTF-8")
                self.send_header("content-length", str(len(payload)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        return Handler

    def _grant(self, raw: bytes) -> Answer:
        form = {name: values[0] for name, values in parse_qs(raw.decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return Answer(400, {"error": "unsupported_grant_type"})
        try:
            header, claims = verify(form.get("assertion", ""), self.public_key, algorithm="RS256")
        except InvalidTokenError:
            return Answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        now = int(self.clock.now().timestamp())
        expected = {"iss": self.client_email, "scope": FCM_SCOPE, "aud": self.token_url, "iat": now, "exp": now + 3600}
        if claims != expected:
            return Answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT claims."})
        with self._lock:
            self.token_requests.append(claims)
            self.grant_headers.append(header)
            access_token = f"ya29.test-token-{len(self.issued) + 1}"
            self.issued.append(access_token)
        return Answer(200, {"access_token": access_token, "expires_in": 3599, "token_type": "Bearer"})

    def _send(self, authorization: str, raw: bytes) -> Answer:
        with self._lock:
            self.messages.append(FcmMessage(authorization, json.loads(raw)))
            bearer = authorization.removeprefix("Bearer ")
            if bearer not in self.issued or bearer in self.revoked:
                return Answer(401, {"error": {"code": 401, "message": "bad credentials", "status": "UNAUTHENTICATED"}})
            if self.answers:
                return self.answers.pop(0)
            return Answer(200, {"name": f"projects/{PROJECT_ID}/messages/0:{len(self.messages)}"})


@dataclass(frozen=True)
class ApnsRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    token_claims: dict[str, Any] | None  # None when the provider token did not verify


class ApnsServer:
    """APNs over cleartext HTTP/2 (prior knowledge). Thread per connection; `stop()` ends them."""

    def __init__(
        self, *, public_key: ec.EllipticCurvePublicKey, key_id: str, team_id: str, topic: str, clock: Clock
    ) -> None:
        self.public_key = public_key
        self.key_id = key_id
        self.team_id = team_id
        self.topic = topic
        self.clock = clock
        self.requests: list[ApnsRequest] = []
        self.answers: list[Answer] = []  # for requests that pass Apple's checks; success once empty
        self.connections = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            for sock in self._sockets:
                _close(sock)
        for thread in list(self._threads):
            thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._sockets.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        try:
            sock.sendall(conn.data_to_send())
            while not self._stopped.is_set():
                data = sock.recv(65536)
                if not data:
                    return
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        streams[event.stream_id] = ({str(k): str(v) for k, v in event.headers or []}, bytearray())
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id][1].extend(event.data or b"")
                        conn.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id or 0)
                    elif isinstance(event, h2.events.StreamEnded):
                        headers, body = streams.pop(event.stream_id or 0)
                        answer = self._answer(headers, bytes(body))
                        if answer.misbehave == "drop":
                            return
                        if answer.misbehave is None:
                            _respond(conn, event.stream_id or 0, answer)
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        return
                sock.sendall(conn.data_to_send())
        except (OSError, h2.exceptions.ProtocolError):
            return
        finally:
            _close(sock)

    def _answer(self, headers: dict[str, str], raw: bytes) -> Answer:
        """Apple's own checks first, in the order APNs reports them; then the test's script."""
        claims = self._provider_token_claims(headers.get("authorization", ""))
        with self._lock:
            self.requests.append(ApnsRequest(headers[":path"], headers, json.loads(raw), claims))
            if headers[":method"] != "POST":
                return _reason(405, "MethodNotAllowed")
            if not headers[":path"].startswith("/3/device/"):
                return _reason(404, "BadPath")
            if claims is None:
                return _reason(403, "InvalidProviderToken")
            if int(self.clock.now().timestamp()) - int(claims["iat"]) > 3600:
                return _reason(403, "ExpiredProviderToken")
            if headers.get("apns-topic") != self.topic:
                return _reason(400, "DeviceTokenNotForTopic")
            if headers.get("apns-push-type") != "alert":
                return _reason(400, "InvalidPushType")
            if self.answers:
                return self.answers.pop(0)
            return Answer(200, None, {"apns-id": headers.get("apns-id") or str(uuid.uuid4())})

    def _provider_token_claims(self, authorization: str) -> dict[str, Any] | None:
        try:
            header, claims = verify(authorization.removeprefix("bearer "), self.public_key, algorithm="ES256")
        except InvalidTokenError:
            return None
        if (
            header.get("kid") != self.key_id
            or claims.get("iss") != self.team_id
            or not isinstance(claims.get("iat"), int)
        ):
            return None
        return claims


def apns_reason(status: int, reason: str, **headers: str) -> Answer:
    return Answer(status, {"reason": reason}, headers)


_reason = apns_reason


def _respond(conn: h2.connection.H2Connection, stream_id: int, answer: Answer) -> None:
    response_headers = [(":status", str(answer.status)), *answer.headers.items()]
    if answer.body is None:
        conn.send_headers(stream_id, response_headers, end_stream=True)
        return
    payload = json.dumps(answer.body).encode()
    conn.send_headers(stream_id, [*response_headers, ("content-type", "application/json")])
    conn.send_data(stream_id, payload, end_stream=True)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the client
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
