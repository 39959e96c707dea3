from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from followup.staff.models import ApiKey, StaffMember


class StaffRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        return self.session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).one_or_none()

    def staff_by_email(self, email: str) -> StaffMember | None:
        return self.session.scalars(select(StaffMember).where(StaffMember.email == email)).one_or_none()

    def get_staff(self, staff_id: int) -> StaffMember | None:
        return self.session.get(StaffMember, staff_id)

    def add(self, row: ApiKey | StaffMember) -> None:
        self.session.add(row)
