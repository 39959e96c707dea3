"""What each staff role may open: the one table the console and the API both ask.

A staff member has one role:

- `admin` — everything;
- `analyst` — results and comments (overview, follow-ups, responses, metrics, strategies,
  segments, surveys), never a contact point: customers appear under a pseudonym;
- `agent` — the calls and cases of their queues, and the customers behind them; a contact point
  is shown only after a reason is given, and that is audited;
- `auditor` — the audit log and the consent ledger.

Every console page and every API route belongs to an *area*: the first part of its path after
`/console` or `/api/v1` (`cases`, `strategies`, …). The table says which roles may read an area
and which may change things in it. A role that may not gets 404 on a route that names one record
(`/cases/{case_id}`) — the answer a missing record gets, and the one an agent gets for a case of
another queue, so no kind of refusal says a record is there — and 403 on a list or a form. An
area missing from the table is open to admins alone, so a new page is closed until it is written
down here.

An API key issued for a staff member is held to that member's role as well as to its scopes; a
key issued for no one is held to its scopes alone (`scopes`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

ADMIN = "admin"
ANALYST = "analyst"
AGENT = "agent"
AUDITOR = "auditor"
ROLES = (ADMIN, ANALYST, AGENT, AUDITOR)
EVERYONE = frozenset(ROLES)

Access = Literal["allow", "forbid", "hide"]
T = TypeVar("T", bound=Any)
_READS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Area:
    read: frozenset[str]
    write: frozenset[str]
    what: str  # for the refusal's sentence: "the cases", "the audit log"


def _area(read: set[str], write: set[str], what: str) -> Area:
    return Area(frozenset(read | {ADMIN}), frozenset(write | {ADMIN}), what)


AREAS: dict[str, Area] = {
    # The console's own doors, and the overview's counts (no customer appears there).
    "": _area(set(EVERYONE), set(EVERYONE), "the overview"),
    "login": _area(set(EVERYONE), set(EVERYONE), "signing in"),
    "logout": _area(set(EVERYONE), set(EVERYONE), "signing out"),
    "logout-everywhere": _area(set(EVERYONE), set(EVERYONE), "signing out"),
    "two-factor": _area(set(EVERYONE), set(EVERYONE), "two-factor sign-in"),
    # Results: analysts read them, customers under a pseudonym.
    "followups": _area({ANALYST}, set(), "the follow-ups"),
    "responses": _area({ANALYST}, set(), "the responses"),
    "metrics": _area({ANALYST}, set(), "the metrics"),
    "strategies": _area({ANALYST}, {ANALYST}, "the strategies"),
    "segments": _area({ANALYST}, {ANALYST}, "the segments"),
    "surveys": _area({ANALYST}, set(), "the surveys"),
    # People's work: agents, within their queues (the cases and calls services narrow to them).
    "cases": _area({AGENT}, {AGENT}, "the cases"),
    "calls": _area({AGENT}, {AGENT}, "the call queue"),
    "customers": _area({AGENT}, set(), "the customers"),
    "interviews": _area({AGENT}, set(), "the interviews"),
    # Records of what was done, for the auditor.
    "audit": _area({AUDITOR}, set(), "the audit log"),
    # The privacy notices customers read: anyone may read them, admins alone publish one.
    "privacy": _area({ANALYST, AGENT, AUDITOR}, set(), "the privacy notices"),
    # Customers' data requests (erasures, exports): the auditor reads the queue, admins hold requests.
    "privacy-requests": _area({AUDITOR}, set(), "the customers' data requests"),
    # The rest is set-up, and stays with admins: outbox (addresses), channels, webhooks, staff, events.
}


def area_of(path: str) -> str:
    """The area of a path template relative to `/console` or `/api/v1`: `/cases/{case_id}` → `cases`.
    Customers' data requests are an area of their own within `privacy` (whose notices all may read)."""
    if path.strip("/").startswith("privacy/requests"):
        return "privacy-requests"
    first = path.strip("/").split("/", 1)[0]
    return first.split(".", 1)[0]  # `cases.csv` belongs with the cases


def access(role: str, method: str, path: str) -> Access:
    """May `role` make this request? `path` is the route's template relative to `/console` or
    `/api/v1` (`/cases/{case_id}`), so a refusal never depends on whether the record exists."""
    area = AREAS.get(area_of(path))
    allowed = (area is not None and role in (area.read if method.upper() in _READS else area.write)) or role == ADMIN
    if allowed:
        return "allow"
    return "hide" if "{" in path else "forbid"


def what(path: str) -> str:
    area = AREAS.get(area_of(path))
    return area.what if area else "this part of followup"


def sees_contacts(role: str | None) -> bool:
    """Whether a role is shown customers as they are (id, contact points), rather than a pseudonym.
    None stands for a caller outside any role: an API key issued for no staff member."""
    return role != ANALYST


PSEUDONYM_KEY_LABEL = "analyst-pseudonym/v1"


def pseudonym(key: bytes, customer_id: str) -> str:
    """The name an analyst sees a customer by: the same customer always gets the same one (so their
    answers can be followed across pages), and it cannot be turned back into the wallet's id."""
    digest = hmac.new(key, customer_id.encode(), hashlib.sha256).digest()
    return "p-" + base64.b32encode(digest[:10]).decode().lower()


def pseudonymise(items: list[T], role: str | None, key: bytes) -> list[T]:
    """The items (API models with a `customer_id`) as this role may see them: an analyst gets each
    customer's pseudonym in place of the wallet's id."""
    if sees_contacts(role):
        return items
    return [item.model_copy(update={"customer_id": pseudonym(key, item.customer_id)}) for item in items]
