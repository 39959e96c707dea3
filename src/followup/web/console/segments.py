"""The console's segments: the list, a page per segment with its preview (how many customers it
selects now, by locale, and a masked sample), and the builder that creates and edits one.

Saving calls the services `POST/PATCH /api/v1/segments` call; the builder's preview checks the
rule as a save would (`segments.check_rule`) and counts it as `GET …/preview` does, writing nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.orm import Session

from followup.kernel.errors import FollowupError, NotFound
from followup.kernel.http import AppSettings, Keys, Now, ReadSession, WriteSession
from followup.strategies import segments
from followup.strategies.models import Segment
from followup.strategies.schemas import SegmentCreate, SegmentPreview, SegmentUpdate
from followup.web.console import auth
from followup.web.console.auth import ConsoleStaff
from followup.web.console.forms import (
    JSON_CHARS,
    KEY_MAX,
    OPERATORS,
    Problem,
    RuleText,
    expired_page,
    forbidden_page,
    may_edit,
    parse_rule,
    problem_of,
    rule_fields,
    rule_json,
    staff_actor,
)
from followup.web.console.pages import PAGE_SIZE, not_found_page, offset_of, page_number_of, paging, render_page

router = APIRouter(prefix="/console", include_in_schema=False)

Line = Annotated[str, Field(max_length=300)]


class SegmentForm(BaseModel):
    csrf: Line = ""
    action: Line = "save"
    key: Line = ""
    name: Line = ""
    rule: Annotated[str, Field(max_length=JSON_CHARS)] = ""


def _segment_or_none(session: Session, key: str) -> Segment | None:
    if len(key) > KEY_MAX:
        return None
    try:
        return segments.access_segment(session, key)
    except NotFound:
        return None


@router.get("/segments", response_class=HTMLResponse)
def segment_list(request: Request, signed_in: ConsoleStaff, session: ReadSession, page: str = "1") -> Response:
    number = page_number_of(request, signed_in, page)
    if isinstance(number, Response):
        return number
    rows, total = segments.list_segments(session, limit=PAGE_SIZE, offset=offset_of(number))
    return render_page(
        request,
        "segments.html",
        signed_in,
        {
            "title": "Segments",
            "nav": "segments",
            "segments": rows,
            "may_edit": may_edit(signed_in),
            **paging(number, total),
        },
    )


def _builder(
    request: Request,
    signed_in: auth.SignedInStaff,
    session: Session,
    *,
    form: SegmentForm,
    editing: Segment | None,
    problem: Problem | None = None,
    previewed: SegmentPreview | None = None,
) -> Response:
    others, _ = segments.list_segments(session, limit=200, offset=0)
    return render_page(
        request,
        "segment_form.html",
        signed_in,
        {
            "title": f"Edit segment {editing.key}" if editing else "New segment",
            "nav": "segments",
            "form": form,
            "editing": editing,
            "fields": rule_fields("customer"),
            "operators": OPERATORS,
            "segments": [s.key for s in others if editing is None or s.key != editing.key],
            "problem": problem,
            "preview": previewed,
            "action": f"/console/segments/{editing.key}/edit" if editing else "/console/segments/-/new",
        },
        status_code=problem.status_code if problem else 200,
    )


def _preview_rule(session: Session, rule: Any, *, settings: AppSettings, now: Now, keys: Keys) -> SegmentPreview:
    """Who the builder's rule selects now, checked as a save would check it; writes nothing."""
    tree = SegmentCreate.model_validate({"key": "preview", "name": "preview", "rule": rule}).rule
    segments.check_rule(tree, field="rule", limits=settings.input_limits, only="customer", whose="a segment")
    return segments.preview_rule(session, tree, now=now, keys=keys)


@router.get("/segments/-/new", response_class=HTMLResponse)
def new_segment(request: Request, signed_in: ConsoleStaff, session: ReadSession) -> Response:
    if not may_edit(signed_in):
        return forbidden_page(request, signed_in)
    return _builder(request, signed_in, session, form=SegmentForm(), editing=None)


@router.post("/segments/-/new", response_class=HTMLResponse)
def create_segment(
    request: Request,
    form: Annotated[SegmentForm, Form()],
    signed_in: ConsoleStaff,
    session: WriteSession,
    now: Now,
    settings: AppSettings,
    keys: Keys,
) -> Response:
    if not auth.check_csrf(signed_in, form.csrf):
        return expired_page(request, signed_in)
    if not may_edit(signed_in):
        return forbidden_page(request, signed_in)
    body: dict[str, Any] = {}
    try:
        body = {"key": form.key, "name": form.name, "rule": parse_rule(form.rule, field="rule")}
        if form.action == "preview":
            previewed = _preview_rule(session, body["rule"], settings=settings, now=now, keys=keys)
            return _builder(request, signed_in, session, form=form, editing=None, previewed=previewed)
        data = SegmentCreate.model_validate(body)
        with session.begin_nested():  # a refusal leaves nothing behind to be committed
            segments.create_segment(session, data, limits=settings.input_limits, actor=staff_actor(signed_in), now=now)
    except (RuleText, ValidationError, FollowupError) as exc:
        return _builder(request, signed_in, session, form=form, editing=None, problem=problem_of(exc, body))
    return RedirectResponse(f"/console/segments/{data.key}", status_code=303)


@router.get("/segments/{key}", response_class=HTMLResponse)
def show_segment(
    request: Request, key: str, signed_in: ConsoleStaff, session: ReadSession, now: Now, keys: Keys
) -> Response:
    segment = _segment_or_none(session, key)
    if segment is None:
        return not_found_page(request, signed_in, f"There is no segment {key[:KEY_MAX]!r}.")
    return render_page(
        request,
        "segment.html",
        signed_in,
        {
            "title": f"Segment {segment.key}",
            "nav": "segments",
            "segment": segments.describe_segment(session, segment),
            "rule": segment.rule,
            "rule_json": rule_json(segment.rule),
            "preview": segments.preview_segment(session, segment.key, now=now, keys=keys),
            "may_edit": may_edit(signed_in),
        },
    )


@router.get("/segments/{key}/edit", response_class=HTMLResponse)
def edit_segment(request: Request, key: str, signed_in: ConsoleStaff, session: ReadSession) -> Response:
    segment = _segment_or_none(session, key)
    if segment is None:
        return not_found_page(request, signed_in, f"There is no segment {key[:KEY_MAX]!r}.")
    if not may_edit(signed_in):
        return forbidden_page(request, signed_in)
    form = SegmentForm(key=segment.key, name=segment.name, rule=rule_json(segment.rule))
    return _builder(request, signed_in, session, form=form, editing=segment)


@router.post("/segments/{key}/edit", response_class=HTMLResponse)
def change_segment(
    request: Request,
    key: str,
    form: Annotated[SegmentForm, Form()],
    signed_in: ConsoleStaff,
    session: WriteSession,
    now: Now,
    settings: AppSettings,
    keys: Keys,
) -> Response:
    if not auth.check_csrf(signed_in, form.csrf):
        return expired_page(request, signed_in)
    segment = _segment_or_none(session, key)
    if segment is None:
        return not_found_page(request, signed_in, f"There is no segment {key[:KEY_MAX]!r}.")
    if not may_edit(signed_in):
        return forbidden_page(request, signed_in)
    form = form.model_copy(update={"key": segment.key})
    body: dict[str, Any] = {}
    try:
        body = {"name": form.name, "rule": parse_rule(form.rule, field="rule")}
        if form.action == "preview":
            previewed = _preview_rule(session, body["rule"], settings=settings, now=now, keys=keys)
            return _builder(request, signed_in, session, form=form, editing=segment, previewed=previewed)
        data = SegmentUpdate.model_validate(body)
        with session.begin_nested():
            segments.update_segment(
                session, segment.key, data, limits=settings.input_limits, actor=staff_actor(signed_in), now=now
            )
    except (RuleText, ValidationError, FollowupError) as exc:
        session.refresh(segment)
        return _builder(request, signed_in, session, form=form, editing=segment, problem=problem_of(exc, body))
    return RedirectResponse(f"/console/segments/{segment.key}", status_code=303)
