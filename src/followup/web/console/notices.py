"""The console's privacy notices: every version (newest first, the current one marked), each one
as customers read it in both languages with its hash, and, for admins, the form that publishes a
new one through the service `PUT /api/v1/privacy/notices/{version}` calls. A published notice
never changes, so there is no edit form: a new text is a new version.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.orm import Session

from followup.kernel.errors import FollowupError
from followup.kernel.http import AppSettings, Now, ReadSession, WriteSession
from followup.privacy import service as privacy
from followup.privacy.enums import GIVEN_BY_DEFAULT, PURPOSES
from followup.privacy.schemas import MAX_NOTICE_CHARS, NoticeIn
from followup.staff import roles
from followup.web.console import auth
from followup.web.console.auth import ConsoleStaff
from followup.web.console.forms import Problem, expired_page, problem_of, staff_actor
from followup.web.console.pages import (
    PAGE_SIZE,
    not_found_page,
    offset_of,
    page_number_of,
    paging,
    problem_page,
    render_page,
)
from followup.web.privacy_pages import notice_blocks

router = APIRouter(prefix="/console", include_in_schema=False)
# What a notice may ask fresh consent for: `service` is given by default and cannot be asked again.
FRESH_PURPOSES = tuple(purpose for purpose in PURPOSES if purpose not in GIVEN_BY_DEFAULT)
Line = Annotated[str, Field(max_length=300)]
NoticeText = Annotated[str, Field(max_length=2 * MAX_NOTICE_CHARS)]  # the service words the real limit


class NoticeForm(BaseModel):
    csrf: Line = ""
    version: Line = ""
    text_zh: NoticeText = ""
    text_en: NoticeText = ""
    fresh_feedback: Line = ""
    fresh_research: Line = ""

    def fresh(self) -> list[str]:
        return [purpose for purpose in FRESH_PURPOSES if getattr(self, f"fresh_{purpose}", "")]


def may_publish(signed_in: auth.SignedInStaff) -> bool:
    return roles.access(signed_in.role, "POST", "/privacy/notices") == "allow"


def _list_page(
    request: Request,
    signed_in: auth.SignedInStaff,
    session: Session,
    *,
    number: int,
    built_in_notice_version: str,
    form: NoticeForm | None = None,
    problem: Problem | None = None,
) -> Response:
    notices, total = privacy.list_notices(
        session, built_in_notice_version=built_in_notice_version, limit=PAGE_SIZE, offset=offset_of(number)
    )
    return render_page(
        request,
        "privacy_notices.html",
        signed_in,
        {
            "title": "Privacy notices",
            "nav": "privacy",
            "privacy_tab": "notices",
            "notices": notices,
            "may_publish": may_publish(signed_in),
            "form": form or NoticeForm(),
            "fresh_purposes": FRESH_PURPOSES,
            "problem": problem,
            **paging(number, total),
        },
        status_code=problem.status_code if problem else 200,
    )


@router.get("/privacy/notices", response_class=HTMLResponse)
def notice_list(
    request: Request, signed_in: ConsoleStaff, session: ReadSession, settings: AppSettings, page: str = "1"
) -> Response:
    number = page_number_of(request, signed_in, page)
    if isinstance(number, Response):
        return number
    return _list_page(
        request, signed_in, session, number=number, built_in_notice_version=settings.privacy_notice_version
    )


@router.post("/privacy/notices", response_class=HTMLResponse)
def publish_notice(
    request: Request,
    form: Annotated[NoticeForm, Form()],
    signed_in: ConsoleStaff,
    session: WriteSession,
    settings: AppSettings,
    now: Now,
) -> Response:
    if not auth.check_csrf(signed_in, form.csrf):
        return expired_page(request, signed_in)
    if not may_publish(signed_in):
        return problem_page(
            request, signed_in, title="Not allowed", text="Only admins publish privacy notices.", status_code=403
        )
    body = {"text": {"zh-CN": form.text_zh, "en": form.text_en}, "requires_fresh_consent": form.fresh()}
    version = form.version.strip()
    try:
        data = NoticeIn.model_validate(body)
        with session.begin_nested():  # a refusal leaves nothing behind to be committed
            privacy.publish_notice(
                session,
                version,
                data,
                built_in_notice_version=settings.privacy_notice_version,
                actor=staff_actor(signed_in),
                now=now,
            )
    except (ValidationError, FollowupError) as exc:
        return _list_page(
            request,
            signed_in,
            session,
            number=1,
            built_in_notice_version=settings.privacy_notice_version,
            form=form,
            problem=problem_of(exc, body),
        )
    return RedirectResponse(f"/console/privacy/notices/{version}", status_code=303)


@router.get("/privacy/notices/{version}", response_class=HTMLResponse)
def show_notice(
    request: Request, version: str, signed_in: ConsoleStaff, session: ReadSession, settings: AppSettings
) -> Response:
    notice = None
    if len(version) <= 32:
        notice = privacy.get_notice(session, version, built_in_notice_version=settings.privacy_notice_version)
    if notice is None:
        return not_found_page(request, signed_in, "There is no privacy notice of this version.")
    return render_page(
        request,
        "privacy_notice.html",
        signed_in,
        {
            "title": f"Privacy notice {notice.version}",
            "nav": "privacy",
            "notice": notice,
            "blocks": {locale: notice_blocks(text) for locale, text in notice.text.items()},
        },
    )
