"""The auditor's API: the audit log and the consent ledger, newest first, paged like every list.
Here, above `customers`, because the ledger names customers by the wallet's id."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query

from followup.customers import service as customers
from followup.kernel.http import ReadSession
from followup.kernel.openapi import may_answer
from followup.kernel.pagination import Limit, Offset
from followup.kernel.schemas import Page, Schema
from followup.privacy import service as privacy
from followup.staff.auth import ApiActor

router = APIRouter(tags=["audit"])


class AuditEntryOut(Schema):
    id: int
    at: dt.datetime
    actor: str
    subject_type: str
    subject_id: str
    event: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None


class ConsentRecordOut(Schema):
    id: int
    recorded_at: dt.datetime
    customer_id: str
    purpose: str
    channel: str
    granted: bool
    source: str
    notice_version: str
    notice_hash: str | None
    actor: str


@router.get("/audit", response_model=Page[AuditEntryOut], responses=may_answer())
def list_audit(
    session: ReadSession,
    actor: ApiActor,
    subject_type: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z_]{1,32}$")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[AuditEntryOut]:
    rows, total = privacy.audit_page(session, subject_type=subject_type, limit=limit, offset=offset)
    items = [
        AuditEntryOut(
            id=row.id,
            at=row.at,
            actor=row.actor,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            event=row.event,
            old=row.old,
            new=row.new,
        )
        for row in rows
    ]
    return Page[AuditEntryOut](items=items, total=total)


@router.get("/audit/consents", response_model=Page[ConsentRecordOut], responses=may_answer(404))
def list_consent_ledger(
    session: ReadSession,
    actor: ApiActor,
    customer_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ConsentRecordOut]:
    internal = customers.access_customer(session, customer_id).id if customer_id else None
    rows, total = privacy.consent_ledger_page(session, customer_id=internal, limit=limit, offset=offset)
    names = customers.external_ids(session, {row.customer_id for row in rows})
    items = [
        ConsentRecordOut(
            id=row.id,
            recorded_at=row.recorded_at,
            customer_id=names.get(row.customer_id, ""),
            purpose=row.purpose,
            channel=row.channel,
            granted=row.granted,
            source=row.source,
            notice_version=row.notice_version,
            notice_hash=row.notice_hash,
            actor=row.actor,
        )
        for row in rows
    ]
    return Page[ConsentRecordOut](items=items, total=total)
