"""What every console page is made with: the templates and their filters, a page, a problem page
(every mistake answered as a page, never JSON or a 500), and paging."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from followup.kernel.http import runtime_of
from followup.staff import roles
from followup.web.console import auth

HERE = Path(__file__).parent
PAGE_SIZE = 50
# Far beyond any outbox, and (page - 1) * PAGE_SIZE stays a small integer for every database.
LAST_ALLOWED_PAGE = 100_000
# Ids are 64-bit integers in every table: a larger number names nothing, and would overflow the query.
LARGEST_ID = 2**63 - 1

templates = Jinja2Templates(directory=str(HERE / "templates"))


def _when(value: dt.datetime | str | None) -> str:
    """A time as the console shows it; also the RFC 3339 text customer stats hold."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return "" if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:,.1f}%"


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def _count(value: int | None) -> str:
    """A whole number with thousands separators: 12,345."""
    return "–" if value is None else f"{value:,}"


templates.env.filters["when"] = _when
templates.env.filters["percent"] = _percent
templates.env.filters["number"] = _number
templates.env.filters["count"] = _count


@dataclass(frozen=True)
class Shown:
    """A customer as a page shows them to its reader: the id and a link, or a pseudonym alone."""

    text: str
    link: str | None


def customer_shown_to(request: Request, signed_in: auth.SignedInStaff | None) -> Callable[[str], Shown]:
    """How this reader sees customers: analysts by a pseudonym without a link (`staff.roles`)."""
    if signed_in is None or roles.sees_contacts(signed_in.role):
        return lambda customer_id: Shown(customer_id, f"/console/customers/{quote(customer_id, safe='')}")
    key = runtime_of(request).keys.derive_key(roles.PSEUDONYM_KEY_LABEL)
    return lambda customer_id: Shown(roles.pseudonym(key, customer_id), None)


def render_page(
    request: Request, name: str, signed_in: auth.SignedInStaff | None, context: dict[str, Any], status_code: int = 200
) -> Response:
    shown = {"staff": signed_in, "shown_customer": customer_shown_to(request, signed_in), "may": _may(signed_in)}
    return templates.TemplateResponse(request, name, {**shown, **context}, status_code=status_code)


def _may(signed_in: auth.SignedInStaff | None) -> Callable[[str], bool]:
    """`may("/cases")`: whether the reader's role opens a console path, for the navigation and buttons."""
    if signed_in is None:
        return lambda _path: False
    return lambda path: roles.access(signed_in.role, "GET", path) == "allow"


def problem_page(
    request: Request, signed_in: auth.SignedInStaff | None, *, title: str, text: str, status_code: int, **extra: Any
) -> Response:
    context = {"title": title, "text": text, **extra}
    return render_page(request, "problem.html", signed_in, context, status_code=status_code)


def not_found_page(request: Request, signed_in: auth.SignedInStaff | None, text: str) -> Response:
    return problem_page(request, signed_in, title="Not found", text=text, status_code=404)


def whole_number(text: str, *, low: int, high: int) -> int | None:
    """`text` as an integer in [low, high], or None: ids and page numbers come from the URL."""
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > len(str(high)):
        return None
    value = int(text)
    return value if low <= value <= high else None


def page_number_of(request: Request, signed_in: auth.SignedInStaff, text: str) -> int | Response:
    page = whole_number(text, low=1, high=LAST_ALLOWED_PAGE)
    if page is None:
        return problem_page(
            request,
            signed_in,
            title="No such page",
            text=f"The page number must be a whole number from 1 to {LAST_ALLOWED_PAGE:,}.",
            status_code=400,
        )
    return page


def paging(page: int, total: int) -> dict[str, Any]:
    last = max(1, -(-total // PAGE_SIZE))
    return {"page": page, "last_page": last, "total": total}


def offset_of(page: int) -> int:
    return (page - 1) * PAGE_SIZE
