"""What every HTTP boundary needs: the runtime's sessions, clock and keys as dependencies, and
the security headers of every response.

Endpoints commit through `WriteSession`: its scope ends when the endpoint returns, before the
response is sent, so a failed commit can never be answered with a success.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any

import anyio.to_thread
from anyio import CancelScope, CapacityLimiter
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from followup.config import Settings
from followup.kernel.crypto import KeyProvider
from followup.kernel.errors import InvalidInput
from followup.kernel.inputs import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
# Pages carry tokens in their URLs: nothing external is loaded, nothing is cached, nothing framed.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# The console: our own scripts and styles only, no inline code or style attributes, no framing.
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


# Dependencies that only read what the app holds are `async`: FastAPI runs a plain `def`
# dependency on the thread pool, and the hop there and back costs more than the reading.


def runtime_of(request: Request) -> Any:
    return request.app.state.runtime


# The sessions are made on the event loop (making one connects to nothing) and ended there too
# when nothing is left to end: only a commit or a rollback goes to a thread. An endpoint
# that has committed its work itself (the one-click answer does, to let go of SQLite's write lock
# sooner) costs no hop at all on its way out.


async def _ending(end: Callable[[], None]) -> None:
    """Run a commit or a rollback on a thread of its own, never cancelled halfway. Not on the
    request pool's threads: when every one of those holds a request waiting for the database
    (for SQLite's write turn, or a pooled connection), a commit queued behind them would never
    run and nobody would ever get the database back."""
    with CancelScope(shield=True):
        await anyio.to_thread.run_sync(end, limiter=CapacityLimiter(1))


async def _write_session(request: Request) -> AsyncIterator[Session]:
    """A writing unit of work: committed when the endpoint returns cleanly, rolled back otherwise."""
    session: Session = runtime_of(request).new_session()
    try:
        yield session
        if session.in_transaction() or session.new or session.dirty or session.deleted:
            await _ending(session.commit)
    except BaseException:
        if session.in_transaction():
            await _ending(session.rollback)
        raise
    finally:
        session.close()


async def _read_session(request: Request) -> AsyncIterator[Session]:
    session: Session = runtime_of(request).new_session(read_only=True)
    try:
        yield session
    finally:
        if session.in_transaction():
            await _ending(session.rollback)
        session.close()


async def _now(request: Request) -> dt.datetime:
    now: dt.datetime = runtime_of(request).clock.now()
    return now


async def _keys(request: Request) -> KeyProvider:
    keys: KeyProvider = runtime_of(request).keys
    return keys


async def _settings(request: Request) -> Settings:
    settings: Settings = runtime_of(request).settings
    return settings


async def _channel_names(request: Request) -> frozenset[str]:
    return frozenset(runtime_of(request).channels)


async def _event_history(request: Request) -> Any:
    """What reads stored events for a strategy preview: set by the app, which stands above events."""
    return request.app.state.event_history


WriteSession = Annotated[Session, Depends(_write_session, scope="function")]
ReadSession = Annotated[Session, Depends(_read_session, scope="function")]
Now = Annotated[dt.datetime, Depends(_now)]
Keys = Annotated[KeyProvider, Depends(_keys)]
AppSettings = Annotated[Settings, Depends(_settings)]
ChannelNames = Annotated[frozenset[str], Depends(_channel_names)]
EventHistoryFactory = Annotated[Any, Depends(_event_history)]  # Callable[[Session], strategies' EventHistory]


def _declared_query_names(route: Any) -> frozenset[str]:
    # Kept on the route itself (routes are not hashable); worked out on the route's first request.
    names: frozenset[str] | None = getattr(route, "_followup_query_names", None)
    if names is None:
        names = frozenset(_query_aliases(route.dependant))
        route._followup_query_names = names
    return names


def _query_aliases(dependant: Any) -> Iterator[str]:
    """The query parameters of an endpoint and of every dependency beneath it."""
    for param in dependant.query_params:
        yield param.alias
    for sub in dependant.dependencies:
        yield from _query_aliases(sub)


async def known_query_only(request: Request) -> None:
    """Refuse a query parameter the route does not declare, as bodies refuse unknown fields.

    A misspelt filter (`?costumer_id=c1`) would otherwise be ignored and answer every row.
    """
    route = request.scope.get("route")
    if route is None:
        return
    declared = _declared_query_names(route)
    for name in request.query_params:
        if name not in declared:
            shown = name if len(name) <= 64 else name[:64] + "…"
            raise InvalidInput(f"'{shown}' is not a parameter this request accepts", code="unknown_field", field=shown)


class ResponseHeaders:
    """ASGI middleware: the security headers, the content policy and the cache rule of every
    answer the app writes, and the count of answers by method and status.

    Written against ASGI rather than as an `@app.middleware` function: that form runs every
    request through a second task and a memory stream, which cost more than a one-click answer's
    own work.
    """

    def __init__(self, app: ASGIApp, *, hsts: bool, count: Callable[[str, int], None]) -> None:
        self.app = app
        self.count = count
        # The three kinds of answer, each with its headers encoded once.
        self.kinds = {
            kind: self._encoded(csp, no_store=no_store, hsts=hsts)
            for kind, csp, no_store in (
                ("page", PAGE_CSP, True),
                ("console", CONSOLE_CSP, True),
                ("api", API_CSP, True),
                ("other", API_CSP, False),
            )
        }

    @staticmethod
    def _encoded(csp: str, *, no_store: bool, hsts: bool) -> list[tuple[bytes, bytes]]:
        wanted = {**SECURITY_HEADERS, "Content-Security-Policy": csp}
        if no_store:
            wanted["Cache-Control"] = "no-store"
        if hsts:
            wanted["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        return [(name.lower().encode(), value.encode()) for name, value in wanted.items()]

    def _headers_for(self, path: str) -> list[tuple[bytes, bytes]]:
        if path.startswith(("/s/", "/u/", "/c/", "/p/", "/privacy/")) or path == "/privacy":  # customers' pages
            return self.kinds["page"]
        if path == "/console" or path.startswith("/console/"):
            return self.kinds["console"]
        return self.kinds["api" if path.startswith("/api/") else "other"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in self._headers_for(path):
                    if name == b"cache-control" and name in present:
                        # Pages, the console and the API are never cached, whatever a route said.
                        headers = [(n, v) for n, v in headers if n.lower() != b"cache-control"]
                        headers.append((name, value))
                    elif name not in present:
                        headers.append((name, value))
                message["headers"] = headers
                self.count(scope["method"], int(message["status"]))
            await send(message)

        await self.app(scope, receive, send_with_headers)
