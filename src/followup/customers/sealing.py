"""Sealing under a customer's own data key: what makes their personal data shreddable.

Each customer has a data key, wrapped by the master key (`customer_keys`); deleting that row makes
everything sealed under it unreadable. Keys are unwrapped once per transaction. Each row records
the master key version it is wrapped under, so it unwraps whichever version it is (ADR 0025).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy.orm import Session

from followup.customers.models import CustomerKey
from followup.customers.repository import CustomerRepository
from followup.kernel.crypto import KeyProvider, new_data_key, open_sealed, seal

_DEK_CACHE = "followup.customer_deks"


def data_key_context(customer_id: int) -> bytes:
    """What binds a wrapped data key to its customer: a row copied onto another customer fails to unwrap."""
    return f"customer:{customer_id}".encode()


def _unwrap(keys: KeyProvider, row: CustomerKey) -> bytes:
    return keys.unwrap_data_key(row.wrapped_key, version=row.key_version, context=data_key_context(row.customer_id))


def _data_key(session: Session, customer_id: int, *, keys: KeyProvider, now: dt.datetime, create: bool) -> bytes | None:
    """The customer's unwrapped data key, cached for the life of the session's transaction."""
    cache: dict[int, bytes] = session.info.setdefault(_DEK_CACHE, {})
    if customer_id in cache:
        return cache[customer_id]
    repo = CustomerRepository(session)
    row = repo.get_key(customer_id)
    if row is None:
        if not create:
            return None
        data_key = new_data_key()
        version, wrapped = keys.wrap_data_key(data_key, context=data_key_context(customer_id))
        repo.add(CustomerKey(customer_id=customer_id, wrapped_key=wrapped, key_version=version, created_at=now))
        session.flush()
    else:
        data_key = _unwrap(keys, row)
    cache[customer_id] = data_key
    return data_key


def load_keys(session: Session, customer_ids: Iterable[int], *, keys: KeyProvider) -> None:
    """Unwrap the data keys of many customers with one query, for a transaction that is about to
    seal or open something for each of them. A customer without a key gets one when first sealed."""
    cache: dict[int, bytes] = session.info.setdefault(_DEK_CACHE, {})
    missing = [customer_id for customer_id in set(customer_ids) if customer_id not in cache]
    for row in CustomerRepository(session).keys_of(missing):
        cache[row.customer_id] = _unwrap(keys, row)


def seal_for_customer(
    session: Session, customer_id: int, plaintext: bytes, *, keys: KeyProvider, now: dt.datetime, purpose: str
) -> bytes:
    data_key = _data_key(session, customer_id, keys=keys, now=now, create=True)
    assert data_key is not None  # noqa: S101 - create=True always returns a key
    return seal(data_key, plaintext, aad=purpose.encode())


def open_for_customer(
    session: Session, customer_id: int, sealed: bytes, *, keys: KeyProvider, purpose: str
) -> bytes | None:
    """The plaintext, or None when the customer's key was destroyed (erased customer)."""
    data_key = _data_key(session, customer_id, keys=keys, now=dt.datetime.now(dt.UTC), create=False)
    if data_key is None:
        return None
    return open_sealed(data_key, sealed, aad=purpose.encode())


def forget_key(session: Session, customer_id: int) -> None:
    """Drop the customer's unwrapped key from this transaction's cache (their key was destroyed)."""
    session.info.get(_DEK_CACHE, {}).pop(customer_id, None)
