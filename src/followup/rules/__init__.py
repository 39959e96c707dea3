"""The rule tree (pure)."""

from followup.rules.tree import (
    AllOf,
    AnyOf,
    Condition,
    NotOf,
    Rule,
    RuleNode,
    RuleTooLarge,
    check_size,
    compile_rule,
    evaluate,
)

__all__ = [
    "AllOf",
    "AnyOf",
    "Condition",
    "NotOf",
    "Rule",
    "RuleNode",
    "RuleTooLarge",
    "check_size",
    "compile_rule",
    "evaluate",
]
