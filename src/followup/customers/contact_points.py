"""A customer's contact points: set by the wallet, read at send time, marked by providers.

Each is sealed under the customer's data key (its kind as the purpose) and findable by its blind
index only. The wallet sets the email and the phone with `PUT /customers/{id}` and each app
installation's device with `PUT /customers/{id}/devices/{device_id}`; a provider's word (a hard
bounce, an invalid number, an unregistered token) marks one, and the customer's `reach` bits
follow in the same transaction, so the policy refuses the channel as unreachable from then on.
A new value from the wallet makes a contact point valid again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from followup.customers.contacts import (
    ContactKind,
    ContactStatus,
    Platform,
    check_device_id,
    mask_email,
    mask_phone,
    mask_token,
    normalize_email,
    normalize_phone,
    normalize_push_token,
)
from followup.customers.models import ContactPoint, Customer
from followup.customers.repository import ContactPointRepository, CustomerRepository
from followup.customers.schemas import ContactPointOut
from followup.customers.sealing import open_for_customer, seal_for_customer
from followup.kernel.actors import SYSTEM, Actor
from followup.kernel.crypto import KeyProvider
from followup.kernel.errors import InvalidInput, NotFound
from followup.privacy import service as privacy

MAX_DEVICES = 10  # per customer: app installations the wallet keeps registered at once


class DeviceNotFound(NotFound):
    code = "device_not_found"


@dataclass(frozen=True)
class UsableContact:
    """A valid contact point in clear, read at send time only."""

    id: int
    value: str
    platform: str | None


def _normalize(kind: str, value: str, *, locale: str | None, platform: str | None = None) -> str:
    if kind == ContactKind.EMAIL:
        return normalize_email(value)
    if kind == ContactKind.PHONE:
        return normalize_phone(value, locale=locale)
    return normalize_push_token(value, platform=platform or "")


def _store(
    session: Session,
    customer: Customer,
    kind: str,
    label: str,
    normalized: str,
    *,
    platform: str | None,
    keys: KeyProvider,
    now: dt.datetime,
) -> bool:
    """Create or replace one contact point's value; True when it changed. An unchanged value keeps
    its status: a bounced address given again as it was is still bounced."""
    repo = ContactPointRepository(session)
    index = keys.blind_index(kind, normalized)
    point = repo.one(customer.id, kind, label)
    if point is not None and point.value_index == index and point.platform == platform:
        return False
    sealed = seal_for_customer(session, customer.id, normalized.encode(), keys=keys, now=now, purpose=kind)
    if point is None:
        point = ContactPoint(customer_id=customer.id, kind=kind, label=label, created_at=now)
        repo.add(point)
    point.platform, point.value_sealed, point.value_index = platform, sealed, index
    point.status, point.status_reason, point.changed_at = ContactStatus.VALID, None, now
    repo.refresh_reach(customer.id)
    return True


def set_contact(
    session: Session, customer: Customer, kind: str, value: str | None, *, keys: KeyProvider, now: dt.datetime
) -> bool:
    """Set (or, with None, remove) the customer's email or phone; True when it changed.
    InvalidInput (field: the kind) for a value that is not one."""
    repo = ContactPointRepository(session)
    if value is None:
        point = repo.one(customer.id, kind, "")
        if point is None:
            return False
        repo.delete(point)
        repo.refresh_reach(customer.id)
        return True
    try:
        normalized = _normalize(kind, value, locale=customer.locale)
    except ValueError as exc:
        raise InvalidInput(str(exc), field=kind) from exc
    return _store(session, customer, kind, "", normalized, platform=None, keys=keys, now=now)


def set_device(
    session: Session,
    customer: Customer,
    device_id: str,
    *,
    platform: str,
    token: str,
    keys: KeyProvider,
    now: dt.datetime,
) -> tuple[ContactPoint, bool]:
    """Register (or re-register) one app installation's push token; the point and whether it was
    new. InvalidInput for a bad device id, platform or token."""
    try:
        check_device_id(device_id)
    except ValueError as exc:
        raise InvalidInput(f"device_id: {exc}.", field="device_id") from exc
    if platform not in {item.value for item in Platform}:
        raise InvalidInput("platform: must be 'android' or 'ios'.", field="platform")
    try:
        normalized = normalize_push_token(token, platform=platform)
    except ValueError as exc:
        raise InvalidInput(f"token: {exc}.", field="token") from exc
    repo = ContactPointRepository(session)
    existing = repo.one(customer.id, ContactKind.PUSH_DEVICE, device_id)
    if existing is None and len(repo.of_customer(customer.id, ContactKind.PUSH_DEVICE)) >= MAX_DEVICES:
        raise InvalidInput(
            f"device_id: the customer already has {MAX_DEVICES} devices; delete one the customer no longer uses.",
            code="limit_exceeded",
            field="device_id",
        )
    _store(session, customer, ContactKind.PUSH_DEVICE, device_id, normalized, platform=platform, keys=keys, now=now)
    point = repo.one(customer.id, ContactKind.PUSH_DEVICE, device_id)
    assert point is not None  # noqa: S101 - stored just above
    return point, existing is None


def remove_device(session: Session, customer: Customer, device_id: str) -> None:
    repo = ContactPointRepository(session)
    point = repo.one(customer.id, ContactKind.PUSH_DEVICE, device_id)
    if point is None:
        raise DeviceNotFound(f"Customer '{customer.external_id}' has no device '{device_id}'.", field="device_id")
    repo.delete(point)
    repo.refresh_reach(customer.id)


def usable_contact(session: Session, customer_id: int, kind: str, *, keys: KeyProvider) -> UsableContact | None:
    """The customer's valid contact point of this kind in clear (the newest, for devices); None when
    they hold none, or when their key was destroyed."""
    for point in ContactPointRepository(session).of_customer(customer_id, kind):
        if point.status != ContactStatus.VALID:
            continue
        plain = open_for_customer(session, customer_id, point.value_sealed, keys=keys, purpose=kind)
        return None if plain is None else UsableContact(point.id, plain.decode(), point.platform)
    return None


def usable_contacts(
    session: Session, wanted: Iterable[tuple[int, str]], *, keys: KeyProvider
) -> dict[tuple[int, str], UsableContact]:
    """`usable_contact` for many (customer, kind) pairs at once: one query for all their points.
    A pair missing from the answer has no usable point."""
    wanted = set(wanted)
    points = ContactPointRepository(session).of_customers({customer_id for customer_id, _ in wanted})
    out: dict[tuple[int, str], UsableContact] = {}
    for point in points:  # newest first within each customer and kind
        pair = (point.customer_id, point.kind)
        if pair not in wanted or pair in out or point.status != ContactStatus.VALID:
            continue
        plain = open_for_customer(session, point.customer_id, point.value_sealed, keys=keys, purpose=point.kind)
        if plain is not None:
            out[pair] = UsableContact(point.id, plain.decode(), point.platform)
        wanted.discard(pair)  # the newest valid point decides, readable or not
    return out


def points_of(session: Session, customer_id: int, *, kind: str | None = None) -> list[ContactPoint]:
    """The customer's contact points (of one kind), newest first within a kind; values sealed."""
    return ContactPointRepository(session).of_customer(customer_id, kind)


def mark_contact(
    session: Session,
    point_id: int,
    status: ContactStatus,
    *,
    reason: str,
    now: dt.datetime,
    actor: Actor = SYSTEM,
    detail: Mapping[str, Any] | None = None,
) -> bool:
    """A provider says the contact point is dead (or a customer's new value revived it); True when
    its status changed. The customer's reach follows, and the change is audited (the point's id
    and statuses, never its value)."""
    repo = ContactPointRepository(session)
    point = repo.get(point_id)
    if point is None or point.status == status:
        return False
    old = point.status
    point.status, point.status_reason, point.changed_at = status, reason[:64], now
    repo.refresh_reach(point.customer_id)
    privacy.record_audit(
        session,
        actor=actor,
        subject_type="customer",
        subject_id=str(point.customer_id),
        event="contact.validated" if status == ContactStatus.VALID else "contact.invalidated",
        now=now,
        old={"kind": point.kind, "contact_id": point.id, "status": str(old)},
        new={
            "kind": point.kind,
            "contact_id": point.id,
            "status": str(status),
            "reason": reason[:64],
            **(detail or {}),
        },
    )
    return True


def mark_by_value(
    session: Session, kind: str, value: str, status: ContactStatus, *, reason: str, keys: KeyProvider, now: dt.datetime
) -> int:
    """Mark every contact point holding this value (a bounce names an address, not a customer);
    returns how many changed. A value that does not parse marks nothing."""
    try:
        normalized = _normalize(kind, value, locale=None)
    except ValueError:
        return 0
    points = ContactPointRepository(session).by_index(kind, keys.blind_index(kind, normalized))
    return sum(mark_contact(session, point.id, status, reason=reason, now=now) for point in points)


def customer_by_contact(session: Session, kind: str, value: str, *, keys: KeyProvider) -> Customer | None:
    """The customer holding this email or phone, by its blind index; None for a value that does
    not parse or that no customer holds."""
    try:
        normalized = _normalize(kind, value, locale=None)
    except ValueError:
        return None
    return CustomerRepository(session).by_contact_index(kind, keys.blind_index(kind, normalized))


def describe_contacts(session: Session, customer_id: int, *, keys: KeyProvider) -> list[ContactPointOut]:
    """The customer's contact points as staff and the wallet see them: masked, with their status."""
    out = []
    for point in ContactPointRepository(session).of_customer(customer_id):
        plain = open_for_customer(session, customer_id, point.value_sealed, keys=keys, purpose=point.kind)
        out.append(
            ContactPointOut(
                kind=point.kind,
                device_id=point.label or None,
                platform=point.platform,
                value=None if plain is None else mask_value(point.kind, plain.decode()),
                status=point.status,
                status_reason=point.status_reason,
                changed_at=point.changed_at,
            )
        )
    return out


def mask_value(kind: str, value: str) -> str:
    if kind == ContactKind.EMAIL:
        return mask_email(value)
    if kind == ContactKind.PHONE:
        return mask_phone(value)
    return mask_token(value)
