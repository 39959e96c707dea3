"""The guard every request passes before any route sees it: a bounded body, and no control
characters anywhere a person or a program could put them (path, query string, JSON, forms).

Why here and not in each schema: PostgreSQL text cannot hold NUL, a header cannot hold a line
break, a lone surrogate cannot be encoded — and a single path that forgets one of these costs a
500. Refusing them at the door keeps every route, present and future, on the same rule.

Line breaks and tabs stay allowed inside bodies (comments and prompts have them); fields that end
up on one line (titles, names) refuse them in their own schemas.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# C0 controls, DEL, C1 controls and surrogates; a text body may keep tab, line feed and carriage return.
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# The same characters written as JSON escapes (\u0000, \b, \f, \ud800 …), counted only when the
# backslash is not itself escaped. A surrogate pair is fine; a lone half is not.
_JSON_ESCAPE_TEXT = (
    r"(?<!\\)(?:\\\\)*\\(?:[bf]|u00[01][0-8bcefBCEF]|u001[0-9a-fA-F]|u007[fF]|u00[89][0-9a-fA-F]"
    r"|u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2}\\)u[dD][c-fC-F][0-9a-fA-F]{2})"
)
_JSON_ESCAPE = re.compile(_JSON_ESCAPE_TEXT.encode())
# The same test on JSON text as Python writes it (ensure_ascii=False leaves C1 and DEL unescaped).
_JSON_CONTROL = re.compile(_JSON_ESCAPE_TEXT + r"|[\x7f-\x9f]")


def json_has_control(encoded: str) -> bool:
    """Whether JSON text holds a control character other than tab, line feed and carriage return."""
    return _JSON_CONTROL.search(encoded) is not None


# Raw bytes of the same characters in UTF-8 (C0 but tab/LF/CR, DEL, C1 as \xc2\x80-\x9f).
_RAW_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\xc2[\x80-\x9f]")


class InputRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def check_text(value: str, *, where: str, multiline: bool = False) -> None:
    """Raise InputRefused when `value` holds a character no input here may hold."""
    pattern = _CONTROL_IN_TEXT if multiline else _ANY_CONTROL
    found = pattern.search(value)
    if found:
        raise InputRefused(
            400,
            "invalid_character",
            f"The {where} contains a control character (U+{ord(found.group()):04X}); "
            "remove it and send the request again.",
        )


def _check_body(body: bytes, content_type: str) -> None:
    if not body:
        return
    if _RAW_CONTROL.search(body):
        raise InputRefused(
            400, "invalid_character", "The request body contains a control character; remove it and send it again."
        )
    is_form = content_type.startswith(("application/x-www-form-urlencoded", "multipart/"))
    if not is_form and _JSON_ESCAPE.search(body):
        raise InputRefused(
            400,
            "invalid_character",
            "The JSON body contains an escaped control character or a lone surrogate (such as \\u0000 or "
            "\\ud800); remove it and send the request again.",
        )
    if content_type.startswith("application/x-www-form-urlencoded"):
        text = body.decode("utf-8", "replace")
        for key, value in parse_qsl(text, keep_blank_values=True, errors="surrogateescape"):
            check_text(key + value, where="form", multiline=True)


class InputGuard:
    """ASGI middleware: refuse oversized bodies (413) and control characters (400) before routing.

    The body is read once, up to its limit, and replayed to the app; a body over the limit is
    refused as soon as the limit is passed, without reading the rest.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        large_bodies: dict[str, int],
        batches: frozenset[str],
        extra_headers: dict[str, str],
    ) -> None:
        self.app = app
        # Security headers of the app: a refusal written here never reaches the app's own middleware.
        self.extra_headers = [(name.lower().encode(), value.encode()) for name, value in extra_headers.items()]
        self.max_body_bytes = max_body_bytes
        # Paths whose own request shape allows a larger body (the events batch).
        self.large_bodies = large_bodies
        # Paths that judge each item of a batch on its own: one bad item is refused in the answer
        # while the others are taken, so the body is not refused whole here.
        self.batches = batches

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self._check_url(scope)
            body = await self._read_body(scope, receive)
            # Batches judge each item on its own; providers' webhooks carry what customers typed,
            # which the hooks read safely (`text.plain_text`) instead of refusing it.
            path = scope["path"].rstrip("/")
            if body is not None and path not in self.batches and not path.startswith("/hooks/"):
                headers = dict(scope.get("headers") or [])
                _check_body(body, headers.get(b"content-type", b"").decode("latin-1").lower())
        except InputRefused as refused:
            await _refuse(send, refused, as_page=not scope["path"].startswith("/api/"), headers=self.extra_headers)
            return
        if body is None:
            # Nothing was read: the app reads the request itself. Replaying an empty body here
            # would hand it a second `http.request` where it waits for `http.disconnect`, and a
            # file being sent would be cut short of its Content-Length.
            await self.app(scope, receive, send)
            return

        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _check_url(self, scope: Scope) -> None:
        check_text(scope["path"], where="URL path")
        query = scope.get("query_string", b"").decode("latin-1")
        if query:
            for key, value in parse_qsl(query, keep_blank_values=True, errors="surrogateescape"):
                check_text(key + value, where="query string")

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None for a request that declares none (a GET) and was not read."""
        limit = self.large_bodies.get(scope["path"].rstrip("/"), self.max_body_bytes)
        too_large = InputRefused(
            413,
            "body_too_large",
            f"The request body is larger than {limit:,} bytes, the most this endpoint accepts.",
        )
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _drain(receive, headers)
            raise too_large
        bodiless = scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE", "TRACE")
        if bodiless and not declared and b"transfer-encoding" not in headers:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                if message.get("more_body", False):
                    await _drain(receive, headers)
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


# How much of a refused body is read and thrown away before the 413 is sent.
DRAIN_BYTES = 64 * 1024 * 1024


async def _drain(receive: Receive, headers: dict[bytes, bytes]) -> None:
    """Read and discard the rest of a body that will be refused, up to DRAIN_BYTES.

    Most HTTP clients write the whole body before they read an answer: a server that answers 413
    and closes mid-body leaves them with "connection reset" instead of the reason. Reading the
    rest (never keeping it) lets them see the 413. A client that sent `Expect: 100-continue` is
    waiting for leave to send, so it gets the 413 at once and sends nothing; a body beyond
    DRAIN_BYTES is cut off, at the cost of that client's clear answer.
    """
    if headers.get(b"expect", b"").lower() == b"100-continue":
        return
    drained = 0
    while drained <= DRAIN_BYTES:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


# A customer who opened a damaged link, or staff on the console, get a page rather than JSON.
_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>请求无法处理 · Request refused</title></head>
<body><main><h1>请求无法处理 · Request refused</h1>
<p>链接或表单中含有无法处理的字符，或内容过大。请重新打开原始链接。</p>
<p>{message}</p></main></body></html>
"""


def refusal_page(message: str) -> str:
    """The bilingual page a browser gets for a request refused before any page could handle it."""
    return _PAGE.format(message=html.escape(message))


async def _refuse(send: Send, refused: InputRefused, *, as_page: bool, headers: list[tuple[bytes, bytes]]) -> None:
    if as_page:
        body = refusal_page(refused.message).encode()
        content_type = b"text/html; charset=utf-8"
    else:
        body = json.dumps({"error": {"code": refused.code, "message": refused.message, "field": None}}).encode()
        content_type = b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": refused.status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
