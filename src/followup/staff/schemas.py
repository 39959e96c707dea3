from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from followup.kernel.schemas import Schema

Role = Literal["admin", "analyst", "agent", "auditor"]


class StaffInvite(Schema):
    email: str = Field(min_length=3, max_length=254)
    role: Role
    queues: list[str] = Field(default_factory=list, max_length=20, description="the queues an agent works")


class StaffUpdate(Schema):
    role: Role | None = None
    queues: list[str] | None = Field(default=None, max_length=20)
    disabled: bool | None = Field(default=None, description="true disables the account and ends its sessions")
    reset_password: bool = Field(default=False, description="true gives a new generated password, shown once")


class StaffOut(Schema):
    id: int
    email: str
    role: Role
    queues: list[str]
    created_at: dt.datetime
    disabled_at: dt.datetime | None


class StaffWithPassword(StaffOut):
    password: str | None = Field(description="the generated password, shown this once; null when unchanged")
