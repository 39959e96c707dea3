"""Each request's id, its access line, and the one place an unexpected error is caught.

What must stay true:
- An unexpected exception is logged once, as fields (type, scrubbed message, short stack, request
  id), and answered with a plain 500 in the API's error shape. Nothing else logs it again: the
  exception does not travel on to the server, which would print it a second time.
- The access line names the route's template (`/s/{token}`), never the concrete path or query
  string, so invitation tokens, customer ids and search terms stay out of the log.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

import structlog

from followup.kernel.inputs import ASGIApp, Message, Receive, Scope, Send
from followup.kernel.logging import get_logger

log = get_logger("followup.http")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
REQUEST_ID_HEADER = b"x-request-id"


def _route_template(scope: Scope) -> str:
    """The matched route's template under its router's prefix (`/api/v1` + `/customers/{customer_id}`).

    The route knows only its own template; the prefix is the part of the concrete path in front of
    where the template matches, and prefixes are fixed text, never a parameter.
    """
    route: Any = scope.get("route")
    template = getattr(route, "path_format", None)
    pattern = getattr(route, "path_regex", None)
    if not isinstance(template, str) or pattern is None:
        return "(no route)"
    path: str = scope.get("path", "")
    tail = _tail_patterns.get(pattern.pattern)
    if tail is None:
        tail = _tail_patterns[pattern.pattern] = re.compile(pattern.pattern.lstrip("^"))
    match = tail.search(path)
    return (path[: match.start()] if match else "") + template


_tail_patterns: dict[str, re.Pattern[str]] = {}


class RequestLog:
    """ASGI middleware, outermost of ours: request id, access log, and the catch-all for bugs."""

    def __init__(self, app: ASGIApp, *, extra_headers: dict[str, str]) -> None:
        self.app = app
        # Headers a 500 written here still needs (the app's own header middleware never saw it).
        self.extra_headers = [(name.lower().encode(), value.encode()) for name, value in extra_headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(REQUEST_ID_HEADER, b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else secrets.token_hex(8)
        status = 500
        started = False
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, request_id.encode())]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:  # the one place a bug becomes a logged 500
                log.error("unhandled_error", exc_info=exc, method=scope["method"], route=_route_template(scope))
                if not started:
                    await self._internal_error(send_with_id, request_id)
            finally:
                log.info(
                    "request",
                    method=scope["method"],
                    route=_route_template(scope),
                    status=status,
                    duration_ms=round((time.perf_counter() - began) * 1000, 1),
                )

    async def _internal_error(self, send: Send, request_id: str) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": "internal_error",
                    "message": f"Something went wrong on our side; it has been logged as request {request_id}.",
                    "field": None,
                }
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *self.extra_headers,
        ]
        await send({"type": "http.response.start", "status": 500, "headers": headers})
        await send({"type": "http.response.body", "body": body})
