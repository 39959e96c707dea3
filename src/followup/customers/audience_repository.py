"""The audience repository: rule trees over `customer.*`, compiled to SQL so an audience is found
in the database (`rules/` stays pure; the SQL lives here, as every query does, in a repository).

`followup.rules_sql` holds what any rule's SQL is built from and what it must keep to (two-valued
conditions, missing equals null, code-point strings, exact numbers); this module names the
customer's fields: its columns, its attributes, and the activity stats read from the day buckets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, cast, exists, false, func, literal, null, select, true
from sqlalchemy.orm import Session

from followup.customers.contacts import REACH_BITS, ContactKind
from followup.customers.models import Customer, CustomerActivity, CustomerActivityDay
from followup.customers.schemas import (
    ACTIVE_DAYS,
    AUDIENCE_FIELDS,
    WINDOWED_STATS,
    AudienceFieldError,
    epoch_day,
    stats_field_problem,
)
from followup.kernel.db import JSONType
from followup.rules.tree import Node, Scalar
from followup.rules_sql import FieldNotInSql, TypedField, Where, column_field, json_field, rule_where

_TEXT_COLUMNS = {
    "id": Customer.external_id.expression,
    "locale": Customer.locale.expression,
    "time_zone": Customer.time_zone.expression,
}
_OPTIONAL_TEXT_COLUMNS = {
    "preferred_channel": Customer.preferred_channel.expression,
    "value_tier": Customer.value_tier.expression,
}


class _KeyList(TypedField):
    """tx_types or features_used: a list, never missing, held as the keys of the day buckets."""

    def __init__(self, dialect: str, column: ColumnElement[Any]) -> None:
        super().__init__(dialect)
        self.column = column

    def present(self) -> Where:
        return true()

    def is_number(self) -> Where:
        return false()

    def is_text(self) -> Where:
        return false()

    def is_bool(self, value: bool) -> Where:
        return false()

    def is_list(self) -> Where:
        return true()

    def number(self) -> ColumnElement[Any]:
        return null()

    def text(self) -> ColumnElement[Any]:
        return null()

    def list_has(self, value: Scalar) -> Where:
        if not isinstance(value, str) or not value:  # names are text; "" is no feature's name
            return false()
        days = CustomerActivityDay
        return exists(select(literal(1)).where(days.customer_id == Customer.id, self.column == value))


def _of_activity(column: Any) -> ColumnElement[Any]:
    return select(column).where(CustomerActivity.customer_id == Customer.id).scalar_subquery()


def _of_buckets(measure: ColumnElement[Any], *conditions: Where) -> ColumnElement[Any]:
    days = CustomerActivityDay
    return select(measure).where(days.customer_id == Customer.id, *conditions).scalar_subquery()


def _as_rfc3339(value: ColumnElement[Any], dialect: str, *, unix: bool = False) -> ColumnElement[Any]:
    """A stored UTC time (or Unix seconds) as the text stats show it (customers.schemas.rfc3339)."""
    if dialect == "postgresql":
        moment = func.to_timestamp(value) if unix else value
        return func.to_char(func.timezone("UTC", moment), 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    if unix:
        return func.strftime("%Y-%m-%dT%H:%M:%SZ", value, "unixepoch")
    return func.strftime("%Y-%m-%dT%H:%M:%SZ", value)


def _stats_field(name: str, path: Sequence[str], dialect: str, today: dt.date | None) -> TypedField | None:
    days = CustomerActivityDay
    if name in WINDOWED_STATS or name == ACTIVE_DAYS[0]:
        if today is None:
            raise ValueError("a rule over windowed stats needs the day it is evaluated on")
        length = ACTIVE_DAYS[1] if name == ACTIVE_DAYS[0] else WINDOWED_STATS[name][2]
        last_day = epoch_day(today)
        window = [days.day >= last_day - length + 1, days.day <= last_day]
        if name == ACTIVE_DAYS[0]:
            return column_field(dialect, _of_buckets(func.count(days.day.distinct()), *window), "number")
        types, measure, _ = WINDOWED_STATS[name]
        if types is not None:
            window.append(days.type.in_(types))
        total = func.coalesce(func.sum(getattr(days, measure)), 0)
        return column_field(dialect, _of_buckets(total, *window), "number")
    if name == "first_seen_at":
        first = _as_rfc3339(_of_buckets(func.min(days.first_at)), dialect, unix=True)
        return column_field(dialect, first, "text", optional=True)
    if name == "last_active_at":
        last = _as_rfc3339(_of_buckets(func.max(days.last_at)), dialect, unix=True)
        return column_field(dialect, last, "text", optional=True)
    if name == "last_followup_at":
        shown = _as_rfc3339(_of_activity(CustomerActivity.last_followup_at), dialect)
        return column_field(dialect, shown, "text", optional=True)
    if name == "last_nps":
        return column_field(dialect, _of_activity(CustomerActivity.last_nps), "number", optional=True)
    if name == "tx_types":
        return _KeyList(dialect, days.type.expression)
    if name == "features_used":
        return _KeyList(dialect, days.feature.expression)
    if name == "responses_by_channel":
        if not path:
            return column_field(dialect, true(), "object")
        stored = _of_activity(CustomerActivity.responses_by_channel)
        empty = cast("{}", JSONType) if dialect == "postgresql" else literal("{}")
        return json_field(dialect, func.coalesce(stored, empty), path)
    return None


def _customer_field(field: str, dialect: str, today: dt.date | None) -> TypedField | None:
    parts = field.split(".")
    if parts[0] != "customer" or len(parts) < 2:
        return None
    name = parts[1]
    if name == "stats" and len(parts) >= 3:
        if stats_field_problem(field) is not None:
            return None
        return _stats_field(parts[2], parts[3:], dialect, today)
    if len(parts) == 2:
        if name in _OPTIONAL_TEXT_COLUMNS:
            return column_field(dialect, _OPTIONAL_TEXT_COLUMNS[name], "text", optional=True)
        if name in _TEXT_COLUMNS:
            return column_field(dialect, _TEXT_COLUMNS[name], "text")
        if name == "event_count":
            return column_field(dialect, Customer.event_count.expression, "number")
        if name in ("has_email", "has_phone"):
            bit = REACH_BITS[ContactKind.EMAIL if name == "has_email" else ContactKind.PHONE]
            return column_field(dialect, Customer.reach.op("&")(bit) != 0, "bool")
        return None
    if name == "attributes":
        return json_field(dialect, Customer.attributes.expression, parts[2:])
    return None


def audience_where(node: Node | None, *, dialect: str, today: dt.date | None = None) -> Where:
    """The WHERE clause over `customers` that holds exactly for the customers the tree accepts,
    with windowed stats counted over the days up to `today` (UTC).

    Raises AudienceFieldError for a field that is not a customer field (event.* has no meaning
    for an audience found in the database).
    """
    try:
        return rule_where(
            node,
            lambda field: _customer_field(field, dialect, today),
            fields=AUDIENCE_FIELDS,
            purpose="select an audience",
        )
    except FieldNotInSql as exc:
        raise AudienceFieldError(exc.field, str(exc)) from exc


def _where(session: Session, node: Node | None, now: dt.datetime) -> Where:
    return audience_where(node, dialect=session.get_bind().dialect.name, today=now.astimezone(dt.UTC).date())


def matching_ids(session: Session, node: Node | None, *, now: dt.datetime, limit: int | None = None) -> list[int]:
    """The ids of the customers the tree accepts as of `now`, found by the database, in id order."""
    query = select(Customer.id).where(_where(session, node, now)).order_by(Customer.id)
    return list(session.scalars(query if limit is None else query.limit(limit)))


def matching_members(session: Session, node: Node | None, *, now: dt.datetime) -> list[tuple[int, str, str]]:
    """(id, external id, time zone) of every customer the tree accepts as of `now`, in id order."""
    query = (
        select(Customer.id, Customer.external_id, Customer.time_zone)
        .where(_where(session, node, now))
        .order_by(Customer.id)
    )
    return [(row[0], row[1], row[2]) for row in session.execute(query)]


def count_by_locale(session: Session, node: Node | None, *, now: dt.datetime) -> dict[str, int]:
    query = select(Customer.locale, func.count()).where(_where(session, node, now)).group_by(Customer.locale)
    return {locale: int(count) for locale, count in session.execute(query)}


def count_matching(session: Session, node: Node | None, *, now: dt.datetime) -> int:
    where = _where(session, node, now)
    return int(session.scalar(select(func.count()).select_from(Customer).where(where)) or 0)
