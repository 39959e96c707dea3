"""The audience rule tree: what it refuses, what each operator means, and properties that must
hold for every tree (hypothesis). Pure: no database."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from followup.rules.tree import (
    MAX_DEPTH,
    AllOf,
    AnyOf,
    Condition,
    NotOf,
    Rule,
    RuleNode,
    SegmentCycle,
    SegmentRef,
    UnexpandedSegment,
    UnknownSegment,
    compile_rule,
    depth,
    evaluate,
    expand,
    segments_used,
)

NODE = TypeAdapter(RuleNode)
Node = AllOf | AnyOf | NotOf | SegmentRef | Condition


def rule(tree: dict[str, Any]) -> Node:
    return Rule.model_validate({"root": tree}).root


def rejection(tree: Any) -> str:
    """The messages of the validation errors a tree gets, joined."""
    with pytest.raises(ValidationError) as caught:
        Rule.model_validate({"root": tree})
    return " | ".join(str(error["msg"]) for error in caught.value.errors())


def nested_not(levels: int) -> dict[str, Any]:
    tree: dict[str, Any] = {"field": "event.amount", "op": "gt", "value": 0}
    for _ in range(levels - 1):
        tree = {"not": tree}
    return tree


# ── validation ──────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    "path",
    ["amount", "user.tier", "event", "event.", "event..amount", "event.1st", "customer.attributes.tier-x", " event.a"],
)
def test_a_field_path_outside_event_or_customer_is_refused(path: str) -> None:
    assert "dotted path starting with event. or customer." in rejection({"field": path, "op": "eq", "value": 1})


@pytest.mark.parametrize("op", ["in", "not_in"])
@pytest.mark.parametrize("value", [5, "gold", [], None])
def test_in_and_not_in_need_a_non_empty_list(op: str, value: Any) -> None:
    assert f"'{op}' needs a non-empty list as value" in rejection({"field": "event.amount", "op": op, "value": value})


@pytest.mark.parametrize("value", ["true", 1, 0, None, [True]])
def test_exists_needs_a_boolean(value: Any) -> None:
    assert "'exists' needs true or false" in rejection({"field": "event.amount", "op": "exists", "value": value})


@pytest.mark.parametrize("op", ["eq", "ne", "gt", "gte", "lt", "lte"])
def test_comparisons_need_one_value_not_a_list_or_nothing(op: str) -> None:
    assert f"'{op}' needs a single value" in rejection({"field": "event.amount", "op": op, "value": [1, 2]})
    assert f"'{op}' needs a single value" in rejection({"field": "event.amount", "op": op})


@pytest.mark.parametrize("op", ["gt", "gte", "lt", "lte"])
def test_ordering_against_a_boolean_is_refused(op: str) -> None:
    assert "not booleans" in rejection({"field": "event.amount", "op": op, "value": True})


@pytest.mark.parametrize("kind", ["all", "any"])
def test_an_empty_all_or_any_is_refused(kind: str) -> None:
    assert "at least 1 item" in rejection({kind: []})


def test_unknown_operator_and_unknown_keys_are_refused() -> None:
    assert "Input should be" in rejection({"field": "event.amount", "op": "matches", "value": "x"})
    assert "Extra inputs are not permitted" in rejection({"field": "event.amount", "op": "eq", "value": 1, "x": 2})
    assert "Extra inputs are not permitted" in rejection(
        {
            "all": [{"field": "event.amount", "op": "eq", "value": 1}],
            "any": [{"field": "event.a", "op": "eq", "value": 1}],
        }
    )


def test_a_tree_deeper_than_the_limit_is_refused_and_one_at_the_limit_is_kept() -> None:
    assert depth(rule(nested_not(MAX_DEPTH))) == MAX_DEPTH
    assert f"nested deeper than {MAX_DEPTH} levels" in rejection(nested_not(MAX_DEPTH + 1))


def test_a_deep_audience_is_refused_by_the_strategy_too() -> None:
    from followup.strategies.schemas import StrategyCreate
    from tests.builders.strategies import strategy_body

    with pytest.raises(ValidationError) as caught:
        StrategyCreate.model_validate(strategy_body(audience=nested_not(MAX_DEPTH + 1)))
    assert f"nested deeper than {MAX_DEPTH} levels" in str(caught.value)


# ── evaluation, operator by operator ────────────────────────────────────────────────────────

CONTEXT: dict[str, Any] = {
    "event": {
        "type": "transfer.succeeded",
        "amount": 600000,
        "currency": None,
        "attributes": {"tags": ["qr", "offline"], "note": "paid at the night market", "first": True},
    },
    "customer": {"attributes": {"tier": "gold"}, "event_count": 3, "locale": "zh-CN"},
}


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        # eq / ne: exact, with booleans never equal to numbers
        ("event.amount", "eq", 600000, True),
        ("event.amount", "eq", 600000.0, True),
        ("event.amount", "eq", "600000", False),
        ("event.attributes.first", "eq", True, True),
        ("event.attributes.first", "eq", 1, False),
        ("customer.attributes.tier", "ne", "staff", True),
        ("customer.attributes.tier", "ne", "gold", False),
        # ordering: numbers with numbers, strings with strings, anything else is false
        ("event.amount", "gt", 500000, True),
        ("event.amount", "gt", 600000, False),
        ("event.amount", "gte", 600000, True),
        ("event.amount", "lt", 600000.5, True),
        ("event.amount", "lte", 599999, False),
        ("customer.attributes.tier", "gt", "bronze", True),
        ("customer.attributes.tier", "lt", "bronze", False),
        ("event.amount", "gt", "1", False),
        ("customer.attributes.tier", "lt", 10, False),
        ("event.attributes.first", "gte", 0, False),
        # in / not_in
        ("customer.attributes.tier", "in", ["gold", "platinum"], True),
        ("customer.attributes.tier", "in", ["silver"], False),
        ("event.attributes.first", "in", [1], False),
        ("customer.attributes.tier", "not_in", ["staff"], True),
        ("customer.attributes.tier", "not_in", ["gold"], False),
        # contains: substring of a string, membership of a list, all members of a list
        ("event.attributes.note", "contains", "night", True),
        ("event.attributes.note", "contains", "day", False),
        ("event.attributes.tags", "contains", "qr", True),
        ("event.attributes.tags", "contains", "nfc", False),
        ("event.attributes.tags", "contains", ["qr", "offline"], True),
        ("event.attributes.tags", "contains", ["qr", "nfc"], False),
        ("event.amount", "contains", 6, False),
        ("event.attributes.note", "contains", 1, False),
        # exists
        ("event.amount", "exists", True, True),
        ("event.amount", "exists", False, False),
        ("event.currency", "exists", True, False),
        ("event.currency", "exists", False, True),
    ],
)
def test_each_operator_on_present_fields(field: str, op: str, value: Any, expected: bool) -> None:
    condition = Condition(field=field, op=op, value=value)
    assert evaluate(condition, CONTEXT) is expected
    assert compile_rule(condition)(CONTEXT) is expected


@pytest.mark.parametrize(
    "field", ["event.attributes.channel", "customer.phone", "event.amount.cents", "event.currency"]
)
@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("eq", "x", False),
        ("ne", "x", True),
        ("gt", 0, False),
        ("gte", 0, False),
        ("lt", 0, False),
        ("lte", 0, False),
        ("in", ["x"], False),
        ("not_in", ["x"], True),
        ("contains", "x", False),
        ("exists", True, False),
        ("exists", False, True),
    ],
)
def test_a_missing_or_null_field_satisfies_only_ne_not_in_and_exists_false(
    field: str, op: str, value: Any, expected: bool
) -> None:
    condition = Condition(field=field, op=op, value=value)
    assert evaluate(condition, CONTEXT) is expected


def test_an_audience_reads_like_the_strategy_example() -> None:
    audience = rule(
        {
            "all": [
                {"field": "event.amount", "op": "gte", "value": 500000},
                {"not": {"field": "customer.attributes.tier", "op": "eq", "value": "staff"}},
            ]
        }
    )
    staff = {**CONTEXT, "customer": {"attributes": {"tier": "staff"}}}
    small = {**CONTEXT, "event": {"amount": 100}}
    assert [evaluate(audience, c) for c in (CONTEXT, staff, small, {})] == [True, False, False, False]


def test_no_audience_takes_everyone() -> None:
    assert compile_rule(None)({}) is True
    assert compile_rule(None)(CONTEXT) is True


# ── properties over any tree and any context ────────────────────────────────────────────────

FIELDS = [
    "event.amount",
    "event.type",
    "event.attributes.tags",
    "event.attributes.note",
    "customer.attributes.tier",
    "customer.event_count",
    "customer.attributes.absent",
]
scalars = st.one_of(
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.sampled_from(["gold", "silver", "qr", "a", ""]),
    st.text(max_size=4),
)
orderables = st.one_of(
    st.integers(-5, 5), st.floats(-5, 5, allow_nan=False, allow_infinity=False), st.sampled_from(["a", "m", "gold"])
)
non_empty_lists = st.lists(scalars, min_size=1, max_size=3)


@st.composite
def conditions(draw: st.DrawFn) -> Condition:
    op = draw(st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists"]))
    if op in ("in", "not_in"):
        value: Any = draw(non_empty_lists)
    elif op == "exists":
        value = draw(st.booleans())
    elif op in ("gt", "gte", "lt", "lte"):
        value = draw(orderables)
    elif op == "contains":
        value = draw(st.one_of(scalars, non_empty_lists))
    else:
        value = draw(scalars)
    return Condition.model_validate({"field": draw(st.sampled_from(FIELDS)), "op": op, "value": value})


trees: st.SearchStrategy[Node] = st.recursive(
    conditions(),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda items: AllOf.model_validate({"all": items})),
        st.lists(children, min_size=1, max_size=3).map(lambda items: AnyOf.model_validate({"any": items})),
        children.map(lambda child: NotOf.model_validate({"not": child})),
    ),
    max_leaves=8,
)
field_values = st.one_of(st.none(), scalars, st.lists(scalars, max_size=3))


@st.composite
def contexts(draw: st.DrawFn) -> dict[str, Any]:
    """Contexts where any of the fields may be present, null, of the wrong type, or absent."""
    context: dict[str, Any] = {"event": {"attributes": {}}, "customer": {"attributes": {}}}
    for path in FIELDS:
        if draw(st.booleans()):
            continue
        *parents, leaf = path.split(".")
        target = context
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = draw(field_values)
    return context


PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


@PROPERTY_SETTINGS
@given(tree=trees, context=contexts())
def test_not_inverts_any_tree(tree: Node, context: dict[str, Any]) -> None:
    negated = NotOf.model_validate({"not": tree})
    assert evaluate(negated, context) is (not evaluate(tree, context))
    assert evaluate(NotOf.model_validate({"not": negated}), context) is evaluate(tree, context)


@PROPERTY_SETTINGS
@given(children=st.lists(trees, min_size=1, max_size=4), context=contexts())
def test_all_and_any_agree_with_python_all_and_any_over_their_children(
    children: list[Node], context: dict[str, Any]
) -> None:
    results = [evaluate(child, context) for child in children]
    assert evaluate(AllOf.model_validate({"all": children}), context) is all(results)
    assert evaluate(AnyOf.model_validate({"any": children}), context) is any(results)


@PROPERTY_SETTINGS
@given(tree=trees, context=contexts())
def test_compiled_rule_agrees_with_evaluate(tree: Node, context: dict[str, Any]) -> None:
    assert compile_rule(tree)(context) is evaluate(tree, context)


@PROPERTY_SETTINGS
@given(tree=trees, context=contexts())
def test_a_tree_round_tripped_through_json_keeps_its_meaning(tree: Node, context: dict[str, Any]) -> None:
    # As a strategy stores it (JSON text), and as Python code passes it around (model_dump)
    from_json = NODE.validate_python(json.loads(NODE.dump_json(tree)))
    from_dump = NODE.validate_python(tree.model_dump())
    assert from_json == tree
    assert from_dump == tree
    assert evaluate(from_json, context) is evaluate(tree, context)
    assert compile_rule(from_dump)(context) is evaluate(tree, context)
    if depth(tree) <= MAX_DEPTH:
        assert Rule.model_validate_json(Rule(root=tree).model_dump_json()).root == tree


@PROPERTY_SETTINGS
@given(condition=conditions(), context=contexts())
def test_complementary_operators_are_exact_complements_even_for_missing_fields(
    condition: Condition, context: dict[str, Any]
) -> None:
    opposite = {"eq": "ne", "ne": "eq", "in": "not_in", "not_in": "in", "exists": "exists"}.get(condition.op)
    if opposite is None:
        return
    value = (not condition.value) if condition.op == "exists" else condition.value
    flipped = Condition.model_validate({"field": condition.field, "op": opposite, "value": value})
    assert evaluate(flipped, context) is (not evaluate(condition, context))


def test_expand_puts_segments_in_place_and_refuses_unknown_keys_and_circles() -> None:
    gold = rule({"field": "customer.value_tier", "op": "eq", "value": "gold"})
    english = rule({"all": [{"segment": "gold"}, {"field": "customer.locale", "op": "eq", "value": "en"}]})
    trees: dict[str, Node] = {"gold": gold, "en-gold": english}
    tree = rule({"any": [{"segment": "en-gold"}, {"not": {"segment": "gold"}}]})
    assert segments_used(tree) == ["en-gold", "gold"]
    expanded = expand(tree, trees.get)
    assert expanded.model_dump() == {
        "any": [{"all": [gold.model_dump(), english.model_dump()["all"][1]]}, {"not": gold.model_dump()}]
    }
    context = {"customer": {"value_tier": "gold", "locale": "zh-CN"}}
    assert evaluate(expanded, context) is False
    assert evaluate(expand(rule({"segment": "gold"}), trees.get), context) is True
    with pytest.raises(UnexpandedSegment):
        evaluate(tree, context)
    with pytest.raises(UnknownSegment) as unknown:
        expand(rule({"segment": "platinum"}), trees.get)
    assert unknown.value.key == "platinum"
    trees["gold"] = rule({"any": [{"segment": "en-gold"}]})
    with pytest.raises(SegmentCycle) as circle:
        expand(rule({"segment": "gold"}), trees.get)
    assert circle.value.path == ["gold", "en-gold", "gold"]
