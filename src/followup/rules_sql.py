"""The rule tree as SQL: what every repository that finds rows by a rule is built from.

`rules.tree.evaluate` is the meaning; these pieces say the same thing in SQLite's and PostgreSQL's
words, and a property test holds the two to each other on both databases. A repository names its
fields (`column_field`, `json_field`, or a TypedField of its own) and `rule_where` walks the tree.
What that takes:
- every compiled condition is TRUE or FALSE, never NULL, so `not` and `any` keep two values;
- a missing value and a JSON null are the same thing (they satisfy only `ne`, `not_in` and
  `exists: false`), and a value of another type than the rule's compares false, never raises;
- strings compare by code point (SQLite's BINARY, PostgreSQL's "C" collation), numbers exactly
  (PostgreSQL: NUMERIC; a float is bound by its shortest decimal, the text JSON stored);
- true is not 1: booleans equal only booleans.
"""

from __future__ import annotations

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

from followup.rules.tree import AllOf, AnyOf, Condition, Node, NotOf, Scalar, SegmentRef, UnexpandedSegment

Where = ColumnElement[bool]
FieldResolver = Callable[[str], "TypedField | None"]


class FieldNotInSql(ValueError):
    """A rule names a field the rows being searched do not have."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


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
        # The path is written into the statement (quoted by SQLAlchemy), not bound: SQLite parses
        # a bound path again for every row, a tenth of a segment's scan over a million customers.
        self.path = literal("$" + "".join(f'."{part}"' for part in path), String(), literal_execute=True)
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
        raise FieldNotInSql(condition.field, f"'{condition.op}' needs a value")
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
        raise FieldNotInSql(node.field, f"'{node.field}' cannot {purpose}; use one of: {', '.join(fields)}")
    return _condition(node, typed)


def column_field(dialect: str, column: ColumnElement[Any], kind: str, *, optional: bool = False) -> TypedField:
    """A column holding values of one kind ("text", "number", "bool"), as a rule reads it."""
    return _Column(dialect, column, kind, optional=optional)


def json_field(dialect: str, column: ColumnElement[Any], path: Sequence[str]) -> TypedField:
    """A value at `path` inside a JSON column, as a rule reads it."""
    if dialect == "postgresql":
        return _PostgresJson(column, path)
    return _SqliteJson(column, path)
