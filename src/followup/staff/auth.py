"""Authentication dependencies for the API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from followup.kernel.actors import Actor
from followup.kernel.http import ReadSession
from followup.staff import service


def _api_actor(session: ReadSession, authorization: Annotated[str | None, Header()] = None) -> Actor:
    return service.authenticate_api_key(session, authorization)


ApiActor = Annotated[Actor, Depends(_api_actor)]
