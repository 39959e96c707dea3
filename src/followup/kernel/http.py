"""What every HTTP boundary needs: the runtime's sessions, clock and keys as dependencies, and
the security headers of every response.

Endpoints commit through `WriteSession`: its scope ends when the endpoint returns, before the
response is sent, so a failed commit can never be answered with a success.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from followup.config import Settings
from followup.kernel.crypto import KeyProvider
from followup.kernel.errors import InvalidInput

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


def runtime_of(request: Request) -> Any:
    return request.app.state.runtime


def _write_session(request: Request) -> Iterator[Session]:
    with runtime_of(request).session() as session:
        yield session


def _read_session(request: Request) -> Iterator[Session]:
    with runtime_of(request).read_session() as session:
        yield session


def _now(request: Request) -> dt.datetime:
    now: dt.datetime = runtime_of(request).clock.now()
    return now


def _keys(request: Request) -> KeyProvider:
    keys: KeyProvider = runtime_of(request).keys
    return keys


def _settings(request: Request) -> Settings:
    settings: Settings = runtime_of(request).settings
    return settings


def _channel_names(request: Request) -> frozenset[str]:
    return frozenset(runtime_of(request).channels)


def _event_history(request: Request) -> Any:
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


def known_query_only(request: Request) -> None:
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
