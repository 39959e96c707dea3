"""The console's interviews: every booked interview, those still to come first (soonest first),
then the past ones (latest first). Reads through `surveys.list_interviews`, as the API does."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from followup.kernel.http import Keys, Now, ReadSession
from followup.surveys import service as surveys
from followup.web.console.auth import ConsoleStaff
from followup.web.console.pages import PAGE_SIZE, offset_of, page_number_of, paging, render_page

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/interviews", response_class=HTMLResponse)
def interview_list(
    request: Request, signed_in: ConsoleStaff, session: ReadSession, keys: Keys, now: Now, page: str = "1"
) -> Response:
    number = page_number_of(request, signed_in, page)
    if isinstance(number, Response):
        return number
    rows, total = surveys.list_interviews(
        session,
        survey_key=None,
        since=None,
        until=None,
        upcoming_from=now,
        limit=PAGE_SIZE,
        offset=offset_of(number),
        keys=keys,
    )
    return render_page(
        request,
        "interviews.html",
        signed_in,
        {
            "title": "Interviews",
            "nav": "interviews",
            "interviews": rows,
            # The start on the wall clock it was offered in, as the customer saw it.
            "local": {row.id: f"{row.slot:%Y-%m-%d %H:%M} {surveys.offset_text(row.slot)}" for row in rows},
            "now": now,
            **paging(number, total),
        },
    )
