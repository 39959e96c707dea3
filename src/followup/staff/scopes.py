"""What an API key may do: its scopes, and the one table that says which scope each route needs.

A key holds one or more scopes; `admin` holds them all. Every API route needs exactly one scope,
found here from its method and path template, so no endpoint declares its own and none is
forgotten: the call queue, reads included, needs `calls` (and a key issued for a staff member,
checked in `auth`); reading anything else needs `read`; reporting what happened in the wallet
needs `events:write`; changing customers (profiles, consents, devices) needs `customers:write`;
working cases (every POST under /cases/: assigning, notes, replies, resolving, reopening,
closing) needs `cases`; everything else — strategies, segments, surveys, webhooks, staff — needs
`admin`.
"""

from __future__ import annotations

from collections.abc import Iterable

ADMIN = "admin"
READ = "read"
EVENTS_WRITE = "events:write"
CUSTOMERS_WRITE = "customers:write"
CALLS = "calls"
CASES = "cases"
SCOPES = (ADMIN, READ, EVENTS_WRITE, CUSTOMERS_WRITE, CALLS, CASES)

# Writes the wallet's systems make as things happen: events, and the app's reports of opens and reads.
_EVENT_WRITES = ("/events", "/messages/{message_id}/opened", "/customers/{customer_id}/inbox/{item_id}/read")
_READS = frozenset({"GET", "HEAD"})
# Reads that hand over a customer's data in clear: for the wallet's app acting for the customer,
# not for a key that reads figures.
_PERSONAL_READS = frozenset({"/customers/{customer_id}/export"})


def required_scope(method: str, path: str) -> str:
    """The scope a request needs, from its method and its route's path template under /api/v1
    (e.g. `/customers/{customer_id}`)."""
    if path == "/calls" or path.startswith("/calls/"):
        return CALLS
    if path in _PERSONAL_READS:
        return CUSTOMERS_WRITE
    if method.upper() in _READS:
        return READ
    if path.startswith("/cases/"):
        return CASES
    if path in _EVENT_WRITES:
        return EVENTS_WRITE
    if path == "/customers" or path.startswith("/customers/"):
        return CUSTOMERS_WRITE
    return ADMIN


def allows(held: Iterable[str], needed: str) -> bool:
    held = set(held)
    return ADMIN in held or needed in held


def parse(text: str) -> list[str]:
    """The scopes stored on a key (space-separated)."""
    return [scope for scope in text.split() if scope]


def check(scopes: Iterable[str]) -> list[str]:
    """The scopes asked for a new key, in a stable order; ValueError naming one that does not exist."""
    chosen = []
    for asked in scopes:
        scope = asked.strip()
        if scope not in SCOPES:
            raise ValueError(f"'{scope}' is not a scope; choose from {', '.join(SCOPES)}")
        if scope not in chosen:
            chosen.append(scope)
    return sorted(chosen, key=SCOPES.index) or [ADMIN]
