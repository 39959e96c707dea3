"""Managing staff accounts, from the CLI and the API alike, each change written to the audit log.

The accounts live in `staff`, low in the layers; the audit log in `privacy`, above it. Changing an
account and auditing the change in one transaction happens here, above both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Path
from sqlalchemy.orm import Session

from followup.kernel.actors import Actor
from followup.kernel.crypto import KeyProvider
from followup.kernel.http import Now, ReadSession, WriteSession
from followup.kernel.openapi import may_answer
from followup.kernel.pagination import Limit, Offset
from followup.kernel.schemas import Page
from followup.privacy import service as privacy
from followup.staff import service as staff
from followup.staff.auth import ApiActor
from followup.staff.models import StaffMember
from followup.staff.schemas import StaffInvite, StaffOut, StaffUpdate, StaffWithPassword

router = APIRouter(tags=["staff"])


def describe(member: StaffMember, *, password: str | None = None) -> StaffWithPassword:
    return StaffWithPassword(
        id=member.id,
        email=member.email,
        role=member.role,
        queues=member.queues.split(),
        created_at=member.created_at,
        disabled_at=member.disabled_at,
        password=password,
    )


def _audit(
    session: Session, member: StaffMember, event: str, *, actor: Actor, now: dt.datetime, **change: object
) -> None:
    privacy.record_audit(
        session, actor=actor, subject_type="staff", subject_id=member.email, event=event, now=now, new=change
    )


def invite(
    session: Session, *, email: str, role: str, queues: list[str], actor: Actor, now: dt.datetime
) -> StaffWithPassword:
    """A new account with a generated password, returned this once."""
    member, password = staff.create_staff(session, email=email, role=role, queues=queues, now=now)
    _audit(session, member, "staff.invited", actor=actor, now=now, role=member.role, queues=member.queues.split())
    return describe(member, password=password)


def update(
    session: Session, member: StaffMember, change: StaffUpdate, *, actor: Actor, now: dt.datetime
) -> StaffWithPassword:
    """Role, queues, enabled or not, a new password: each change audited, the password shown once."""
    if change.role is not None and change.role != member.role:
        old = member.role
        member.role = staff.check_role(change.role)
        _audit(session, member, "staff.role_changed", actor=actor, now=now, old=old, role=member.role)
    if change.queues is not None:
        queues = " ".join(staff.check_queues(change.queues))
        if queues != member.queues:
            old = member.queues
            member.queues = queues
            _audit(
                session, member, "staff.queues_changed", actor=actor, now=now, old=old.split(), queues=queues.split()
            )
    if change.disabled is True and member.disabled_at is None:
        staff.disable_staff(session, member, now=now)
        _audit(session, member, "staff.disabled", actor=actor, now=now)
    elif change.disabled is False and member.disabled_at is not None:
        staff.enable_staff(session, member)
        _audit(session, member, "staff.enabled", actor=actor, now=now)
    password = None
    if change.reset_password:
        password = staff.set_staff_password(session, member)
        _audit(session, member, "staff.password_reset", actor=actor, now=now)
    session.flush()
    return describe(member, password=password)


def reset_two_factor(session: Session, member: StaffMember, *, actor: Actor, now: dt.datetime) -> None:
    """Two-factor off for a member who lost their phone; their sessions end, and they set it up
    again at their next sign-in."""
    staff.reset_two_factor(session, member)
    _audit(session, member, "staff.two_factor_reset", actor=actor, now=now)


def confirm_two_factor(
    session: Session, member: StaffMember, code: str, *, actor: Actor, keys: KeyProvider, now: dt.datetime
) -> bool:
    """Two-factor on, by the member themselves, once their app shows the right code (audited)."""
    if not staff.confirm_two_factor(session, member, code, keys=keys, now=now):
        return False
    _audit(session, member, "staff.two_factor_enabled", actor=actor, now=now)
    return True


def issue_api_key(
    session: Session, *, name: str, scopes: Iterable[str], staff_email: str | None, actor: Actor, now: dt.datetime
) -> str:
    """A new API key, returned this once; the audit line names it by name and prefix (never the key)."""
    row, key = staff.create_api_key(session, name=name, now=now, scopes=scopes, staff_email=staff_email)
    privacy.record_audit(
        session,
        actor=actor,
        subject_type="api_key",
        subject_id=row.name,
        event="api_key.created",
        now=now,
        new={"prefix": row.prefix, "scopes": row.scopes.split(), "staff": staff_email},
    )
    return key


def revoke_api_keys(session: Session, name: str, *, actor: Actor, now: dt.datetime) -> int:
    """Revoke the active keys with this name (audited); how many."""
    count = staff.revoke_api_key(session, name, now=now)
    privacy.record_audit(
        session,
        actor=actor,
        subject_type="api_key",
        subject_id=name.strip(),
        event="api_key.revoked",
        now=now,
        old={"active": count},
        new={"active": 0},
    )
    return count


StaffId = Annotated[int, Path(ge=1, le=2**62)]


@router.post("/staff", response_model=StaffWithPassword, status_code=201, responses=may_answer(409))
def create_staff_member(body: StaffInvite, session: WriteSession, actor: ApiActor, now: Now) -> StaffWithPassword:
    return invite(session, email=body.email, role=body.role, queues=body.queues, actor=actor, now=now)


@router.get("/staff", response_model=Page[StaffOut])
def list_staff_members(session: ReadSession, actor: ApiActor, limit: Limit = 50, offset: Offset = 0) -> Page[StaffOut]:
    rows, total = staff.list_staff(session, limit=limit, offset=offset)
    return Page[StaffOut](
        items=[StaffOut(**describe(row).model_dump(exclude={"password"})) for row in rows], total=total
    )


@router.patch("/staff/{staff_id}", response_model=StaffWithPassword, responses=may_answer(404))
def update_staff_member(
    staff_id: StaffId, body: StaffUpdate, session: WriteSession, actor: ApiActor, now: Now
) -> StaffWithPassword:
    return update(session, staff.access_staff(session, staff_id), body, actor=actor, now=now)
