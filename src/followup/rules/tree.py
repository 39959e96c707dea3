"""The audience rule tree: `all` / `any` / `not` / condition, as pydantic models.

Pure: no database, no I/O. A tree is validated once, then compiled into a Python predicate over
a context of the shape {"event": {...}, "customer": {...}}. Field paths are dotted
(`event.amount`, `customer.attributes.tier`).

Semantics a reader might otherwise guess at:
- a missing field satisfies only `ne`, `not_in` and `exists: false`;
- comparisons between incomparable types (a number against a string) are false, never an error;
- `contains` works on strings (substring) and lists (membership);
- `{"segment": "key"}` stands for a named segment's own tree: `expand` puts the trees in place
  (refusing unknown keys and cycles) before a tree is evaluated or compiled.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

Scalar = str | int | float | bool
Operator = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists"]
ROOTS = ("event", "customer")
MAX_DEPTH = 12
_FIELD = re.compile(r"^(event|customer)(\.[A-Za-z_][A-Za-z0-9_]*)+$")

Predicate = Callable[[Mapping[str, Any]], bool]
_MISSING = object()


class _Node(BaseModel):
    # Dump `not`, never the Python name `not_`: a plain model_dump() must validate back into the
    # same tree (the discriminator looks for "not").
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True, allow_inf_nan=False)


class Condition(_Node):
    field: str = Field(description="dotted path under event. or customer.", examples=["event.amount"])
    op: Operator
    value: Scalar | list[Scalar] | None = None

    @field_validator("field")
    @classmethod
    def _check_field(cls, value: str) -> str:
        if not _FIELD.match(value):
            raise ValueError(
                "field must be a dotted path starting with event. or customer., "
                "e.g. event.amount or customer.attributes.tier"
            )
        return value

    @field_validator("value")
    @classmethod
    def _check_text(cls, value: Scalar | list[Scalar] | None) -> Scalar | list[Scalar] | None:
        # JSON lets a string carry a lone surrogate ("\ud800"); it could be stored but never sent back.
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and not item.isascii():
                try:
                    item.encode()
                except UnicodeEncodeError as exc:
                    raise ValueError("value must be valid Unicode text") from exc
        return value

    @model_validator(mode="after")
    def _check_value(self) -> Condition:
        if self.op in ("in", "not_in"):
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"'{self.op}' needs a non-empty list as value")
        elif self.op == "exists":
            if not isinstance(self.value, bool):
                raise ValueError("'exists' needs true or false as value")
        elif (self.value is None or isinstance(self.value, list)) and not (
            self.op == "contains" and self.value is not None
        ):
            raise ValueError(f"'{self.op}' needs a single value (string, number or boolean)")
        if self.op in ("gt", "gte", "lt", "lte") and isinstance(self.value, bool):
            raise ValueError(f"'{self.op}' compares numbers or strings, not booleans")
        return self


class SegmentRef(_Node):
    """A named segment's rule, by its key."""

    segment: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", examples=["high-value"])


class AllOf(_Node):
    all: list[RuleNode] = Field(min_length=1)


class AnyOf(_Node):
    any: list[RuleNode] = Field(min_length=1)


class NotOf(_Node):
    not_: RuleNode = Field(alias="not")


def _node_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for key in ("all", "any", "not", "segment"):
            if key in value:
                return key
        return "condition"
    if isinstance(value, SegmentRef):
        return "segment"
    if isinstance(value, AllOf):
        return "all"
    if isinstance(value, AnyOf):
        return "any"
    if isinstance(value, NotOf):
        return "not"
    if isinstance(value, Condition):
        return "condition"
    return None


RuleNode = Annotated[
    Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[NotOf, Tag("not")]
    | Annotated[SegmentRef, Tag("segment")]
    | Annotated[Condition, Tag("condition")],
    Discriminator(
        _node_kind,
        custom_error_type="invalid_rule",
        custom_error_message=(
            "a rule is an object with 'all', 'any' or 'not', a segment reference {'segment': key}, "
            "or a condition with 'field', 'op' and 'value'"
        ),
    ),
]

AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()

Node = AllOf | AnyOf | NotOf | SegmentRef | Condition


class Rule(BaseModel):
    """Wrapper that validates a whole tree and checks its depth."""

    root: RuleNode

    @model_validator(mode="after")
    def _check_depth(self) -> Rule:
        if depth(self.root) > MAX_DEPTH:
            raise ValueError(f"the rule tree is nested deeper than {MAX_DEPTH} levels")
        return self


class RuleTooLarge(ValueError):
    """A tree over one of the size limits; `path` is where, relative to the tree's root."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _value_bytes(value: Scalar) -> int:
    return len(value.encode()) if isinstance(value, str) else len(str(value))


def check_size(node: Node, *, max_nodes: int, max_list_items: int, max_value_bytes: int) -> None:
    """Raise RuleTooLarge when the tree has more nodes, a longer value list or a longer value than
    allowed. Every event of a strategy's types is evaluated against the tree, and every read of the
    strategy returns it: its size is what each event and each read pays.

    Runs when a tree is written, not when it is read, so a tree stored under looser limits still
    loads and evaluates.
    """
    count = 0
    problem: RuleTooLarge | None = None
    stack: list[tuple[str, Node]] = [("", node)]
    while stack:
        path, current = stack.pop()
        count += 1
        prefix = f"{path}." if path else ""
        if isinstance(current, AllOf):
            stack.extend((f"{prefix}all.{index}", child) for index, child in reversed(list(enumerate(current.all))))
        elif isinstance(current, AnyOf):
            stack.extend((f"{prefix}any.{index}", child) for index, child in reversed(list(enumerate(current.any))))
        elif isinstance(current, NotOf):
            stack.append((f"{prefix}not", current.not_))
        elif isinstance(current, Condition) and problem is None:
            problem = _condition_problem(current, f"{prefix}value", max_list_items, max_value_bytes)
    if count > max_nodes:
        raise RuleTooLarge(
            "", f"a rule tree may hold at most {max_nodes} conditions and groups in all; this one has {count}"
        )
    if problem is not None:
        raise problem


def _condition_problem(
    condition: Condition, path: str, max_list_items: int, max_value_bytes: int
) -> RuleTooLarge | None:
    values = condition.value if isinstance(condition.value, list) else [condition.value]
    if isinstance(condition.value, list) and len(values) > max_list_items:
        return RuleTooLarge(
            path, f"a list of values may hold at most {max_list_items} items; this one has {len(values)}"
        )
    for value in values:
        size = 0 if value is None else _value_bytes(value)
        if size > max_value_bytes:
            return RuleTooLarge(
                path,
                f"a value may hold at most {max_value_bytes} bytes, as an attribute value may; this one has {size}",
            )
    return None


def depth(node: Node) -> int:
    if isinstance(node, AllOf):
        return 1 + max(depth(child) for child in node.all)
    if isinstance(node, AnyOf):
        return 1 + max(depth(child) for child in node.any)
    if isinstance(node, NotOf):
        return 1 + depth(node.not_)
    return 1


def resolve(context: Mapping[str, Any], path: str) -> Any:
    current: Any = context
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) != isinstance(expected, bool):
        return False
    numeric = (int, float)
    if isinstance(actual, numeric) and isinstance(expected, numeric):
        pass
    elif not (isinstance(actual, str) and isinstance(expected, str)):
        return False
    if op == "gt":
        return bool(actual > expected)
    if op == "gte":
        return bool(actual >= expected)
    if op == "lt":
        return bool(actual < expected)
    return bool(actual <= expected)


def _equal(actual: Any, expected: Any) -> bool:
    # True == 1 in Python; a rule author means them as different things.
    if isinstance(actual, bool) != isinstance(expected, bool):
        return False
    return bool(actual == expected)


def evaluate_condition(condition: Condition, context: Mapping[str, Any]) -> bool:
    actual = resolve(context, condition.field)
    op, expected = condition.op, condition.value
    if op == "exists":
        return (actual is not _MISSING and actual is not None) == expected
    if actual is _MISSING or actual is None:
        return op in ("ne", "not_in")
    if op == "eq":
        return _equal(actual, expected)
    if op == "ne":
        return not _equal(actual, expected)
    if op == "in":
        return any(_equal(actual, item) for item in expected)  # type: ignore[union-attr]
    if op == "not_in":
        return not any(_equal(actual, item) for item in expected)  # type: ignore[union-attr]
    if op == "contains":
        if isinstance(actual, str):
            return isinstance(expected, str) and expected in actual
        if isinstance(actual, list):
            if isinstance(expected, list):
                return all(any(_equal(a, e) for a in actual) for e in expected)
            return any(_equal(item, expected) for item in actual)
        return False
    return _compare(op, actual, expected)


def evaluate(node: Node, context: Mapping[str, Any]) -> bool:
    if isinstance(node, AllOf):
        return all(evaluate(child, context) for child in node.all)
    if isinstance(node, AnyOf):
        return any(evaluate(child, context) for child in node.any)
    if isinstance(node, NotOf):
        return not evaluate(node.not_, context)
    if isinstance(node, SegmentRef):
        raise UnexpandedSegment(node.segment)
    return evaluate_condition(node, context)


def compile_rule(node: Node | None) -> Predicate:
    """Turn a tree into a closure once, so the hot path does no isinstance dispatch per node."""
    if node is None:
        return lambda _context: True
    if isinstance(node, AllOf):
        children = [compile_rule(child) for child in node.all]
        return lambda context: all(child(context) for child in children)
    if isinstance(node, AnyOf):
        children = [compile_rule(child) for child in node.any]
        return lambda context: any(child(context) for child in children)
    if isinstance(node, NotOf):
        inner = compile_rule(node.not_)
        return lambda context: not inner(context)
    if isinstance(node, SegmentRef):
        raise UnexpandedSegment(node.segment)
    condition = node
    return lambda context: evaluate_condition(condition, context)


def fields_used(node: Node) -> set[str]:
    if isinstance(node, AllOf):
        return set().union(*(fields_used(child) for child in node.all))
    if isinstance(node, AnyOf):
        return set().union(*(fields_used(child) for child in node.any))
    if isinstance(node, NotOf):
        return fields_used(node.not_)
    if isinstance(node, SegmentRef):
        return set()
    return {node.field}


def segments_used(node: Node) -> list[str]:
    """The segment keys the tree names itself (not those its segments name), in order, once each."""
    found: list[str] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, AllOf):
            stack.extend(reversed(current.all))
        elif isinstance(current, AnyOf):
            stack.extend(reversed(current.any))
        elif isinstance(current, NotOf):
            stack.append(current.not_)
        elif isinstance(current, SegmentRef) and current.segment not in found:
            found.append(current.segment)
    return found


class UnexpandedSegment(RuntimeError):
    """A tree still naming a segment reached evaluation: `expand` it first."""


class UnknownSegment(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(f"there is no segment '{key}'")
        self.key = key


class SegmentCycle(ValueError):
    """Segments that name each other in a circle; `path` is the circle, its first key repeated last."""

    def __init__(self, path: list[str]) -> None:
        super().__init__(f"segments refer to each other in a circle: {' → '.join(path)}")
        self.path = path


def expand(node: Node, lookup: Callable[[str], Node | None], *, max_depth: int = MAX_DEPTH) -> Node:
    """The tree with every segment reference replaced by the segment's own tree, recursively.

    `lookup` gives a segment's tree by key, or None when there is none (UnknownSegment). A segment
    that reaches itself is a SegmentCycle. The expanded tree may be at most twice `max_depth`
    levels deep (ValueError): each tree is held to `max_depth` on its own, and nesting segments in
    segments must not build a tree no evaluation can walk."""
    cache: dict[str, Node] = {}

    def walk(current: Node, trail: tuple[str, ...]) -> Node:
        if isinstance(current, AllOf):
            return AllOf(all=[walk(child, trail) for child in current.all])
        if isinstance(current, AnyOf):
            return AnyOf(any=[walk(child, trail) for child in current.any])
        if isinstance(current, NotOf):
            return NotOf(not_=walk(current.not_, trail))
        if isinstance(current, Condition):
            return current
        key = current.segment
        if key in trail:
            raise SegmentCycle([*trail[trail.index(key) :], key])
        if key not in cache:
            tree = lookup(key)
            if tree is None:
                raise UnknownSegment(key)
            cache[key] = walk(tree, (*trail, key))
        return cache[key]

    expanded = walk(node, ())
    if depth(expanded) > 2 * max_depth:
        raise ValueError(f"with its segments in place the rule is nested deeper than {2 * max_depth} levels")
    return expanded
