from __future__ import annotations

from fastapi import APIRouter

from followup.events import service
from followup.events.schemas import EventsBody, IngestResult
from followup.kernel.http import AppSettings, Now, WriteSession
from followup.staff.auth import ApiActor

router = APIRouter(tags=["events"])


@router.post("/events", response_model=IngestResult)
def ingest_events(
    body: EventsBody, session: WriteSession, actor: ApiActor, now: Now, settings: AppSettings
) -> IngestResult:
    return service.ingest_events(session, body.events, now=now, settings=settings)
