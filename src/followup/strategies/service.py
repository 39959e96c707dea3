"""Strategies: when to follow up, with whom, and the event-driven planner."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from sqlalchemy.orm import Session

from followup.channels import capabilities
from followup.channels.sms.text import check_segments
from followup.config import InputLimits
from followup.customers import service as customers
from followup.customers.schemas import STATS_FIELDS
from followup.followups import service as followups
from followup.followups.schemas import MessageText
from followup.kernel import templating
from followup.kernel.actors import Actor
from followup.kernel.errors import Conflict, InvalidInput, NotFound
from followup.kernel.logging import get_logger
from followup.kernel.text import text_problem
from followup.privacy import service as privacy
from followup.rules.tree import segments_used
from followup.strategies import schedule, segments
from followup.strategies.models import Strategy, StrategyVersion
from followup.strategies.repository import StrategyRepository, WaveRepository
from followup.strategies.sampling import pick_variant
from followup.strategies.schemas import (
    AUTO_CHANNELS,
    AutoChannels,
    MessagePreview,
    MessagePreviewRequest,
    StrategyCreate,
    StrategyOut,
    StrategyUpdate,
    Variant,
    WaveOut,
)
from followup.strategies.triggers import EventFact, EventHistory, plan_followups_for_events
from followup.surveys import service as surveys
from followup.surveys.schemas import LocalizedText

log = get_logger(__name__)

__all__ = ["EventFact", "EventHistory", "plan_followups_for_events"]

# What an SMS adds to a strategy's words: the short link and the opt-out line.
_SMS_ROOM = "http://wallet.example/r/0123456789abcdef\n回T退订"


class StrategyNotFound(NotFound):
    code = "strategy_not_found"


class StrategyExists(Conflict):
    code = "strategy_exists"


def _check_sms_length(data: StrategyCreate) -> None:
    """A strategy sending SMS may not have words longer than an SMS can carry (its template, before
    the values fill it in, must already fit; the link and the opt-out line need room too)."""
    worded = [("message", data.message)] + [
        (f"variants.{index}.message", variant.message) for index, variant in enumerate(data.variants or [])
    ]
    for where, message in worded:
        for locale, template in (message or {}).items():
            try:
                check_segments(template.body + "\n" + _SMS_ROOM)
            except ValueError as exc:
                raise InvalidInput(
                    f"{where}.{locale}.body: too long for an SMS. {exc}",
                    code="limit_exceeded",
                    field=f"{where}.{locale}.body",
                ) from exc


def check_strategy_limits(data: StrategyCreate, *, limits: InputLimits) -> None:
    """Refuse a strategy over the size limits (422 limit_exceeded), with a control character in
    its name (422 invalid_character), naming a stat that does not exist (422 unknown_field) or a
    field its rules cannot read (422 invalid_field). Only on write: a stored strategy is read as it is."""
    if data.name is not None:
        problem = text_problem(data.name, max_chars=limits.max_title_chars)
        if problem is not None:
            code, sentence = problem
            raise InvalidInput(f"name: {sentence}.", code=code, field="name")
    if data.audience is not None:
        # An event strategy's audience may read the event; the others find theirs in the database.
        found_in_database = data.kind != "event"
        segments.check_rule(
            data.audience,
            field="audience",
            limits=limits,
            only="customer" if found_in_database else None,
            whose=f"a {data.kind} strategy's audience",
        )
    messages = [("message", data.message)] + [
        (f"variants.{index}.message", variant.message) for index, variant in enumerate(data.variants or [])
    ]
    for prefix, message in messages:
        for locale, template in (message or {}).items():
            check_message_template(locale, template.subject, field=f"{prefix}.{locale}.subject", multiline=False)
            check_message_template(locale, template.body, field=f"{prefix}.{locale}.body", multiline=True)
    match = data.trigger.match if data.trigger is not None else None
    if match is not None:
        segments.check_rule(match, field="trigger.match", limits=limits, only="event", whose="a trigger's match")
        if segments_used(match):
            raise InvalidInput(
                "trigger.match: a segment selects customers; name it in the audience, not in the match.",
                code="invalid_field",
                field="trigger.match",
            )


SUBJECT_CHARS = 200
BODY_CHARS = 5000
# What a template is tried on when it is saved: every name it may read, with plausible values.
_SAMPLE: dict[str, Any] = {
    "customer": {
        "id": "c-0001",
        "locale": "zh-CN",
        "time_zone": "Asia/Shanghai",
        "value_tier": "gold",
        "preferred_channel": "email",
        "attributes": {},
    },
    "event": {"type": "payment.succeeded", "event_id": "e-1", "amount": 123450, "currency": "CNY", "attributes": {}},
    "stats": dict.fromkeys(STATS_FIELDS, 0),
    "survey": {"key": "survey", "title": "Survey"},
}


def check_message_template(locale: str, source: str, *, field: str, multiline: bool) -> None:
    """422 naming `field` for a template that is too long, holds a control character, does not
    compile, names an unknown variable, filter or stat, or tries to leave the sandbox."""
    problem = text_problem(source, max_chars=BODY_CHARS if multiline else SUBJECT_CHARS, multiline=multiline)
    if problem is not None:
        code, sentence = problem
        raise InvalidInput(f"{field}: {sentence}.", code=code, field=field)
    try:
        templating.check_template(source, locale=locale, known_stats=STATS_FIELDS, sample=_SAMPLE)
    except templating.TemplateProblem as exc:
        raise InvalidInput(f"{field}: the template {exc}.", code="invalid_template", field=field) from exc


def _check_references(
    session: Session,
    data: StrategyCreate,
    *,
    available_channels: Collection[str],
    limits: InputLimits,
    now: dt.datetime,
) -> int:
    """Everything a strategy body names must exist here: segments, channels, surveys; its limits
    and its schedule hold. Returns the id of the strategy's survey."""
    check_strategy_limits(data, limits=limits)
    if data.audience is not None:
        segments.resolve(data.audience, segments.stored_lookup(session), field="audience")
    first_run(data, now=now)  # 422 for a schedule too dense or a spread too long
    missing = [channel for channel in data.channel_list if channel not in available_channels]
    if missing:
        raise InvalidInput(
            f"channel '{missing[0]}' is not configured here; available: {', '.join(sorted(available_channels))}.",
            code="channel_not_available",
            field="channels",
        )
    if capabilities.SMS in data.channel_list:
        _check_sms_length(data)
    survey = surveys.get_survey(session, data.survey)
    if survey is None:
        raise InvalidInput(
            f"No survey with key '{data.survey}'; create the survey first.", code="survey_not_found", field="survey"
        )
    for index, variant in enumerate(data.variants or []):
        if variant.survey is not None and surveys.get_survey(session, variant.survey) is None:
            raise InvalidInput(
                f"No survey with key '{variant.survey}'; create the survey first.",
                code="survey_not_found",
                field=f"variants.{index}.survey",
            )
    return survey.id


def with_installed_channels(data: StrategyCreate, available_channels: Collection[str]) -> StrategyCreate:
    """`"channels": "auto"` made explicit: the personal channel among those installed here, so the
    stored definition says which channels it chooses from."""
    if data.channels != "auto":
        return data
    installed = [channel for channel in AUTO_CHANNELS if channel in available_channels]
    if not installed:
        raise InvalidInput(
            f"channels: none of {', '.join(AUTO_CHANNELS)} is configured here; "
            f"available: {', '.join(sorted(available_channels))}.",
            code="channel_not_available",
            field="channels",
        )
    return data.model_copy(update={"channels": AutoChannels(auto=installed)})


def definition_of(data: StrategyCreate) -> dict[str, Any]:
    """A strategy body as it is stored and compared: two bodies that mean the same are equal."""
    return data.model_dump(mode="json", by_alias=True)


def _keep_version(session: Session, strategy: Strategy, *, actor: Actor, now: dt.datetime) -> None:
    StrategyRepository(session).add_version(
        StrategyVersion(
            strategy_id=strategy.id,
            version=strategy.version,
            definition=strategy.definition,
            actor=str(actor),
            created_at=now,
        )
    )


def _new_version(
    session: Session,
    strategy: Strategy,
    *,
    actor: Actor,
    now: dt.datetime,
    event: str,
    old: dict[str, Any],
    new: dict[str, Any],
) -> None:
    """The strategy's changed definition becomes its next version, kept whole, and audited."""
    strategy.version += 1
    strategy.updated_at = now
    session.flush()
    _keep_version(session, strategy, actor=actor, now=now)
    privacy.record_audit(
        session, actor=actor, subject_type="strategy", subject_id=strategy.key, event=event, now=now, old=old, new=new
    )


def create_strategy(
    session: Session,
    data: StrategyCreate,
    *,
    available_channels: Collection[str],
    limits: InputLimits,
    actor: Actor,
    now: dt.datetime,
) -> Strategy:
    repo = StrategyRepository(session)
    data = with_installed_channels(data, available_channels)
    survey_id = _check_references(session, data, available_channels=available_channels, limits=limits, now=now)
    if repo.by_key(data.key) is not None:
        raise StrategyExists(f"A strategy with key '{data.key}' already exists.", field="key")
    strategy = Strategy(
        key=data.key,
        kind=data.kind,
        status=data.status,
        survey_id=survey_id,
        definition=definition_of(data),
        version=1,
        next_run_at=first_run(data, now=now),
        created_at=now,
        updated_at=now,
    )
    repo.add(strategy)
    session.flush()
    _keep_version(session, strategy, actor=actor, now=now)
    privacy.record_audit(
        session,
        actor=actor,
        subject_type="strategy",
        subject_id=data.key,
        event="strategy.created",
        now=now,
        new={"status": data.status},
    )
    return strategy


def replace_strategy(
    session: Session,
    strategy: Strategy,
    data: StrategyCreate,
    *,
    available_channels: Collection[str],
    limits: InputLimits,
    actor: Actor,
    now: dt.datetime,
) -> bool:
    """Give a strategy a new definition, as a new version; False (and no version) when the body
    means what the stored one does. A new schedule, cadence or kind restarts its runs from now."""
    if data.key != strategy.key:
        raise InvalidInput(f"key: this is strategy '{strategy.key}', not '{data.key}'.", field="key")
    data = with_installed_channels(data, available_channels)
    survey_id = _check_references(session, data, available_channels=available_channels, limits=limits, now=now)
    new = definition_of(data)
    old = StrategyCreate.model_validate(strategy.definition)
    if new == definition_of(old):
        return False
    timing_changed = (old.kind, old.schedule, old.cadence, old.status) != (
        data.kind,
        data.schedule,
        data.cadence,
        data.status,
    )
    strategy.kind, strategy.status, strategy.survey_id, strategy.definition = data.kind, data.status, survey_id, new
    if timing_changed:
        strategy.next_run_at = first_run(data, now=now)
        if data.kind == "proactive" and old.kind != "proactive":
            strategy.created_at = now  # periods count from when it became proactive
    _new_version(
        session,
        strategy,
        actor=actor,
        now=now,
        event="strategy.changed",
        old={"version": strategy.version},
        new={"version": strategy.version + 1},
    )
    return True


def list_versions(session: Session, strategy: Strategy) -> list[StrategyVersion]:
    """Every version the strategy has had, newest first."""
    return StrategyRepository(session).versions(strategy.id)


def keys_by_id(session: Session) -> dict[int, str]:
    """Every strategy's key by its id."""
    return StrategyRepository(session).keys_by_id()


def access_strategy(session: Session, key: str) -> Strategy:
    strategy = StrategyRepository(session).by_key(key)
    if strategy is None:
        raise StrategyNotFound(f"No strategy with key '{key}'.", field="strategy")
    return strategy


def update_strategy(
    session: Session, strategy: Strategy, data: StrategyUpdate, *, actor: Actor, now: dt.datetime
) -> Strategy:
    old = strategy.status
    if data.status != old:
        strategy.status = data.status
        if data.status == "active":
            # Resumed: the next wave is the next firing from now; waves missed while paused are not sent.
            strategy.next_run_at = first_run(StrategyCreate.model_validate(strategy.definition), now=now)
        strategy.definition = {**strategy.definition, "status": data.status}
        _new_version(
            session,
            strategy,
            actor=actor,
            now=now,
            event="strategy.status_changed",
            old={"status": old},
            new={"status": data.status},
        )
    session.flush()
    return strategy


def first_run(data: StrategyCreate, *, now: dt.datetime) -> dt.datetime | None:
    """When the worker first runs a strategy: a periodic one's first wave, a proactive one's first
    sweep (at once: it plans only the customers whose slot in the period has come)."""
    if data.kind == "proactive":
        return now
    return first_wave(data, now=now)


def first_wave(data: StrategyCreate, *, now: dt.datetime) -> dt.datetime | None:
    """A periodic strategy's first wave: the schedule's next firing after now (never at once).
    422 when its waves would come closer than an hour, or overlap because `spread` is as long as
    the time between them."""
    if data.schedule is None:
        return None
    cron, zone = data.schedule.cron, data.schedule.time_zone
    shortest = schedule.shortest_interval(cron, zone, now)
    if shortest < schedule.MIN_INTERVAL:
        raise InvalidInput(
            f"schedule.cron: '{cron}' fires every {_duration(shortest)}; waves must be at least an hour apart.",
            field="schedule.cron",
        )
    if data.spread >= shortest:
        raise InvalidInput(
            f"spread: {_duration(data.spread)} is not shorter than the {_duration(shortest)} between two waves; "
            "a wave must be sent before the next one fires.",
            field="spread",
        )
    return schedule.next_firing(cron, zone, now)


def _duration(value: dt.timedelta) -> str:
    hours = value.total_seconds() / 3600
    return f"{hours:g} hours" if hours < 48 else f"{hours / 24:g} days"


def describe_strategy(strategy: Strategy) -> StrategyOut:
    return StrategyOut.model_validate(
        {
            **strategy.definition,
            "id": strategy.id,
            "version": strategy.version,
            "next_run_at": strategy.next_run_at if strategy.status == "active" else None,
            "created_at": strategy.created_at,
            "updated_at": strategy.updated_at,
        }
    )


def variants_of(session: Session, key: str) -> list[Variant]:
    """The strategy's variants in its own order (the first is the control); none for an unknown key."""
    strategy = StrategyRepository(session).by_key(key)
    if strategy is None:
        return []
    return StrategyCreate.model_validate(strategy.definition).variants or []


def list_strategies(session: Session, *, limit: int, offset: int) -> tuple[list[StrategyOut], int]:
    rows, total = StrategyRepository(session).list_strategies(limit=limit, offset=offset)
    return [describe_strategy(row) for row in rows], total


def strategy_keys(session: Session, ids: set[int]) -> dict[int, str]:
    return StrategyRepository(session).keys(ids)


class NoMessageTemplate(Conflict):
    code = "no_message_template"


class TemplateNotRendered(InvalidInput):
    code = "template_not_rendered"


def preview_message(
    session: Session, strategy: Strategy, data: MessagePreviewRequest, *, now: dt.datetime
) -> MessagePreview:
    """The strategy's message as this customer would read it now; writes nothing."""
    spec = StrategyCreate.model_validate(strategy.definition)
    customer = customers.access_customer(session, data.customer_id)
    variant = pick_variant(spec, customer.external_id)
    message = variant.message if variant is not None and variant.message else spec.message
    if not message:
        raise NoMessageTemplate(
            f"Strategy '{spec.key}' has no message of its own; its messages use the survey's words.", field="message"
        )
    snapshot = customers.snapshots(session, [customer.id], stats_at=now)[customer.id]
    survey = surveys.get_survey(session, variant.survey or spec.survey if variant else spec.survey)
    title = LocalizedText.model_validate(surveys.current_version(session, survey).title) if survey else None
    event = None
    if data.event is not None:
        event = data.event.model_dump(mode="json") | {"occurred_at": (data.event.occurred_at or now).isoformat()}
    context = followups.template_context(
        snapshot, event=event, survey={"title": title.get(snapshot.locale) if title else spec.survey}
    )
    templates: dict[str, MessageText] = {
        locale: MessageText(subject=t.subject, body=t.body) for locale, t in message.items()
    }
    try:
        subject, body = followups.personal_text(templates, locale=snapshot.locale, context=context)
    except followups.PersonalTextFailed as exc:
        hint = " (the template reads the event: pass one as 'event')" if event is None else ""
        raise TemplateNotRendered(f"The message could not be rendered for this customer: {exc}{hint}.") from exc
    return MessagePreview(
        customer_id=data.customer_id,
        variant=variant.key if variant is not None else None,
        locale=snapshot.locale,
        subject=subject,
        body=body,
    )


def list_waves(session: Session, strategy: Strategy, *, limit: int, offset: int) -> tuple[list[WaveOut], int]:
    rows, total = WaveRepository(session).list_waves(strategy.id, limit=limit, offset=offset)
    return [WaveOut.model_validate(row, from_attributes=True) for row in rows], total
