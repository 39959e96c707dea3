from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from followup.kernel.schemas import Schema

CaseKind = Literal["detractor", "security", "complaint"]
CasePriority = Literal["security", "high", "normal"]
CaseStatus = Literal["open", "closed"]


class CaseClose(Schema):
    resolution: str = Field(min_length=1, max_length=2000, description="what was done, for the record")


class CaseOut(Schema):
    id: int
    customer_id: str
    followup_id: int | None
    response_id: int | None
    kind: CaseKind
    priority: CasePriority
    status: CaseStatus
    summary: str
    opened_at: dt.datetime
    due_at: dt.datetime
    closed_at: dt.datetime | None
