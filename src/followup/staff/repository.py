from __future__ import annotations

import datetime as dt

from sqlalchemy import Insert, case, delete, func, or_, select, update
from sqlalchemy.orm import Session

from followup.staff.models import ApiKey, ConsoleSession, SignInThrottle, StaffMember


class StaffRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        return self.session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).one_or_none()

    def active_api_keys_named(self, name: str) -> list[ApiKey]:
        return list(self.session.scalars(select(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None))))

    def api_keys(self) -> list[ApiKey]:
        order = (ApiKey.revoked_at.is_not(None), ApiKey.name, ApiKey.id)  # active keys first
        return list(self.session.scalars(select(ApiKey).order_by(*order)))

    def staff_emails(self) -> dict[int, str]:
        return {row.id: row.email for row in self.session.execute(select(StaffMember.id, StaffMember.email))}

    def touch_api_key(self, key_id: int, *, now: dt.datetime, unless_since: dt.datetime) -> None:
        self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < unless_since))
            .values(last_used_at=now)
        )

    def staff_by_id(self, staff_id: int) -> StaffMember | None:
        return self.session.get(StaffMember, staff_id)

    def staff_page(self, *, limit: int, offset: int) -> tuple[list[StaffMember], int]:
        total = self.session.scalar(select(func.count()).select_from(StaffMember)) or 0
        rows = self.session.scalars(select(StaffMember).order_by(StaffMember.id).limit(limit).offset(offset))
        return list(rows), total

    def enabled_with_role(self, role: str) -> list[StaffMember]:
        query = select(StaffMember).where(StaffMember.role == role, StaffMember.disabled_at.is_(None))
        return list(self.session.scalars(query.order_by(StaffMember.id)))

    def staff_by_email(self, email: str) -> StaffMember | None:
        return self.session.scalars(select(StaffMember).where(StaffMember.email == email)).one_or_none()

    def get_staff(self, staff_id: int) -> StaffMember | None:
        return self.session.get(StaffMember, staff_id)

    def add(self, row: ApiKey | StaffMember | ConsoleSession) -> None:
        self.session.add(row)

    # Console sessions

    def active_session_staff(self, token_hash: str, *, now: dt.datetime) -> StaffMember | None:
        """The enabled staff member behind an unexpired session, in one query."""
        query = (
            select(StaffMember)
            .join(ConsoleSession, ConsoleSession.staff_id == StaffMember.id)
            .where(
                ConsoleSession.token_hash == token_hash,
                ConsoleSession.expires_at > now,
                StaffMember.disabled_at.is_(None),
            )
        )
        return self.session.scalars(query).one_or_none()

    def delete_session(self, token_hash: str) -> int:
        result = self.session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == token_hash))
        return int(result.rowcount)  # type: ignore[attr-defined]

    def delete_sessions_of(self, staff_id: int) -> int:
        result = self.session.execute(delete(ConsoleSession).where(ConsoleSession.staff_id == staff_id))
        return int(result.rowcount)  # type: ignore[attr-defined]

    def delete_expired_sessions(self, *, now: dt.datetime) -> None:
        self.session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))

    # Sign-in throttling

    def latest_lock(self, keys: list[tuple[str, str]], *, now: dt.datetime) -> dt.datetime | None:
        """The furthest `locked_until` still in the future among these (scope, key hash) pairs."""
        found: dt.datetime | None = None
        for scope, key_hash in keys:
            until = self.session.scalars(
                select(SignInThrottle.locked_until).where(
                    SignInThrottle.scope == scope,
                    SignInThrottle.key_hash == key_hash,
                    SignInThrottle.locked_until > now,
                )
            ).one_or_none()
            if until is not None and (found is None or until > found):
                found = until
        return found

    def count_failure(self, scope: str, key_hash: str, *, now: dt.datetime, forget_before: dt.datetime) -> int:
        """Add one failure and return the count; a count whose last failure is older than
        `forget_before` starts again at one. One atomic upsert, so concurrent servers never lose a count."""
        restarted = case((SignInThrottle.last_failure_at < forget_before, 1), else_=SignInThrottle.failures + 1)
        values = {"scope": scope, "key_hash": key_hash, "failures": 1, "last_failure_at": now}
        changes = {"failures": restarted, "last_failure_at": now}
        statement: Insert
        if self.session.get_bind().dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert  # noqa: PLC0415

            upsert = pg_insert(SignInThrottle).values(values)
            statement = upsert.on_conflict_do_update(index_elements=["scope", "key_hash"], set_=changes)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert  # noqa: PLC0415

            lite = sqlite_insert(SignInThrottle).values(values)
            statement = lite.on_conflict_do_update(index_elements=["scope", "key_hash"], set_=changes)
        return int(self.session.execute(statement.returning(SignInThrottle.failures)).scalar_one())

    def lock(self, scope: str, key_hash: str, *, until: dt.datetime) -> None:
        self.session.execute(
            update(SignInThrottle)
            .where(SignInThrottle.scope == scope, SignInThrottle.key_hash == key_hash)
            .values(locked_until=until)
        )

    def clear_failures(self, scope: str, key_hash: str) -> None:
        self.session.execute(
            delete(SignInThrottle).where(SignInThrottle.scope == scope, SignInThrottle.key_hash == key_hash)
        )
