"""Message templates a CX team writes: Jinja2 in a sandbox, with money, numbers and dates formatted
in the customer's locale by Babel.

A template sees four names: `customer`, `event`, `stats` and `survey`. Numbers are shown as they
are unless a filter formats them: `money` (minor units and a currency: `{{ stats.volume_30d |
money("CNY") }}` → ¥1,234.50 in zh-CN), `number`, `percent`, `date` and `datetime`. A template is
checked when it is saved (`check_template`): it must compile, name only those four variables and
known filters, read no attribute starting with `_`, and survive a trial render in the sandbox.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent, get_currency_precision
from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

NAMES = ("customer", "event", "stats", "survey")


class TemplateProblem(ValueError):
    """Why a template cannot be saved, as a sentence."""


def _babel_locale(locale: str) -> Locale:
    try:
        return Locale.parse(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


def _moment(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    raise TypeError("a date filter needs a time or an RFC 3339 string")


@lru_cache(maxsize=32)
def _environment(locale: str) -> ImmutableSandboxedEnvironment:
    where = _babel_locale(locale)

    def money(amount: Any, currency: str = "CNY") -> str:
        digits = get_currency_precision(currency)
        return format_currency(Decimal(int(amount)) / (10**digits), currency, locale=where)

    def number(value: Any, digits: int | None = None) -> str:
        if digits is not None:
            return format_decimal(value, format=f"#,##0.{'0' * digits}" if digits else "#,##0", locale=where)
        return format_decimal(value, locale=where)

    def percent(value: Any) -> str:
        return format_percent(value, locale=where)

    def date(value: Any, form: str = "medium") -> str:
        return format_date(_moment(value).date(), format=form, locale=where)

    def datetime(value: Any, form: str = "medium") -> str:
        return format_datetime(_moment(value), format=form, locale=where)

    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.filters.update({"money": money, "number": number, "percent": percent, "date": date, "datetime": datetime})
    return env


def render(source: str, *, locale: str, context: Mapping[str, Any]) -> str:
    """The template rendered for one customer; TemplateError (or a filter's TypeError/ValueError)
    when their data does not fit it."""
    return _environment(locale).from_string(source).render(**{name: context.get(name) for name in NAMES})


def _reads(tree: nodes.Template) -> list[tuple[str, str]]:
    """(variable, attribute) for each `name.attr` or `name["attr"]` the template reads."""
    out = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            attribute = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            attribute = node.arg.value
        else:
            continue
        target = node.node
        out.append((target.name if isinstance(target, nodes.Name) else "", attribute))
    return out


def check_template(source: str, *, locale: str, known_stats: Collection[str], sample: Mapping[str, Any]) -> None:
    """Raise TemplateProblem when the template does not compile, names an unknown variable, filter
    or stat, or tries to leave the sandbox (on a trial render with `sample`)."""
    env = _environment(locale)
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"does not compile: {exc.message} (line {exc.lineno})") from exc
    try:
        declared = meta.find_undeclared_variables(tree)
    except TemplateError as exc:  # an unknown filter or test, found while looking
        raise TemplateProblem(f"does not compile: {exc.message}") from exc
    unknown = sorted(declared - set(NAMES))
    if unknown:
        raise TemplateProblem(f"names an unknown variable '{unknown[0]}'; a template may use {', '.join(NAMES)}")
    for variable, attribute in _reads(tree):
        if attribute.startswith("_"):
            raise TemplateProblem(f"reads '{attribute}', which the sandbox does not allow")
        if variable == "stats" and attribute not in known_stats:
            raise TemplateProblem(f"names an unknown stat 'stats.{attribute}'")
    try:
        template = env.from_string(source)
    except TemplateError as exc:  # an unknown filter or test, found when compiling
        raise TemplateProblem(f"does not compile: {exc.message}") from exc
    try:
        template.render(**{name: sample.get(name) for name in NAMES})
    except SecurityError as exc:
        raise TemplateProblem(f"tries to leave the sandbox ({exc})") from exc
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError):
        pass  # depends on the data: a real customer's may fit; at send time the default text is used
