"""What the console's strategy and segment forms share: who may change things, the actor a change
is recorded under, the rule builder's fields and operators, and a refusal turned into the field it
names and a sentence.

The rule builder offers the fields the engine itself knows (the customer's audience fields and
stats, the event's fields) and the rule tree's own operators; nothing is retyped here, so a new
stat or operator reaches the form by itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, get_args

from fastapi import Request, Response
from pydantic import ValidationError

from followup.customers.schemas import AUDIENCE_FIELDS, STATS_FIELDS
from followup.events.schemas import EVENT_FIELDS
from followup.kernel.actors import Actor
from followup.kernel.errors import FollowupError
from followup.kernel.schemas import client_path
from followup.rules.tree import Operator
from followup.staff import roles
from followup.web.console.auth import SignedInStaff
from followup.web.console.pages import problem_page, templates

OPERATORS: tuple[str, ...] = get_args(Operator)
JSON_CHARS = 100_000  # a rule's JSON in a form: far above any rule the size limits let through
KEY_MAX = 64  # a strategy's or segment's key: a longer one names nothing
RuleScope = Literal["customer", "event", "both"]


def may_edit(signed_in: SignedInStaff) -> bool:
    """Admins and the CX team's analysts build strategies and segments (`staff.roles`)."""
    return roles.access(signed_in.role, "POST", "/strategies") == "allow"


def forbidden_page(request: Request, signed_in: SignedInStaff) -> Response:
    return problem_page(
        request,
        signed_in,
        title="Not allowed",
        text=f"Your role ({signed_in.role}) may read strategies and segments but not change them.",
        status_code=403,
    )


def expired_page(request: Request, signed_in: SignedInStaff) -> Response:
    return problem_page(
        request,
        signed_in,
        title="Refused",
        text="The form expired or came from elsewhere; reload the page and try again.",
        status_code=403,
    )


def staff_actor(signed_in: SignedInStaff) -> Actor:
    """The signed-in staff member, as versions and the audit log record them (`staff:<email>`)."""
    return Actor(
        kind="staff",
        id=signed_in.email,
        label=signed_in.email,
        role=signed_in.role,
        queues=signed_in.queues,
        staff_id=signed_in.id,
    )


def _customer_fields() -> list[str]:
    fields: list[str] = []
    for field in AUDIENCE_FIELDS:
        if field == "customer.stats.<name>":
            fields.extend(f"customer.stats.{name}" for name in STATS_FIELDS)
            fields.append("customer.stats.responses_by_channel.")
        else:
            fields.append(field.replace("<name>", ""))
    return fields


def rule_fields(scope: RuleScope) -> list[str]:
    """The fields offered in the builder; one ending in "." is a prefix the author completes
    (`customer.attributes.` + an attribute's name)."""
    event = [field.replace("*", "") for field in EVENT_FIELDS]
    if scope == "customer":
        return _customer_fields()
    if scope == "event":
        return event
    return [*event, *_customer_fields()]


@dataclass(frozen=True)
class Problem:
    """Why a form was refused: the field it names (None: the form as a whole) and a sentence."""

    field: str | None
    message: str
    status_code: int = 422


class RuleText(ValueError):
    """A rule's JSON in a form that does not parse."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_rule(text: str, *, field: str) -> Any:
    """The JSON of a rule field; None when it is left empty (no rule: everyone)."""
    text = text.strip()
    if not text or text == "null":
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RuleText(
            field, f"{field}: this is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})."
        ) from exc


def rule_json(rule: Any) -> str:
    """A stored rule as the form's JSON field shows it: indented, for a person to read."""
    return "" if rule is None else json.dumps(rule, indent=2, ensure_ascii=False)


templates.env.filters["pretty_json"] = rule_json


def problem_of(exc: Exception, body: Any) -> Problem:
    """The refusal of a schema or a service, as the API would word it: the field as the body names
    it (pydantic's union tags left out) and a sentence a person can act on."""
    if isinstance(exc, RuleText):
        return Problem(exc.field, str(exc))
    if isinstance(exc, FollowupError):
        return Problem(exc.field, exc.message, exc.status_code)
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        kind = str(first.get("type", ""))
        path = client_path(tuple(first.get("loc", ())), body, kind)
        field = ".".join(path) or None
        message = str(first.get("msg", "invalid value")).removeprefix("Value error, ").rstrip(".")
        if kind == "missing":
            return Problem(field, f"'{field}' is required.")
        return Problem(field, f"{field}: {message}." if field else f"{message}.")
    raise exc
