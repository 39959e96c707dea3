"""A customer's rights over their data: view, export and erase, across every domain (ADR 0024).

Each domain holding something about a customer has an `erasure` module with its `export_customer`
and, where it holds anything personal, its `erase_customer`; this is the one place that calls them
all. An erasure is a request first: due at now plus FOLLOWUP_ERASURE_GRACE, carried out by the
worker, overdue past FOLLOWUP_ERASURE_DAYS; an operator may hold it with a reason.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import secrets
import zipfile
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from followup.calls import erasure as calls
from followup.cases import erasure as cases
from followup.channels import erasure as inbox
from followup.config import Settings
from followup.customers import erasure as customer_data
from followup.customers import service as customers
from followup.data_rights.models import DataRequest
from followup.data_rights.repository import OPEN, DataRequestRepository
from followup.data_rights.schemas import DataRequestOut
from followup.dispatch import erasure as messages
from followup.events import erasure as events
from followup.followups import erasure as followups
from followup.kernel.actors import SYSTEM, Actor
from followup.kernel.crypto import KeyProvider
from followup.kernel.errors import Conflict, InvalidInput, NotFound
from followup.kernel.logging import get_logger
from followup.privacy import erasure as consents
from followup.privacy import service as privacy
from followup.rewards import erasure as rewards
from followup.surveys import erasure as answers
from followup.webhooks import erasure as webhooks

log = get_logger(__name__)

_REASON_PURPOSE = "privacy-request-reason"


class RequestNotFound(NotFound):
    code = "request_not_found"


class RequestDone(Conflict):
    code = "request_done"


class HoldNeedsReason(InvalidInput):
    code = "reason_required"


def _new_request_id() -> str:
    return "pr_" + secrets.token_hex(8)


def request_erasure(
    session: Session,
    external_id: str,
    *,
    reason: str | None,
    source: str,
    actor: Actor,
    settings: Settings,
    keys: KeyProvider,
    now: dt.datetime,
) -> DataRequest:
    """Record a request to erase the customer, due after the grace period. While one is pending or
    held, asking again returns that one."""
    customer = customers.access_customer(session, external_id)
    repo = DataRequestRepository(session)
    existing = repo.open_erasure(customer.id)
    if existing is not None:
        return existing
    row = DataRequest(
        request_id=_new_request_id(),
        customer_id=customer.id,
        kind="erasure",
        status="pending",
        source=source,
        reason_sealed=None
        if not reason
        else customers.seal_for_customer(
            session, customer.id, reason.encode(), keys=keys, now=now, purpose=_REASON_PURPOSE
        ),
        actor=str(actor),
        requested_at=now,
        due_at=now + settings.erasure_grace,
        deadline_at=now + dt.timedelta(days=settings.erasure_days),
    )
    try:
        with session.begin_nested():  # two requests at once: the unique index lets one through
            repo.add(row)
            session.flush()
    except IntegrityError:
        existing = repo.open_erasure(customer.id)
        if existing is None:
            raise
        return existing
    privacy.record_audit(
        session,
        actor=actor,
        subject_type="customer",
        subject_id=str(customer.id),
        event="privacy.erasure_requested",
        now=now,
        new={"request_id": row.request_id, "source": source, "due_at": row.due_at.isoformat()},
    )
    return row


def access_request(session: Session, request_id: str, *, lock: bool = False) -> DataRequest:
    row = DataRequestRepository(session).by_request_id(request_id, lock=lock)
    if row is None:
        raise RequestNotFound(f"No privacy request '{request_id}'.", field="request_id")
    return row


def hold(session: Session, request_id: str, *, reason: str, actor: Actor, now: dt.datetime) -> DataRequest:
    """Keep a request from being carried out (a legal hold, an open dispute) until released. Its
    deadline stands: a held request past it shows as overdue."""
    row = access_request(session, request_id, lock=True)
    if row.status == "done":
        raise RequestDone(f"Request {request_id} is done already; there is nothing left to hold.")
    old = {"status": row.status, "hold_reason": row.hold_reason}
    row.status, row.hold_reason, row.held_by = "held", reason, str(actor)
    privacy.record_audit(
        session,
        actor=actor,
        subject_type="privacy_request",
        subject_id=row.request_id,
        event="privacy.request_held",
        now=now,
        old=old,
        new={"status": "held", "hold_reason": reason},
    )
    session.flush()
    return row


def release(session: Session, request_id: str, *, actor: Actor, now: dt.datetime) -> DataRequest:
    """Let a held request go on: the worker carries it out at its next round once due."""
    row = access_request(session, request_id, lock=True)
    if row.status == "done":
        raise RequestDone(f"Request {request_id} is done already.")
    if row.status == "held":
        privacy.record_audit(
            session,
            actor=actor,
            subject_type="privacy_request",
            subject_id=row.request_id,
            event="privacy.request_released",
            now=now,
            old={"status": "held", "hold_reason": row.hold_reason},
            new={"status": "pending"},
        )
        row.status = "pending"
    session.flush()
    return row


def describe(session: Session, rows: list[DataRequest], *, now: dt.datetime) -> list[DataRequestOut]:
    external = customers.external_ids(session, {row.customer_id for row in rows})
    return [
        DataRequestOut(
            request_id=row.request_id,
            customer_id=external.get(row.customer_id, ""),
            kind=row.kind,
            status=row.status,
            source=row.source,
            requested_at=row.requested_at,
            due_at=row.due_at,
            deadline_at=row.deadline_at,
            done_at=row.done_at,
            overdue=row.status in OPEN and row.deadline_at < now,
            hold_reason=row.hold_reason,
            held_by=row.held_by,
        )
        for row in rows
    ]


def list_requests(
    session: Session,
    *,
    kind: str | None,
    status: str | None,
    overdue: bool,
    now: dt.datetime,
    limit: int,
    offset: int,
) -> tuple[list[DataRequestOut], int]:
    rows, total = DataRequestRepository(session).page(
        kind=kind, status=status, overdue_at=now if overdue else None, limit=limit, offset=offset
    )
    return describe(session, rows, now=now), total


def request_counts(session: Session, *, now: dt.datetime) -> dict[str, int]:
    return DataRequestRepository(session).counts(now=now)


def erase_now(session: Session, customer_id: int, *, request_id: str, keys: KeyProvider, now: dt.datetime) -> None:
    """Erase one customer everywhere, in the caller's transaction: every domain's part first, the
    customer's identity, contact points and data key last."""
    customer = customers.get_by_id(session, customer_id)
    if customer is None or customer.erased_at is not None:
        return
    external_id = customer.external_id
    followups.erase_customer(session, customer_id, now=now)
    messages.erase_customer(session, customer_id)
    inbox.erase_customer(session, customer_id)
    answers.erase_customer(session, customer_id, now=now)
    cases.erase_customer(session, customer_id)
    calls.erase_customer(session, customer_id, now=now)
    consents.erase_customer(session, customer_id)
    events.erase_customer(session, customer_id)
    webhooks.erase_customer(session, external_id)
    DataRequestRepository(session).forget_reasons(customer_id)
    customer_data.erase_customer(session, customer, keys=keys, request_id=request_id, now=now)
    privacy.record_audit(
        session,
        actor=SYSTEM,
        subject_type="customer",
        subject_id=str(customer_id),
        event="customer.erased",
        now=now,
        new={"request_id": request_id},
    )


def run_due_erasures(
    session: Session, *, now: dt.datetime, settings: Settings, keys: KeyProvider, limit: int, one_by_one: bool
) -> int:
    """The worker's timer: carry out erasure requests that are due and not held."""
    repo = DataRequestRepository(session)
    done = 0
    for row in repo.claim_due_erasures(now=now, limit=min(limit, 50)):
        if one_by_one:  # the batch failed: each on its own, so one that breaks holds up no other
            try:
                with session.begin_nested():
                    erase_now(session, row.customer_id, request_id=row.request_id, keys=keys, now=now)
            except Exception as exc:  # noqa: BLE001 - logged without personal data; tried again next round
                log.warning("erasure_failed", request_id=row.request_id, error=type(exc).__name__)
                continue
        else:
            erase_now(session, row.customer_id, request_id=row.request_id, keys=keys, now=now)
        row.status, row.done_at = "done", now
        done += 1
    if done:
        session.flush()
        log.info("erasures_done", count=done)
    return done


def reapply_erasures(session: Session, *, keys: KeyProvider, now: dt.datetime) -> int:
    """Erase again every customer a tombstone names who still holds the identity that was erased:
    what a database restored from an older backup shows. Returns how many."""
    again = customer_data.erasures_to_reapply(session, keys=keys)
    for tombstone in again:
        erase_now(session, tombstone.customer_id, request_id=tombstone.request_id, keys=keys, now=now)
    if again:
        log.warning("erasures_reapplied", count=len(again))
    return len(again)


def reapply_at_start(
    session: Session, *, now: dt.datetime, settings: Settings, keys: KeyProvider, limit: int, one_by_one: bool
) -> int:
    """`reapply_erasures` as the worker and the server run it when they start."""
    return reapply_erasures(session, keys=keys, now=now)


# The files of an export, one per kind of record, in the order a person reads them.
_KINDS = (
    "profile",
    "contact_points",
    "consents",
    "consent_history",
    "events",
    "followups",
    "messages",
    "replies",
    "inbox",
    "responses",
    "interviews",
    "rewards",
    "reward_balance",
    "cases",
    "calls",
    "requests",
)

_README = """\
这是 followup 为你保存的全部数据。customer.json 包含全部内容；每个 CSV 文件是一类记录，可以用表格软件打开。
This is everything followup holds about you. customer.json holds all of it; each CSV file is one
kind of record and opens in any spreadsheet.

profile.csv          你的资料 / your profile
contact_points.csv   联系方式 / how we reach you
consents.csv         当前授权 / your consents now
consent_history.csv  授权记录 / every consent given or withdrawn
events.csv           钱包事件 / events the wallet told us about
followups.csv        回访 / our follow-ups with you
messages.csv         发给你的消息 / messages we sent you
replies.csv          你的回复 / your replies
inbox.csv            应用内消息 / your in-app inbox
responses.csv        你的评价和留言 / your ratings and comments
interviews.csv       访谈预约 / interviews you booked
rewards.csv          奖励记录 / rewards granted
reward_balance.csv   奖励余额 / your reward balance
cases.csv            工单 / cases opened for you
calls.csv            电话回访 / calls
requests.csv         数据请求 / your data requests
"""


def collect(session: Session, customer_id: int, *, keys: KeyProvider) -> dict[str, list[dict[str, Any]]]:
    """Everything held about one customer, by kind of record, from every domain."""
    customer = customers.get_by_id(session, customer_id)
    if customer is None:
        raise customers.CustomerNotFound("No such customer.", field="customer_id")
    data: dict[str, list[dict[str, Any]]] = {}
    data.update(customer_data.export_customer(session, customer, keys=keys))
    data.update(consents.export_customer(session, customer_id))
    data.update(events.export_customer(session, customer_id))
    data.update(followups.export_customer(session, customer_id))
    data.update(messages.export_customer(session, customer_id, keys=keys))
    data.update(inbox.export_customer(session, customer_id, keys=keys))
    data.update(answers.export_customer(session, customer_id, keys=keys))
    data.update(rewards.export_customer(session, customer_id))
    data.update(cases.export_customer(session, customer_id, keys=keys))
    data.update(calls.export_customer(session, customer_id))
    data["requests"] = [
        {
            "request_id": row.request_id,
            "kind": row.kind,
            "status": row.status,
            "requested_at": row.requested_at,
            "due_at": row.due_at,
            "done_at": row.done_at,
        }
        for row in DataRequestRepository(session).of_customer(customer_id)
    ]
    return data


def _cell(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def _csv(rows: list[dict[str, Any]]) -> bytes:
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    # With a byte-order mark, spreadsheet programs read the Chinese in it as UTF-8.
    return buffer.getvalue().encode("utf-8-sig")


def _zip(document: Mapping[str, Any], tables: Mapping[str, list[dict[str, Any]]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "customer.json", json.dumps(document, ensure_ascii=False, indent=2, default=_cell, sort_keys=False)
        )
        for kind, rows in tables.items():
            archive.writestr(f"{kind}.csv", _csv(rows))
        if tables:
            archive.writestr("README.txt", _README)
    return buffer.getvalue()


def export_zip(
    session: Session, external_id: str, *, source: str, actor: Actor, keys: KeyProvider, now: dt.datetime
) -> bytes:
    """The customer's data as a zip: `customer.json` with everything, one CSV per kind of record.
    An erased id gives its tombstone alone; an unknown one, 404. The export is recorded and audited."""
    customer = customers.get_customer(session, external_id)
    if customer is None:
        tombstone = customer_data.tombstone_of(session, external_id, keys=keys)
        if tombstone is None:
            raise customers.CustomerNotFound(f"No customer with id '{external_id}'.", field="customer_id")
        return _zip(
            {"customer_id": external_id, "erased": True, "erased_at": tombstone.erased_at, "exported_at": now}, {}
        )
    data = collect(session, customer.id, keys=keys)
    DataRequestRepository(session).add(
        DataRequest(
            request_id=_new_request_id(),
            customer_id=customer.id,
            kind="export",
            status="done",
            source=source,
            actor=str(actor),
            requested_at=now,
            due_at=now,
            deadline_at=now,
            done_at=now,
        )
    )
    privacy.record_audit(
        session,
        actor=actor,
        subject_type="customer",
        subject_id=str(customer.id),
        event="customer.exported",
        now=now,
        new={"source": source},
    )
    session.flush()
    tables = {kind: data.get(kind, []) for kind in _KINDS}
    return _zip({"customer_id": external_id, "exported_at": now, "data": tables}, tables)
