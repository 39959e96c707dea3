"""Staff accounts and API keys."""

from __future__ import annotations

import datetime as dt
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy.orm import Session

from followup.kernel.actors import Actor
from followup.kernel.crypto import hash_token
from followup.kernel.errors import Conflict, InvalidInput, Unauthorized
from followup.staff.models import ApiKey, StaffMember
from followup.staff.repository import StaffRepository

_hasher = PasswordHasher()
KEY_PREFIX = "fu_"
ROLES = ("admin", "analyst", "agent", "auditor")


def create_api_key(session: Session, *, name: str, now: dt.datetime) -> tuple[ApiKey, str]:
    """A new key; the clear key is returned once and never stored."""
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput("the key name must be 1 to 100 characters", field="name")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, prefix=key[:10], key_hash=hash_token(key), created_at=now)
    StaffRepository(session).add(row)
    session.flush()
    return row, key


def authenticate_api_key(session: Session, authorization: str | None) -> Actor:
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":  # the scheme is case-insensitive (RFC 9110 §11.1)
        raise Unauthorized(
            "Send your API key as 'Authorization: Bearer <key>'. Create one with `followup apikey create --name NAME`.",
            code="missing_api_key",
        )
    key = key.strip()
    row = StaffRepository(session).api_key_by_hash(hash_token(key))
    if row is None or row.revoked_at is not None:
        raise Unauthorized("This API key is not valid or was revoked.", code="invalid_api_key")
    return Actor(kind="api_key", id=str(row.id), label=row.name)


def create_staff(session: Session, *, email: str, role: str, now: dt.datetime) -> tuple[StaffMember, str]:
    """A staff account with a generated password, returned once in clear."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise InvalidInput("give a valid email address for the staff account", field="email")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
    if StaffRepository(session).staff_by_email(email) is not None:
        raise Conflict(f"A staff account for {email} already exists.", code="staff_exists", field="email")
    password = secrets.token_urlsafe(12)
    member = StaffMember(email=email, password_hash=_hasher.hash(password), role=role, created_at=now)
    StaffRepository(session).add(member)
    session.flush()
    return member, password


def authenticate_staff(session: Session, *, email: str, password: str) -> StaffMember:
    member = StaffRepository(session).staff_by_email(email.strip().lower())
    try:
        if member is None or member.disabled_at is not None:
            _hasher.verify(_hasher.hash("timing-equaliser"), password + "x")
            raise VerificationError
        _hasher.verify(member.password_hash, password)
    except VerificationError as exc:
        raise Unauthorized("Wrong email or password.", code="invalid_login") from exc
    return member


def get_active_staff(session: Session, staff_id: int) -> StaffMember | None:
    """The staff member behind a console session, or None once the account is gone or disabled."""
    member = StaffRepository(session).get_staff(staff_id)
    return member if member is not None and member.disabled_at is None else None
