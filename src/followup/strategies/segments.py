"""Segments: named audiences over `customer.*`, the references rules make to them, their preview.

A rule names a segment as `{"segment": key}`; `resolve` puts the segments' trees in place before
the rule is evaluated (per event) or compiled to SQL (an audience found in the database), so an
edit to a segment reaches every strategy and segment that names it. Cycles and unknown keys are
refused when a rule is saved; a segment still named somewhere cannot be deleted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Literal

from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from followup.config import InputLimits
from followup.customers import service as customers
from followup.customers.schemas import stats_field_problem
from followup.kernel.actors import Actor
from followup.kernel.crypto import KeyProvider
from followup.kernel.errors import Conflict, InvalidInput, NotFound
from followup.kernel.text import text_problem
from followup.privacy import service as privacy
from followup.rules.tree import (
    Node,
    RuleNode,
    RuleTooLarge,
    SegmentCycle,
    SegmentRef,
    UnknownSegment,
    check_size,
    expand,
    fields_used,
    segments_used,
)
from followup.strategies.models import Segment
from followup.strategies.repository import SegmentRepository, StrategyRepository
from followup.strategies.schemas import SegmentCreate, SegmentOut, SegmentPreview, SegmentUpdate, StrategyCreate

RULE: TypeAdapter[Node] = TypeAdapter(RuleNode)
SAMPLE_SIZE = 20


class SegmentNotFound(NotFound):
    code = "segment_not_found"


class SegmentExists(Conflict):
    code = "segment_exists"


class SegmentInUse(Conflict):
    code = "segment_in_use"


def stored_lookup(session: Session) -> Callable[[str], Node | None]:
    """A segment's stored tree by key, each read once for the caller's lifetime."""
    repo = SegmentRepository(session)
    cache: dict[str, Node | None] = {}

    def lookup(key: str) -> Node | None:
        if key not in cache:
            row = repo.by_key(key)
            cache[key] = None if row is None else RULE.validate_python(row.rule)
        return cache[key]

    return lookup


def resolve(node: Node, lookup: Callable[[str], Node | None], *, field: str) -> Node:
    """The tree with its segments in place; a 422 naming `field` for an unknown key or a cycle."""
    try:
        return expand(node, lookup)
    except UnknownSegment as exc:
        raise InvalidInput(
            f"{field}: there is no segment '{exc.key}'; create it first.", code="segment_not_found", field=field
        ) from exc
    except SegmentCycle as exc:
        raise InvalidInput(f"{field}: {exc}.", code="segment_cycle", field=field) from exc
    except ValueError as exc:
        raise InvalidInput(f"{field}: {exc}.", code="limit_exceeded", field=field) from exc


_ONLY = {
    "customer": "is not a customer field; {whose} selects customers by customer.* fields only",
    "event": "is not an event field; {whose} reads the event's own event.* fields only",
}


def check_rule(
    node: Node, *, field: str, limits: InputLimits, only: Literal["customer", "event"] | None, whose: str = ""
) -> None:
    """Size limits, known stats and, with `only`, fields of that kind alone; 422s naming `field`.
    `whose` names the rule in the sentence ("a segment", "a periodic strategy's audience")."""
    try:
        check_size(
            node,
            max_nodes=limits.max_rule_nodes,
            max_list_items=limits.max_rule_list_items,
            max_value_bytes=limits.max_attribute_bytes,
        )
    except RuleTooLarge as exc:
        where = f"{field}.{exc.path}" if exc.path else field
        raise InvalidInput(f"{where}: {exc.message}.", code="limit_exceeded", field=where) from exc
    for name in sorted(fields_used(node)):
        problem = stats_field_problem(name)
        if problem is not None:
            raise InvalidInput(f"{field}: {problem}.", code="unknown_field", field=field)
        if only is not None and not name.startswith(f"{only}."):
            sentence = _ONLY[only].format(whose=whose or "this rule")
            raise InvalidInput(f"{field}: '{name}' {sentence}.", code="invalid_field", field=field)


def _check_name(name: str, *, limits: InputLimits) -> None:
    problem = text_problem(name, max_chars=limits.max_title_chars)
    if problem is not None:
        code, sentence = problem
        raise InvalidInput(f"name: {sentence}.", code=code, field="name")


def _check_segment_rule(session: Session, key: str, rule: Node, *, limits: InputLimits) -> None:
    check_rule(rule, field="rule", limits=limits, only="customer", whose="a segment")
    stored = stored_lookup(session)
    # The segment as it would be saved, from itself: a way back to it, however long, is a cycle.
    resolve(SegmentRef(segment=key), lambda name: rule if name == key else stored(name), field="rule")


def access_segment(session: Session, key: str, *, lock: bool = False) -> Segment:
    segment = SegmentRepository(session).by_key(key, lock=lock)
    if segment is None:
        raise SegmentNotFound(f"No segment with key '{key}'.", field="key")
    return segment


def create_segment(
    session: Session, data: SegmentCreate, *, limits: InputLimits, actor: Actor, now: dt.datetime
) -> Segment:
    _check_name(data.name, limits=limits)
    repo = SegmentRepository(session)
    if repo.by_key(data.key) is not None:
        raise SegmentExists(f"A segment with key '{data.key}' already exists.", field="key")
    _check_segment_rule(session, data.key, data.rule, limits=limits)
    segment = Segment(
        key=data.key,
        name=data.name,
        rule=RULE.dump_python(data.rule, mode="json"),
        version=1,
        created_at=now,
        updated_at=now,
    )
    repo.add(segment)
    session.flush()
    privacy.record_audit(
        session, actor=actor, subject_type="segment", subject_id=data.key, event="segment.created", now=now
    )
    return segment


def update_segment(
    session: Session, key: str, data: SegmentUpdate, *, limits: InputLimits, actor: Actor, now: dt.datetime
) -> Segment:
    segment = access_segment(session, key, lock=True)
    changed: list[str] = []
    if data.name is not None and data.name != segment.name:
        _check_name(data.name, limits=limits)
        segment.name = data.name
        changed.append("name")
    if data.rule is not None:
        rule = RULE.dump_python(data.rule, mode="json")
        if rule != segment.rule:
            _check_segment_rule(session, key, data.rule, limits=limits)
            segment.rule = rule
            changed.append("rule")
    if changed:
        segment.version += 1
        segment.updated_at = now
        session.flush()
        privacy.record_audit(
            session,
            actor=actor,
            subject_type="segment",
            subject_id=key,
            event="segment.changed",
            now=now,
            new={"changed": ",".join(changed), "version": segment.version},
        )
    return segment


def used_by(session: Session, key: str) -> list[str]:
    """Who names the segment directly: `strategy:<key>` and `segment:<key>`, sorted."""
    users: list[str] = []
    for strategy in StrategyRepository(session).all():
        audience = StrategyCreate.model_validate(strategy.definition).audience
        if audience is not None and key in segments_used(audience):
            users.append(f"strategy:{strategy.key}")
    for segment in SegmentRepository(session).all():
        if segment.key != key and key in segments_used(RULE.validate_python(segment.rule)):
            users.append(f"segment:{segment.key}")
    return sorted(users)


def delete_segment(session: Session, key: str, *, actor: Actor, now: dt.datetime) -> None:
    segment = access_segment(session, key, lock=True)
    users = used_by(session, key)
    if users:
        raise SegmentInUse(f"Segment '{key}' is used by {', '.join(users)}; change those first.", field="key")
    SegmentRepository(session).delete(segment)
    session.flush()
    privacy.record_audit(session, actor=actor, subject_type="segment", subject_id=key, event="segment.deleted", now=now)


def describe_segment(session: Session, segment: Segment) -> SegmentOut:
    return SegmentOut(
        key=segment.key,
        name=segment.name,
        rule=RULE.validate_python(segment.rule),
        version=segment.version,
        used_by=used_by(session, segment.key),
        created_at=segment.created_at,
        updated_at=segment.updated_at,
    )


def list_segments(session: Session, *, limit: int, offset: int) -> tuple[list[SegmentOut], int]:
    rows, total = SegmentRepository(session).list_segments(limit=limit, offset=offset)
    return [describe_segment(session, row) for row in rows], total


def preview_rule(session: Session, rule: Node, *, now: dt.datetime, keys: KeyProvider) -> SegmentPreview:
    """Who a rule over customer.* selects now: how many, by locale, and the first few, masked."""
    tree = resolve(rule, stored_lookup(session), field="rule")
    by_locale = customers.audience_by_locale(session, tree, now=now)  # one pass; the count is its sum
    return SegmentPreview(
        count=sum(by_locale.values()),
        by_locale=by_locale,
        sample=customers.audience_sample(session, tree, now=now, keys=keys, size=SAMPLE_SIZE),
    )


def preview_segment(session: Session, key: str, *, now: dt.datetime, keys: KeyProvider) -> SegmentPreview:
    return preview_rule(session, RULE.validate_python(access_segment(session, key).rule), now=now, keys=keys)
