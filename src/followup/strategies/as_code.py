"""Strategies as code: surveys, segments and strategies kept in files with the API's own bodies,
compared with what is stored and applied idempotently.

A bundle is the three lists (`surveys`, `segments`, `strategies`) gathered from one file or a
folder of them. `changes` says what applying it would do — a create, or a change with its diff —
and nothing when the stored state already means the same, so a second apply of one file changes
nothing and makes no new version. `apply` makes those changes in the caller's transaction:
surveys first, then segments (each after the segments it names), then strategies.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from followup.config import InputLimits
from followup.kernel.actors import Actor
from followup.kernel.errors import InvalidInput
from followup.rules.tree import segments_used
from followup.strategies import segments
from followup.strategies import service as strategies
from followup.strategies.repository import SegmentRepository, StrategyRepository
from followup.strategies.schemas import SegmentCreate, SegmentUpdate, StrategyCreate
from followup.surveys import service as surveys
from followup.surveys.schemas import SurveyCreate

Kind = Literal["survey", "segment", "strategy"]
SECTIONS: tuple[tuple[str, Kind], ...] = (("surveys", "survey"), ("segments", "segment"), ("strategies", "strategy"))


class BundleError(InvalidInput):
    code = "invalid_bundle"


@dataclass
class Bundle:
    surveys: list[SurveyCreate] = field(default_factory=list)
    segments: list[SegmentCreate] = field(default_factory=list)
    strategies: list[StrategyCreate] = field(default_factory=list)


@dataclass(frozen=True)
class Change:
    kind: Kind
    key: str
    action: Literal["create", "change"]
    diff: str  # unified diff of the stored body and the file's, as sorted JSON


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def read_documents(documents: Iterable[tuple[str, Any]]) -> Bundle:
    """The bundle of (source name, parsed document) pairs; BundleError naming the file, the list,
    the item and the field of the first problem, or a key given twice."""
    bundle = Bundle()
    adapters: dict[str, TypeAdapter[Any]] = {
        "surveys": TypeAdapter(SurveyCreate),
        "segments": TypeAdapter(SegmentCreate),
        "strategies": TypeAdapter(StrategyCreate),
    }
    seen: dict[tuple[str, str], str] = {}
    for source, document in documents:
        if document is None:
            continue
        if not isinstance(document, Mapping):
            raise BundleError(f"{source}: the file must hold a mapping with lists surveys, segments, strategies.")
        unknown = sorted(str(name) for name in document if name not in adapters)
        if unknown:
            raise BundleError(
                f"{source}: '{unknown[0]}' is not a list this file may hold (surveys, segments, strategies)."
            )
        for section, _ in SECTIONS:
            items = document.get(section) or []
            if not isinstance(items, list):
                raise BundleError(f"{source}: {section} must be a list.")
            for index, item in enumerate(items):
                try:
                    body = adapters[section].validate_python(item)
                except ValidationError as exc:
                    raise BundleError(f"{source}: {section}[{index}]: {_first_error(exc)}.") from exc
                where = seen.get((section, body.key))
                if where is not None:
                    raise BundleError(f"{source}: {section}[{index}]: key '{body.key}' is also given in {where}.")
                seen[(section, body.key)] = f"{source} {section}[{index}]"
                getattr(bundle, section).append(body)
    return bundle


def _text(body: Mapping[str, Any] | None) -> list[str]:
    if body is None:
        return []
    return json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False).splitlines(keepends=True)


def _diff(kind: Kind, key: str, old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> str:
    lines = difflib.unified_diff(_text(old), _text(new), f"stored {kind} {key}", f"file {kind} {key}", n=2)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _survey_body(data: SurveyCreate) -> dict[str, Any]:
    return data.model_dump(mode="json", by_alias=True, exclude_none=True)


def _segment_body(key: str, name: str, rule: Any) -> dict[str, Any]:
    return {"key": key, "name": name, "rule": segments.RULE.dump_python(rule, mode="json")}


def changes(session: Session, bundle: Bundle, *, available_channels: Collection[str]) -> list[Change]:
    """What applying the bundle would change, in the order it would; empty when nothing."""
    out: list[Change] = []
    for survey in bundle.surveys:
        stored = surveys.get_survey(session, survey.key)
        old = _survey_body(surveys.survey_body(session, stored)) if stored is not None else None
        new = _survey_body(survey)
        if old != new:
            out.append(
                Change("survey", survey.key, "change" if old else "create", _diff("survey", survey.key, old, new))
            )
    segment_repo = SegmentRepository(session)
    for segment in _segments_in_order(bundle.segments):
        row = segment_repo.by_key(segment.key)
        old = _segment_body(row.key, row.name, segments.RULE.validate_python(row.rule)) if row is not None else None
        new = _segment_body(segment.key, segment.name, segment.rule)
        if old != new:
            out.append(
                Change("segment", segment.key, "change" if old else "create", _diff("segment", segment.key, old, new))
            )
    strategy_repo = StrategyRepository(session)
    for strategy in bundle.strategies:
        stored_strategy = strategy_repo.by_key(strategy.key)
        old = (
            strategies.definition_of(StrategyCreate.model_validate(stored_strategy.definition))
            if stored_strategy is not None
            else None
        )
        new = strategies.definition_of(_installed(strategy, available_channels))
        if old != new:
            action: Literal["create", "change"] = "change" if old else "create"
            out.append(Change("strategy", strategy.key, action, _diff("strategy", strategy.key, old, new)))
    return out


def _installed(strategy: StrategyCreate, available_channels: Collection[str]) -> StrategyCreate:
    """The body as it would be stored; one that cannot be is left for the save to refuse."""
    try:
        return strategies.with_installed_channels(strategy, available_channels)
    except InvalidInput:
        return strategy


def _segments_in_order(items: list[SegmentCreate]) -> list[SegmentCreate]:
    """Each segment after those of the bundle it names (a cycle is left to the save to refuse)."""
    keys = {item.key for item in items}
    placed: list[SegmentCreate] = []
    done: set[str] = set()
    pending = list(items)
    while pending:
        ready = [item for item in pending if (set(segments_used(item.rule)) & keys) <= done]
        if not ready:
            return placed + pending
        for item in ready:
            placed.append(item)
            done.add(item.key)
        pending = [item for item in pending if item.key not in done]
    return placed


def apply(
    session: Session,
    bundle: Bundle,
    *,
    available_channels: Collection[str],
    limits: InputLimits,
    actor: Actor,
    now: dt.datetime,
) -> list[Change]:
    """Make the bundle's changes in the caller's transaction; returns them. A refusal (a 422 the
    API would give) names the item, and the caller rolls everything back."""
    planned = changes(session, bundle, available_channels=available_channels)
    wanted = {(change.kind, change.key) for change in planned}
    for survey in bundle.surveys:
        if ("survey", survey.key) not in wanted:
            continue
        _named("surveys", survey.key, lambda s=survey: _put_survey(session, s, limits=limits, actor=actor, now=now))
    for segment in _segments_in_order(bundle.segments):
        if ("segment", segment.key) not in wanted:
            continue
        _named("segments", segment.key, lambda s=segment: _put_segment(session, s, limits=limits, actor=actor, now=now))
    for strategy in bundle.strategies:
        if ("strategy", strategy.key) not in wanted:
            continue

        def put(s: StrategyCreate = strategy) -> None:
            row = StrategyRepository(session).by_key(s.key)
            if row is None:
                strategies.create_strategy(
                    session, s, available_channels=available_channels, limits=limits, actor=actor, now=now
                )
            else:
                strategies.replace_strategy(
                    session, row, s, available_channels=available_channels, limits=limits, actor=actor, now=now
                )

        _named("strategies", strategy.key, put)
    return planned


def _named(section: str, key: str, action: Any) -> None:
    try:
        action()
    except InvalidInput as exc:
        raise InvalidInput(f"{section} '{key}': {exc.message}", code=exc.code, field=exc.field) from exc


def _put_survey(session: Session, data: SurveyCreate, *, limits: InputLimits, actor: Actor, now: dt.datetime) -> None:
    stored = surveys.get_survey(session, data.key)
    if stored is None:
        surveys.create_survey(session, data, limits=limits, now=now, actor=actor)
    else:
        surveys.update_survey(session, stored, data, limits=limits, now=now, actor=actor)


def _put_segment(session: Session, data: SegmentCreate, *, limits: InputLimits, actor: Actor, now: dt.datetime) -> None:
    if SegmentRepository(session).by_key(data.key) is None:
        segments.create_segment(session, data, limits=limits, actor=actor, now=now)
    else:
        update = SegmentUpdate(name=data.name, rule=data.rule)
        segments.update_segment(session, data.key, update, limits=limits, actor=actor, now=now)


def export(session: Session) -> dict[str, list[dict[str, Any]]]:
    """Every survey, segment and strategy as the bodies a bundle holds: applying the export to
    the same database changes nothing."""
    out: dict[str, list[dict[str, Any]]] = {"surveys": [], "segments": [], "strategies": []}
    rows, _ = surveys.list_surveys(session, limit=10_000, offset=0)
    for survey in rows:
        stored = surveys.get_survey(session, survey.key)
        if stored is not None:
            out["surveys"].append(_survey_body(surveys.survey_body(session, stored)))
    for segment in SegmentRepository(session).all():
        out["segments"].append(_segment_body(segment.key, segment.name, segments.RULE.validate_python(segment.rule)))
    for strategy in StrategyRepository(session).all():
        definition = strategies.definition_of(StrategyCreate.model_validate(strategy.definition))
        out["strategies"].append({key: value for key, value in definition.items() if value is not None})
    return out
