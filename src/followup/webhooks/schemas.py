from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from followup.kernel.schemas import Schema

EventType = Literal[
    "response.created",
    "case.opened",
    "case.updated",
    "case.resolved",
    "security.concern",
    "reward.granted",
    "consent.changed",
]
DeliveryStatus = Literal["pending", "delivering", "delivered", "failed"]


class WebhookCreate(Schema):
    url: str = Field(min_length=8, max_length=2000, description="where to POST, http(s) only")
    events: list[EventType] = Field(min_length=1, max_length=20, description="the event types it wants")
    description: str = Field(default="", max_length=500)


class WebhookUpdate(Schema):
    url: str | None = Field(default=None, min_length=8, max_length=2000)
    events: list[EventType] | None = Field(default=None, min_length=1, max_length=20)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = Field(default=None, description="false disables it; true enables it again")


class WebhookOut(Schema):
    id: int
    url: str
    events: list[str]
    description: str
    enabled: bool
    created_at: dt.datetime
    disabled_at: dt.datetime | None
    disabled_reason: str | None


class WebhookCreated(WebhookOut):
    secret: str = Field(description="the whsec_ secret that signs every delivery; shown this once")


class DeliveryOut(Schema):
    id: int
    webhook_id: int
    message_id: str
    type: str
    status: DeliveryStatus
    attempts: int
    created_at: dt.datetime
    next_at: dt.datetime | None
    delivered_at: dt.datetime | None
    last_status: int | None
    last_latency_ms: int | None
    last_error: str | None
    last_response: str | None
    replay_of: int | None


class DeliveryQueued(Schema):
    delivery_id: int
