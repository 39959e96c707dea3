"""The audience repository: rule trees over `customer.*`, compiled to SQL so an audience is found
in the database (`rules/` stays pure; the SQL lives here, as every query does, in a repository).

`rules.tree.evaluate` is the meaning; this module says the same thing in SQLite's and PostgreSQL's
words, and a property test holds the two to each other on both databases. What that takes:
- every compiled condition is TRUE or FALSE, never NULL, so `not` and `any` keep two values;
- a missing attribute and a JSON null are the same thing (they satisfy only `ne`, `not_in` and
  `exists: false`), and a value of another type than the rule's compares false, never raises;
- strings compare by code point (SQLite's BINARY, PostgreSQL's "C" collation), numbers exactly
  (PostgreSQL: NUMERIC; a float is bound by its shortest decimal, the text JSON stored);
- true is not 1: booleans equal only booleans.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TypeGuard

from sqlalchemy import (
    ColumnElement,
    Numeric,
    String,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    literal_column,
    not_,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session

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
from followup.rules.tree import AllOf, AnyOf, Condition, Node, NotOf, Scalar, SegmentRef, UnexpandedSegment

Where = ColumnElement[bool]
FieldResolver = Callable[[str], "TypedField | None"]

# customer.<name> fields held in a text column: never missing, never another type.
_TEXT_COLUMNS = {
    "id": Customer.external_id.expression,
    "locale": Customer.locale.expression,
    "time_zone": Customer.time_zone.expression,
}
_OPTIONAL_TEXT_COLUMNS = {
    "preferred_channel": Customer.preferred_channel.expression,
    "value_tier": Customer.value_tier.expression,
}


def _number(value: int | float, dialect: str) -> Any:
    # PostgreSQL compares NUMERIC: bind a float by the shortest decimal that reads back as it, the
    # same text json.dumps stored, so 0.1 in a rule equals 0.1 in an attribute.
    if dialect == "postgresql":
        return cast(literal(Decimal(repr(value)) if isinstance(value, float) else value, Numeric()), Numeric())
    return literal(value)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


class TypedField:
    """One field as SQL: a test per JSON type and the field's value read as that type."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    def present(self) -> Where:  # neither missing nor null
        raise NotImplementedError

    def is_number(self) -> Where:
        raise NotImplementedError

    def is_text(self) -> Where:
        raise NotImplementedError

    def is_bool(self, value: bool) -> Where:
        raise NotImplementedError

    def is_list(self) -> Where:
        raise NotImplementedError

    def number(self) -> ColumnElement[Any]:
        raise NotImplementedError

    def text(self) -> ColumnElement[Any]:
        raise NotImplementedError

    def list_has(self, value: Scalar) -> Where:
        raise NotImplementedError

    # What a condition means, in terms of the tests above; each result is TRUE or FALSE.
    def equals(self, value: Scalar) -> Where:
        if isinstance(value, bool):
            return self.is_bool(value)
        if _is_number(value):
            return and_(self.is_number(), func.coalesce(self.number() == _number(value, self.dialect), false()))
        return and_(self.is_text(), func.coalesce(self.text() == _text(value, self.dialect), false()))

    def one_of(self, values: list[Scalar]) -> Where:
        """Equal to one of the values: one IN over the field read once when they are all text."""
        if len(values) > 1 and all(isinstance(item, str) for item in values):
            listed = [_text(item, self.dialect) for item in values]
            return and_(self.is_text(), func.coalesce(self.text().in_(listed), false()))
        return or_(*[self.equals(item) for item in values])

    def compare(self, op: str, value: Scalar) -> Where:
        if _is_number(value):
            left, right, kind = self.number(), _number(value, self.dialect), self.is_number()
        else:
            left, right, kind = self.text(), _text(value, self.dialect), self.is_text()
        compared = {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[op]
        return and_(kind, func.coalesce(compared, false()))

    def contains(self, value: Scalar | list[Scalar]) -> Where:
        if isinstance(value, list):
            return and_(self.is_list(), *[self.list_has(item) for item in value])
        as_list = and_(self.is_list(), self.list_has(value))
        if isinstance(value, str):
            return or_(and_(self.is_text(), func.coalesce(self._substring(value), false())), as_list)
        return as_list

    def _substring(self, value: str) -> Where:
        if self.dialect == "postgresql":
            return func.strpos(self.text(), value) > 0
        return func.instr(self.text(), value) > 0


def _text(value: str | int | float | bool, dialect: str) -> ColumnElement[Any]:
    bound = literal(value, String())
    return bound.collate("C") if dialect == "postgresql" else bound


class _Column(TypedField):
    """A column that holds a value of one type (text, number, boolean, or an object no condition
    but `exists` can match); `optional` when it may be NULL, which reads as missing."""

    def __init__(self, dialect: str, column: ColumnElement[Any], kind: str, *, optional: bool = False) -> None:
        super().__init__(dialect)
        self.column, self.kind, self.optional = column, kind, optional

    def present(self) -> Where:
        return self.column.is_not(None) if self.optional else true()

    def is_number(self) -> Where:
        return self.present() if self.kind == "number" else false()

    def is_text(self) -> Where:
        return self.present() if self.kind == "text" else false()

    def is_bool(self, value: bool) -> Where:
        if self.kind != "bool":
            return false()
        return self.column if value else not_(self.column)

    def is_list(self) -> Where:
        return false()

    def number(self) -> ColumnElement[Any]:
        return self.column if self.kind == "number" else null()

    def text(self) -> ColumnElement[Any]:
        if self.kind != "text":
            return null()
        return self.column.collate("C") if self.dialect == "postgresql" else self.column

    def list_has(self, value: Scalar) -> Where:
        return false()

    def equals(self, value: Scalar) -> Where:
        # A shortcut of the general form, so an index on the column can serve the condition.
        if self.optional:
            return super().equals(value)
        if self.kind == "text" and isinstance(value, str):
            return self.text() == _text(value, self.dialect)
        if self.kind == "number" and _is_number(value):
            matched: Where = self.column == _number(value, self.dialect)
            return matched
        return super().equals(value)


class _SqliteJson(TypedField):
    """A value inside a JSON column on SQLite: json_type / json_extract / json_each."""

    def __init__(self, column: ColumnElement[Any], path: Sequence[str]) -> None:
        super().__init__("sqlite")
        self.column = column
        self.path = "$" + "".join(f'."{part}"' for part in path)
        self.type = func.json_type(column, self.path)

    def present(self) -> Where:
        return func.coalesce(self.type != "null", false())

    def is_number(self) -> Where:
        return func.coalesce(self.type.in_(("integer", "real")), false())

    def is_text(self) -> Where:
        return func.coalesce(self.type == "text", false())

    def is_bool(self, value: bool) -> Where:
        return func.coalesce(self.type == ("true" if value else "false"), false())

    def is_list(self) -> Where:
        return func.coalesce(self.type == "array", false())

    def number(self) -> ColumnElement[Any]:
        return func.json_extract(self.column, self.path)

    def text(self) -> ColumnElement[Any]:
        return func.json_extract(self.column, self.path)

    # One JSON parse per row instead of two: json_extract gives a JSON string as SQL text, a number
    # or boolean as a number (never equal to text), and an array or object as its JSON text, which
    # can equal the rule's text only when that text itself starts with [ or {.
    def equals(self, value: Scalar) -> Where:
        if isinstance(value, str) and not value.startswith(("[", "{")):
            return func.coalesce(self.text() == value, false())
        return super().equals(value)

    def one_of(self, values: list[Scalar]) -> Where:
        if all(isinstance(item, str) and not item.startswith(("[", "{")) for item in values):
            return func.coalesce(self.text().in_(values), false())
        return super().one_of(values)

    def list_has(self, value: Scalar) -> Where:
        items = func.json_each(self.column, self.path).table_valued("value", "type").alias("item")
        if isinstance(value, bool):
            match = items.c.type == ("true" if value else "false")
        elif _is_number(value):
            match = and_(items.c.type.in_(("integer", "real")), items.c.value == value)
        else:
            match = and_(items.c.type == "text", items.c.value == value)
        return exists(select(literal(1)).select_from(items).where(match))


class _PostgresJson(TypedField):
    """A value inside a json column on PostgreSQL: json_typeof / ->> / json_array_elements."""

    def __init__(self, column: ColumnElement[Any], path: Sequence[str]) -> None:
        super().__init__("postgresql")
        self.parts = [literal(part, String()) for part in path]
        self.value = func.json_extract_path(column, *self.parts)
        self.raw_text = func.json_extract_path_text(column, *self.parts)
        self.type = func.json_typeof(self.value)

    def present(self) -> Where:
        return func.coalesce(self.type != "null", false())

    def is_number(self) -> Where:
        return func.coalesce(self.type == "number", false())

    def is_text(self) -> Where:
        return func.coalesce(self.type == "string", false())

    def is_bool(self, value: bool) -> Where:
        return func.coalesce(and_(self.type == "boolean", self.raw_text == ("true" if value else "false")), false())

    def is_list(self) -> Where:
        return func.coalesce(self.type == "array", false())

    def number(self) -> ColumnElement[Any]:
        # Cast only what is a JSON number: PostgreSQL evaluates CASE branches lazily.
        return case((self.type == "number", cast(self.raw_text, Numeric())), else_=None)

    def text(self) -> ColumnElement[Any]:
        return self.raw_text.collate("C")

    def list_has(self, value: Scalar) -> Where:
        items = func.json_array_elements(self.value).table_valued("value").alias("item")
        element_type = func.json_typeof(items.c.value)
        element_text = items.c.value.op("#>>")(literal_column("'{}'::text[]"))  # the scalar as text
        if isinstance(value, bool):
            match = and_(element_type == "boolean", element_text == ("true" if value else "false"))
        elif _is_number(value):
            match = and_(element_type == "number", cast(element_text, Numeric()) == _number(value, self.dialect))
        else:
            match = and_(element_type == "string", element_text.collate("C") == _text(value, self.dialect))
        found = exists(select(literal(1)).select_from(items).where(match))
        # json_array_elements raises on anything but an array; reach it only through the type check.
        return case((self.type == "array", found), else_=false())


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
            return _Column(dialect, _of_buckets(func.count(days.day.distinct()), *window), "number")
        types, measure, _ = WINDOWED_STATS[name]
        if types is not None:
            window.append(days.type.in_(types))
        total = func.coalesce(func.sum(getattr(days, measure)), 0)
        return _Column(dialect, _of_buckets(total, *window), "number")
    if name == "first_seen_at":
        first = _as_rfc3339(_of_buckets(func.min(days.first_at)), dialect, unix=True)
        return _Column(dialect, first, "text", optional=True)
    if name == "last_active_at":
        last = _as_rfc3339(_of_buckets(func.max(days.last_at)), dialect, unix=True)
        return _Column(dialect, last, "text", optional=True)
    if name == "last_followup_at":
        shown = _as_rfc3339(_of_activity(CustomerActivity.last_followup_at), dialect)
        return _Column(dialect, shown, "text", optional=True)
    if name == "last_nps":
        return _Column(dialect, _of_activity(CustomerActivity.last_nps), "number", optional=True)
    if name == "tx_types":
        return _KeyList(dialect, days.type.expression)
    if name == "features_used":
        return _KeyList(dialect, days.feature.expression)
    if name == "responses_by_channel":
        if not path:
            return _Column(dialect, true(), "object")
        stored = _of_activity(CustomerActivity.responses_by_channel)
        if dialect == "postgresql":
            return _PostgresJson(func.coalesce(stored, cast("{}", JSONType)), path)
        return _SqliteJson(func.coalesce(stored, "{}"), path)
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
            return _Column(dialect, _OPTIONAL_TEXT_COLUMNS[name], "text", optional=True)
        if name in _TEXT_COLUMNS:
            return _Column(dialect, _TEXT_COLUMNS[name], "text")
        if name == "event_count":
            return _Column(dialect, Customer.event_count.expression, "number")
        if name == "has_email":
            return _Column(dialect, Customer.email_sealed.is_not(None), "bool")
        if name == "has_phone":
            return _Column(dialect, Customer.phone_sealed.is_not(None), "bool")
        return None
    if name == "attributes":
        return json_field(dialect, Customer.attributes.expression, parts[2:])
    return None


def _condition(condition: Condition, typed: TypedField) -> Where:
    op, value = condition.op, condition.value
    if op == "exists":
        return typed.present() if value else not_(typed.present())
    if isinstance(value, list):  # `in` and `not_in` (validated), or `contains` with several values
        if op == "contains":
            return typed.contains(value)
        found = typed.one_of(value)
        return found if op == "in" else not_(found)
    if value is None:  # refused by Condition's own validation
        raise AudienceFieldError(condition.field, f"'{condition.op}' needs a value")
    if op == "contains":
        return typed.contains(value)
    if op == "eq":
        return typed.equals(value)
    if op == "ne":
        return not_(typed.equals(value))
    return typed.compare(op, value)


def rule_where(node: Node | None, resolve: FieldResolver, *, fields: Sequence[str], purpose: str) -> Where:
    """The WHERE clause that holds exactly for the rows the tree accepts, with each field read as
    `resolve` says (None: the field cannot `purpose`, an AudienceFieldError naming `fields`)."""
    if node is None:
        return true()
    if isinstance(node, AllOf):
        return and_(*[rule_where(child, resolve, fields=fields, purpose=purpose) for child in node.all])
    if isinstance(node, AnyOf):
        return or_(*[rule_where(child, resolve, fields=fields, purpose=purpose) for child in node.any])
    if isinstance(node, NotOf):
        return not_(rule_where(node.not_, resolve, fields=fields, purpose=purpose))
    if isinstance(node, SegmentRef):  # the caller expands segments first (rules.tree.expand)
        raise UnexpandedSegment(node.segment)
    typed = resolve(node.field)
    if typed is None:
        raise AudienceFieldError(node.field, f"'{node.field}' cannot {purpose}; use one of: {', '.join(fields)}")
    return _condition(node, typed)


def audience_where(node: Node | None, *, dialect: str, today: dt.date | None = None) -> Where:
    """The WHERE clause over `customers` that holds exactly for the customers the tree accepts,
    with windowed stats counted over the days up to `today` (UTC).

    Raises AudienceFieldError for a field that is not a customer field (event.* has no meaning
    for an audience found in the database).
    """
    return rule_where(
        node, lambda field: _customer_field(field, dialect, today), fields=AUDIENCE_FIELDS, purpose="select an audience"
    )


def column_field(dialect: str, column: ColumnElement[Any], kind: str, *, optional: bool = False) -> TypedField:
    """A column holding values of one kind ("text", "number", "bool"), as a rule reads it."""
    return _Column(dialect, column, kind, optional=optional)


def json_field(dialect: str, column: ColumnElement[Any], path: Sequence[str]) -> TypedField:
    """A value at `path` inside a JSON column, as a rule reads it."""
    if dialect == "postgresql":
        return _PostgresJson(column, path)
    return _SqliteJson(column, path)


def _where(session: Session, node: Node | None, now: dt.datetime) -> Where:
    return audience_where(node, dialect=session.get_bind().dialect.name, today=now.astimezone(dt.UTC).date())


def matching_ids(session: Session, node: Node | None, *, now: dt.datetime, limit: int | None = None) -> list[int]:
    """The ids of the customers the tree accepts as of `now`, found by the database, in id order."""
    query = select(Customer.id).where(_where(session, node, now)).order_by(Customer.id)
    return list(session.scalars(query if limit is None else query.limit(limit)))


def matching_members(session: Session, node: Node | None, *, now: dt.datetime) -> list[tuple[int, str]]:
    """(id, external id) of every customer the tree accepts as of `now`, in id order."""
    query = select(Customer.id, Customer.external_id).where(_where(session, node, now)).order_by(Customer.id)
    return [(row[0], row[1]) for row in session.execute(query)]


def count_by_locale(session: Session, node: Node | None, *, now: dt.datetime) -> dict[str, int]:
    query = select(Customer.locale, func.count()).where(_where(session, node, now)).group_by(Customer.locale)
    return {locale: int(count) for locale, count in session.execute(query)}


def count_matching(session: Session, node: Node | None, *, now: dt.datetime) -> int:
    where = _where(session, node, now)
    return int(session.scalar(select(func.count()).select_from(Customer).where(where)) or 0)
