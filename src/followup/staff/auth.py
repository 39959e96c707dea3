"""Authentication dependencies for the API and for /metrics."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from followup.kernel.actors import Actor
from followup.kernel.errors import Forbidden, NotFound, Unauthorized
from followup.kernel.http import AppSettings, Now, ReadSession, runtime_of
from followup.staff import roles, scopes, service

API_PREFIX = "/api/v1"

# Declares the bearer scheme in the OpenAPI document; the key itself is read from the header below,
# so a wrong scheme or a missing key gets the service's own sentence rather than FastAPI's.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    bearerFormat="followup API key (fu_…)",
    description="An API key from `followup apikey create`, sent as `Authorization: Bearer <key>`.",
)


def _api_actor(
    session: ReadSession,
    request: Request,
    now: Now,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The caller of an API route, if their key holds the scope the route needs (`scopes`): the one
    place every route's access is decided."""
    holder = service.authenticate_api_key(session, request.headers.get("authorization"))
    # The route's own path template, under the /api/v1 prefix every API router is included with.
    route = request.scope.get("route")
    needed = scopes.required_scope(request.method, getattr(route, "path", ""))
    if not scopes.allows(holder.scopes, needed):
        raise Forbidden(
            f"This API key may not do this: it needs the scope '{needed}' and holds {', '.join(holder.scopes)}. "
            "Create a key with that scope (`followup apikey create --scope`).",
            code="scope_missing",
        )
    role = holder.actor.role
    if role is not None:
        relative = getattr(route, "path", "").removeprefix(API_PREFIX)
        access = roles.access(role, request.method, relative)
        if access == "hide":
            raise NotFound("There is no such record.", code="not_found")
        if access == "forbid":
            raise Forbidden(
                f"This API key acts for a staff member whose role ({role}) does not open {roles.what(relative)}.",
                code="role_forbidden",
            )
    if needed == scopes.CALLS and holder.staff_id is None:
        raise Forbidden(
            "The call queue is worked by agents: issue the key for one (`followup apikey create --staff EMAIL`).",
            code="key_without_staff",
        )
    if holder.last_used_at is None or now - holder.last_used_at >= service.KEY_USE_RESOLUTION:
        with runtime_of(request).session() as writing:
            service.note_api_key_use(writing, holder.key_id, now=now)
    return holder.actor


ApiActor = Annotated[Actor, Depends(_api_actor)]


def _metrics_reader(settings: AppSettings, authorization: Annotated[str | None, Header()] = None) -> None:
    """/metrics opens only to `Authorization: Bearer FOLLOWUP_METRICS_TOKEN`. With no token set,
    metrics are off and the path answers 404: the safe default for an app facing the internet."""
    if settings.metrics_token is None:
        raise NotFound("Metrics are off: set FOLLOWUP_METRICS_TOKEN to serve them.", code="metrics_disabled")
    scheme, _, given = (authorization or "").partition(" ")
    expected = settings.metrics_token.get_secret_value().encode()
    # Constant-time, so the token cannot be guessed a character at a time from response times.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise Unauthorized(
            "Send the metrics token as 'Authorization: Bearer <FOLLOWUP_METRICS_TOKEN>'.", code="invalid_metrics_token"
        )


MetricsReader = Depends(_metrics_reader)
