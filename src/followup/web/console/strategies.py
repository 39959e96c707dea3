"""The console's strategies: the list with each one's last 30 days, a page per strategy (its
definition, versions, a dry-run preview, results per channel and variant, waves and follow-ups),
the form that creates and edits one, and pause / resume.

Everything goes through the services the API calls (`POST/PATCH /api/v1/strategies`,
`…/preview`, `/metrics/summary`), so a strategy saved here is validated, versioned and audited
exactly as one sent to the API; a refusal comes back as the form, the values kept and the
sentence beside the field it names.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.orm import Session

from followup.customers.schemas import Locale
from followup.customers.service import DEFAULT_TIME_ZONE
from followup.followups import service as followups
from followup.insights import service as insights
from followup.kernel.durations import format_duration
from followup.kernel.errors import FollowupError, NotFound
from followup.kernel.http import AppSettings, ChannelNames, EventHistoryFactory, Keys, Now, ReadSession, WriteSession
from followup.strategies import preview, segments, service
from followup.strategies.models import Strategy
from followup.strategies.schemas import StrategyCreate, StrategyKind, StrategyPreview, StrategyUpdate
from followup.surveys import service as surveys
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
from followup.web.console.pages import (
    PAGE_SIZE,
    not_found_page,
    offset_of,
    page_number_of,
    paging,
    problem_page,
    render_page,
)

router = APIRouter(prefix="/console", include_in_schema=False)

KINDS: tuple[str, ...] = get_args(StrategyKind)
LOCALES: tuple[str, ...] = get_args(Locale)
RESULTS_DAYS = 30
PREVIEW_DAYS = 30  # event strategies: the stored events of the last 30 days are replayed
# The strategy's fields this form sets; the others (variants, owner, max_event_age, status) are
# kept as they are when a strategy is edited here.
FORM_FIELDS = (
    "key",
    "name",
    "kind",
    "trigger",
    "debounce",
    "schedule",
    "cadence",
    "audience",
    "sample_rate",
    "holdout_percent",
    "max_per_wave",
    "cooldown_days",
    "spread",
    "channels",
    "survey",
    "reward",
    "message",
    "delay",
    "remind_after",
    "expire_after",
    "recontact_days",
)
# Left empty in the form, these take the schema's default.
OPTIONAL_FIELDS = (
    "sample_rate",
    "holdout_percent",
    "max_per_wave",
    "cooldown_days",
    "spread",
    "delay",
    "expire_after",
    "recontact_days",
)
_LIST_SEPARATOR = re.compile(r"[\s,]+")

Line = Annotated[str, Field(max_length=300)]


class StrategyForm(BaseModel):
    """The form as posted: text, as a person typed it; the schema decides what it means."""

    csrf: Line = ""
    action: Line = "save"
    key: Line = ""
    name: Line = ""
    kind: Line = "event"
    event_types: Annotated[str, Field(max_length=5000)] = ""
    match: Annotated[str, Field(max_length=JSON_CHARS)] = ""
    first_time: Line = ""
    debounce: Line = ""
    cron: Line = ""
    time_zone: Line = ""
    cadence: Line = ""
    audience: Annotated[str, Field(max_length=JSON_CHARS)] = ""
    sample_rate: Line = ""
    holdout_percent: Line = ""
    max_per_wave: Line = ""
    cooldown_days: Line = ""
    spread: Line = ""
    channels: Line = ""
    survey: Line = ""
    reward_points: Line = ""
    delay: Line = ""
    remind_after: Line = ""
    expire_after: Line = ""
    recontact_days: Line = ""
    message_locale: Annotated[list[Line], Field(max_length=len(LOCALES) + 1)] = []
    message_subject: Annotated[list[Line], Field(max_length=len(LOCALES) + 1)] = []
    message_body: Annotated[list[Annotated[str, Field(max_length=20_000)]], Field(max_length=len(LOCALES) + 1)] = []


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.timedelta):
        return format_duration(value)
    return str(value)


def _defaults() -> dict[str, Any]:
    """A new strategy's form: the schema's own defaults."""
    return {
        name: info.default
        for name, info in StrategyCreate.model_fields.items()
        if not info.is_required() and info.default is not None
    }


def form_of(definition: dict[str, Any]) -> StrategyForm:
    """A stored definition (or the defaults) as the form shows it."""
    trigger = definition.get("trigger") or {}
    schedule = definition.get("schedule") or {}
    message = definition.get("message") or {}
    reward = definition.get("reward") or {}
    return StrategyForm(
        key=_text(definition.get("key")),
        name=_text(definition.get("name")),
        kind=_text(definition.get("kind") or "event"),
        event_types=", ".join(trigger.get("event_types", [])),
        match=rule_json(trigger.get("match")),
        first_time="on" if trigger.get("first_time") else "",
        debounce=_text(definition.get("debounce")),
        cron=_text(schedule.get("cron")),
        time_zone=_text(schedule.get("time_zone") or DEFAULT_TIME_ZONE),
        cadence=_text(definition.get("cadence")),
        audience=rule_json(definition.get("audience")),
        sample_rate=_text(definition.get("sample_rate")),
        holdout_percent=_text(definition.get("holdout_percent")),
        max_per_wave=_text(definition.get("max_per_wave")),
        cooldown_days=_text(definition.get("cooldown_days")),
        spread=_text(definition.get("spread")),
        channels=_channels_text(definition.get("channels", [])),
        survey=_text(definition.get("survey")),
        reward_points=_text(reward.get("points")),
        delay=_text(definition.get("delay")),
        remind_after=_text(definition.get("remind_after")),
        expire_after=_text(definition.get("expire_after")),
        recontact_days=_text(definition.get("recontact_days")),
        message_locale=list(message),
        message_subject=[m.get("subject", "") for m in message.values()],
        message_body=[m.get("body", "") for m in message.values()],
    )


def _words(text: str) -> list[str]:
    return [part for part in _LIST_SEPARATOR.split(text.strip()) if part]


def _channels_text(channels: Any) -> str:
    """The channels as the form shows them: `email, inapp`; the personal channel as `auto` or
    `auto: push, email`."""
    if isinstance(channels, dict):
        return "auto: " + ", ".join(channels.get("auto", []))
    if channels == "auto":
        return "auto"
    return ", ".join(channels)


def _channels_body(text: str) -> Any:
    """The form's channels as the API's body: a list, `"auto"`, or `{"auto": [...]}`."""
    head, colon, rest = text.strip().partition(":")
    if head.strip() == "auto":
        return {"auto": _words(rest)} if colon else "auto"
    return _words(text)


def body_of(form: StrategyForm, kept: dict[str, Any]) -> dict[str, Any]:
    """The request body the form stands for, over what the form does not show (`kept`).
    Raises RuleText when a rule's JSON does not parse; the schema judges the rest."""
    body: dict[str, Any] = {name: value for name, value in kept.items() if name not in FORM_FIELDS}
    body.update(key=form.key, kind=form.kind, channels=_channels_body(form.channels), survey=form.survey)
    if form.name:
        body["name"] = form.name
    if form.kind == "event":
        trigger: dict[str, Any] = {"event_types": _words(form.event_types), "first_time": form.first_time == "on"}
        match = parse_rule(form.match, field="trigger.match")
        if match is not None:
            trigger["match"] = match
        body["trigger"] = trigger
        if form.debounce:
            body["debounce"] = form.debounce
    elif form.kind == "periodic":
        body["schedule"] = {"cron": form.cron, "time_zone": form.time_zone}
    elif form.kind == "proactive":
        body["cadence"] = form.cadence or None
    audience = parse_rule(form.audience, field="audience")
    if audience is not None:
        body["audience"] = audience
    for name in OPTIONAL_FIELDS:
        value = getattr(form, name).strip()
        if value:
            body[name] = value
    if form.remind_after.strip():
        body["remind_after"] = form.remind_after.strip()
    if form.reward_points.strip():
        body["reward"] = {"points": form.reward_points.strip()}
    message = {
        locale: {"subject": subject, "body": text}
        for locale, subject, text in zip(form.message_locale, form.message_subject, form.message_body, strict=False)
        if subject.strip() or text.strip()
    }
    if message:
        body["message"] = message
    return body


def _message_rows(form: StrategyForm) -> list[tuple[str, str, str]]:
    """The message's rows in the form: those filled in, then an empty one for another locale."""
    rows = [
        (locale, subject, text)
        for locale, subject, text in zip(form.message_locale, form.message_subject, form.message_body, strict=False)
        if subject.strip() or text.strip()
    ]
    if len(rows) < len(LOCALES):
        used = {locale for locale, _, _ in rows}
        rows.append((next(locale for locale in LOCALES if locale not in used), "", ""))
    return rows


def _strategy_or_none(session: Session, key: str) -> Strategy | None:
    if len(key) > KEY_MAX:
        return None
    try:
        return service.access_strategy(session, key)
    except NotFound:
        return None


@router.get("/strategies", response_class=HTMLResponse)
def strategy_list(
    request: Request, signed_in: ConsoleStaff, session: ReadSession, now: Now, page: str = "1"
) -> Response:
    number = page_number_of(request, signed_in, page)
    if isinstance(number, Response):
        return number
    rows, total = service.list_strategies(session, limit=PAGE_SIZE, offset=offset_of(number))
    activity = insights.strategy_activity(
        session, [row.id for row in rows], since=now - dt.timedelta(days=RESULTS_DAYS)
    )
    return render_page(
        request,
        "strategies.html",
        signed_in,
        {
            "title": "Strategies",
            "nav": "strategies",
            "strategies": rows,
            "activity": activity,
            "days": RESULTS_DAYS,
            "may_edit": may_edit(signed_in),
            **paging(number, total),
        },
    )


def _form_page(
    request: Request,
    signed_in: auth.SignedInStaff,
    session: Session,
    *,
    form: StrategyForm,
    channels: frozenset[str],
    editing: Strategy | None,
    problem: Problem | None = None,
    previewed: StrategyPreview | None = None,
) -> Response:
    survey_rows, _ = surveys.list_surveys(session, limit=200, offset=0)
    segment_rows, _ = segments.list_segments(session, limit=200, offset=0)
    kept = {}
    if editing is not None:
        kept = {k: v for k, v in editing.definition.items() if k not in FORM_FIELDS and k != "status" and v}
    title = f"Edit strategy {editing.key}" if editing else "New strategy"
    return render_page(
        request,
        "strategy_form.html",
        signed_in,
        {
            "title": title,
            "nav": "strategies",
            "form": form,
            "editing": editing,
            "kept": sorted(kept),
            "kinds": KINDS,
            "locales": LOCALES,
            "message_rows": _message_rows(form),
            "surveys": [s.key for s in survey_rows],
            "channels": sorted(channels),
            "segments": [s.key for s in segment_rows],
            "operators": OPERATORS,
            "audience_fields": {kind: rule_fields("both" if kind == "event" else "customer") for kind in KINDS},
            "match_fields": rule_fields("event"),
            "problem": problem,
            "preview": previewed,
            "action": f"/console/strategies/{editing.key}/edit" if editing else "/console/strategies/-/new",
        },
        status_code=problem.status_code if problem else 200,
    )


@router.get("/strategies/-/new", response_class=HTMLResponse)
def new_strategy(
    request: Request, signed_in: ConsoleStaff, session: ReadSession, channels: ChannelNames, kind: str = "event"
) -> Response:
    if not may_edit(signed_in):
        return forbidden_page(request, signed_in)
    form = form_of({**_defaults(), "kind": kind if kind in KINDS else "event", "channels": []})
    return _form_page(request, signed_in, session, form=form, channels=channels, editing=None)


@router.post("/strategies/-/new", response_class=HTMLResponse)
def create_strategy(
    request: Request,
    form: Annotated[StrategyForm, Form()],
    signed_in: ConsoleStaff,
    session: WriteSession,
    now: Now,
    channels: ChannelNames,
    settings: AppSettings,
    keys: Keys,
    history: EventHistoryFactory,
) -> Response:
    if not auth.check_csrf(signed_in, form.csrf):
        return expired_page(request, signed_in)
    if not may_edit(signed_in):
        return forbidden_page(request, signed_in)
    body: dict[str, Any] = {}
    try:
        body = body_of(form, {})
        data = StrategyCreate.model_validate(body)
        if form.action == "preview":
            previewed = preview.preview_new(
                session,
                data,
                days=PREVIEW_DAYS,
                available_channels=channels,
                actor=staff_actor(signed_in),
                now=now,
                settings=settings,
                keys=keys,
                history=history(session),
            )
            return _form_page(
                request, signed_in, session, form=form, channels=channels, editing=None, previewed=previewed
            )
        with session.begin_nested():  # a refusal leaves nothing behind to be committed
            service.create_strategy(
                session,
                data,
                available_channels=channels,
                limits=settings.input_limits,
                actor=staff_actor(signed_in),
                now=now,
            )
    except (RuleText, ValidationError, FollowupError) as exc:
        problem = problem_of(exc, body)
        return _form_page(request, signed_in, session, form=form, channels=channels, editing=None, problem=problem)
    return RedirectResponse(f"/console/strategies/{data.key}", status_code=303)


@router.get("/strategies/{key}/edit", response_class=HTMLResponse)
def edit_strategy(
    request: Request, key: str, signed_in: ConsoleStaff, session: ReadSession, channels: ChannelNames
) -> Response:
    strategy = _strategy_or_none(session, key)
    if strategy is None:
        return not_found_page(request, signed_in, f"There is no strategy {key[:KEY_MAX]!r}.")
    if not may_edit(signed_in):
        return forbidden_page(request, signed_in)
    form = form_of(strategy.definition)
    return _form_page(request, signed_in, session, form=form, channels=channels, editing=strategy)


@router.post("/strategies/{key}/edit", response_class=HTMLResponse)
def change_strategy(
    request: Request,
    key: str,
    form: Annotated[StrategyForm, Form()],
    signed_in: ConsoleStaff,
    session: WriteSession,
    now: Now,
    channels: ChannelNames,
    settings: AppSettings,
) -> Response:
    if not auth.check_csrf(signed_in, form.csrf):
        return expired_page(request, signed_in)
    strategy = _strategy_or_none(session, key)
    if strategy is None:
        return not_found_page(request, signed_in, f"There is no strategy {key[:KEY_MAX]!r}.")
    if not may_edit(signed_in):
        return forbidden_page(request, signed_in)
    form = form.model_copy(update={"key": strategy.key})  # the key names the strategy; it is not edited
    body: dict[str, Any] = {}
    try:
        body = body_of(form, strategy.definition)
        data = StrategyCreate.model_validate(body)
        with session.begin_nested():
            service.replace_strategy(
                session,
                strategy,
                data,
                available_channels=channels,
                limits=settings.input_limits,
                actor=staff_actor(signed_in),
                now=now,
            )
    except (RuleText, ValidationError, FollowupError) as exc:
        session.refresh(strategy)
        problem = problem_of(exc, body)
        return _form_page(request, signed_in, session, form=form, channels=channels, editing=strategy, problem=problem)
    return RedirectResponse(f"/console/strategies/{strategy.key}", status_code=303)


def _strategy_page(
    request: Request,
    signed_in: auth.SignedInStaff,
    session: Session,
    strategy: Strategy,
    *,
    now: dt.datetime,
    previewed: StrategyPreview | None = None,
    problem: Problem | None = None,
) -> Response:
    described = service.describe_strategy(strategy)
    since = now - dt.timedelta(days=RESULTS_DAYS)
    by_channel = insights.metrics_summary(
        session, strategy_key=strategy.key, since=since, until=None, group_by="channel"
    )
    by_variant = insights.metrics_summary(
        session, strategy_key=strategy.key, since=since, until=None, group_by="variant"
    )
    waves, wave_total = service.list_waves(session, strategy, limit=PAGE_SIZE, offset=0)
    recent, followup_total = followups.list_followups(
        session, customer_id=None, status=None, limit=PAGE_SIZE, offset=0, strategy_id=strategy.id
    )
    return render_page(
        request,
        "strategy.html",
        signed_in,
        {
            "title": f"Strategy {strategy.key}",
            "nav": "strategies",
            "strategy": described,
            "definition": strategy.definition,
            "definition_json": rule_json(strategy.definition),
            "versions": service.list_versions(session, strategy),
            "by_channel": by_channel,
            "by_variant": by_variant,
            "days": RESULTS_DAYS,
            "preview_days": PREVIEW_DAYS,
            "waves": waves,
            "wave_total": wave_total,
            "followups": recent,
            "followup_total": followup_total,
            "preview": previewed,
            "problem": problem,
            "may_edit": may_edit(signed_in),
        },
        status_code=problem.status_code if problem else 200,
    )


@router.get("/strategies/{key}", response_class=HTMLResponse)
def show_strategy(request: Request, key: str, signed_in: ConsoleStaff, session: ReadSession, now: Now) -> Response:
    strategy = _strategy_or_none(session, key)
    if strategy is None:
        return not_found_page(request, signed_in, f"There is no strategy {key[:KEY_MAX]!r}.")
    return _strategy_page(request, signed_in, session, strategy, now=now)


@router.post("/strategies/{key}/preview", response_class=HTMLResponse)
def preview_strategy(
    request: Request,
    key: str,
    signed_in: ConsoleStaff,
    session: WriteSession,
    now: Now,
    settings: AppSettings,
    keys: Keys,
    history: EventHistoryFactory,
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """What the saved strategy would do now (even a paused one): planned for real, rolled back.
    Any staff member may ask: it changes nothing."""
    if not auth.check_csrf(signed_in, csrf):
        return expired_page(request, signed_in)
    strategy = _strategy_or_none(session, key)
    if strategy is None:
        return not_found_page(request, signed_in, f"There is no strategy {key[:KEY_MAX]!r}.")
    try:
        previewed = preview.preview_saved(
            session, strategy, days=PREVIEW_DAYS, now=now, settings=settings, keys=keys, history=history(session)
        )
    except FollowupError as exc:
        return _strategy_page(request, signed_in, session, strategy, now=now, problem=problem_of(exc, {}))
    return _strategy_page(request, signed_in, session, strategy, now=now, previewed=previewed)


@router.post("/strategies/{key}/status", response_class=HTMLResponse)
def set_status(
    request: Request,
    key: str,
    signed_in: ConsoleStaff,
    session: WriteSession,
    now: Now,
    csrf: Annotated[str, Form(max_length=200)] = "",
    status: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Pause or resume: the same change as `PATCH /api/v1/strategies/{key}` and `followup strategies pause`."""
    if not auth.check_csrf(signed_in, csrf):
        return expired_page(request, signed_in)
    strategy = _strategy_or_none(session, key)
    if strategy is None:
        return not_found_page(request, signed_in, f"There is no strategy {key[:KEY_MAX]!r}.")
    if not may_edit(signed_in):
        return forbidden_page(request, signed_in)
    try:
        change = StrategyUpdate.model_validate({"status": status})
    except ValidationError:
        return problem_page(
            request,
            signed_in,
            title="Unknown status",
            text="A strategy is either active or paused.",
            status_code=400,
            back=f"/console/strategies/{strategy.key}",
        )
    service.update_strategy(session, strategy, change, actor=staff_actor(signed_in), now=now)
    return RedirectResponse(f"/console/strategies/{strategy.key}", status_code=303)
