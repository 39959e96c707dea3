"""What a 405 must say: the methods the app answers at a path (RFC 9110 §15.5.6 requires `Allow`).

The router, on a method it does not route, names only the methods of the first route whose path
matched; a path served by two routes (a page's GET and its POST) would be reported half. Here every
route is asked, with the router's own matching, for each method.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Match, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Scope

# The methods an app here may route; TRACE and CONNECT are never among them.
CANDIDATES = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: ASGIApp, scope: Scope) -> list[str]:
    """The methods some route of `app` fully matches at the scope's path, in CANDIDATES order."""
    routes = getattr(getattr(app, "router", None), "routes", [])
    allowed: list[str] = []
    for method in CANDIDATES:
        probe = {**scope, "method": method}
        for route in routes:
            match, _ = route.matches(probe)
            if match is not Match.FULL:
                continue
            # A mount matches whatever the method; static files answer only GET and HEAD.
            if not (isinstance(route, Mount) and isinstance(route.app, StaticFiles) and method not in ("GET", "HEAD")):
                allowed.append(method)
            break
    return allowed


def allow_header(request: Request) -> str:
    """The value of `Allow` for a 405 answered to this request."""
    return ", ".join(allowed_methods(request.app, request.scope))
