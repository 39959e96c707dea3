"""A customer's own part of their data rights: what the customers domain holds about them, and
erasing it (ADR 0024): identity and contact points gone, the data key destroyed, a tombstone kept."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy.orm import Session

from followup.customers.models import Customer, Tombstone
from followup.customers.repository import CustomerRepository
from followup.customers.sealing import forget_key, open_for_customer
from followup.kernel.crypto import DecryptionFailed, KeyProvider

# The blind index of an external id, as a tombstone keys it (a kind of its own: never an email's).
_EXTERNAL_ID = "external_id"


def external_index(keys: KeyProvider, external_id: str) -> str:
    return keys.blind_index(_EXTERNAL_ID, external_id)


def export_customer(session: Session, customer: Customer, *, keys: KeyProvider) -> dict[str, list[dict[str, Any]]]:
    """The profile and the contact points in clear (it is the customer's own copy)."""
    repo = CustomerRepository(session)
    points = []
    for point in repo.contact_points_of(customer.id):
        try:
            plain = open_for_customer(session, customer.id, point.value_sealed, keys=keys, purpose=point.kind)
        except DecryptionFailed:
            plain = None
        points.append(
            {
                "kind": point.kind,
                "label": point.label,
                "platform": point.platform,
                "value": None if plain is None else plain.decode(),
                "status": point.status,
                "created_at": point.created_at,
                "changed_at": point.changed_at,
            }
        )
    activity = repo.activity(customer.id)
    profile = {
        "customer_id": customer.external_id,
        "locale": customer.locale,
        "time_zone": customer.time_zone,
        "attributes": customer.attributes,
        "preferred_channel": customer.preferred_channel,
        "value_tier": customer.value_tier,
        "event_count": customer.event_count,
        "last_event_at": customer.last_event_at,
        "last_nps": None if activity is None else activity.last_nps,
        "last_followup_at": None if activity is None else activity.last_followup_at,
        "created_at": customer.created_at,
        "updated_at": customer.updated_at,
    }
    return {"profile": [profile], "contact_points": points}


def erase_customer(
    session: Session, customer: Customer, *, keys: KeyProvider, request_id: str, now: dt.datetime
) -> str:
    """Shred the customer's key, drop their identity and contact points, keep a tombstone of the
    external id; the row stays as `erased-…` for the history that counts on it. Returns the pseudonym."""
    repo = CustomerRepository(session)
    index = external_index(keys, customer.external_id)
    pseudonym = "erased-" + secrets.token_hex(12)
    customer_id = customer.id
    repo.erase(customer_id, pseudonym=pseudonym, now=now)
    forget_key(session, customer_id)
    if repo.tombstone(index) is None:
        repo.add(Tombstone(external_index=index, customer_id=customer_id, request_id=request_id, erased_at=now))
    session.flush()
    return pseudonym


def tombstone_of(session: Session, external_id: str, *, keys: KeyProvider) -> Tombstone | None:
    return CustomerRepository(session).tombstone(external_index(keys, external_id))


def erasures_to_reapply(session: Session, *, keys: KeyProvider) -> list[Tombstone]:
    """Tombstones whose customer holds the very identity that was erased: a database restored from a
    backup older than the erasure. A customer who got the same internal id afterwards (another
    person, after the restore) holds another external id and is left alone."""
    return [
        tombstone
        for tombstone, external_id in CustomerRepository(session).tombstones_to_reapply()
        if external_index(keys, external_id) == tombstone.external_index
    ]
