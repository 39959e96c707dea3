from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from followup.kernel.db import BulkStatements
from followup.privacy.models import AuditEntry, Consent, ConsentRecord, PrivacyNotice, UnsubscribeLink


class PrivacyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def consents_for(
        self, customer_ids: Iterable[int], purpose: str, *, counted_versions: frozenset[str] | None
    ) -> dict[int, dict[str, bool]]:
        """Customer → channel → granted; a grant given under a notice outside `counted_versions`
        (when it is not None) is left out, as if never asked: the same rule as `consent_join_sql`."""
        ids = list(customer_ids)
        result: dict[int, dict[str, bool]] = {cid: {} for cid in ids}
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            rows = self.session.execute(
                select(Consent.customer_id, Consent.channel, Consent.granted, Consent.notice_version).where(
                    Consent.customer_id.in_(chunk), Consent.purpose == purpose
                )
            )
            for customer_id, channel, granted, notice_version in rows:
                if granted and counted_versions is not None and notice_version not in counted_versions:
                    continue
                result[customer_id][channel] = granted
        return result

    def all_consents(self, customer_id: int) -> list[Consent]:
        return list(
            self.session.scalars(
                select(Consent).where(Consent.customer_id == customer_id).order_by(Consent.purpose, Consent.channel)
            )
        )

    def get_consent(self, customer_id: int, purpose: str, channel: str) -> Consent | None:
        return self.session.get(Consent, (customer_id, purpose, channel))

    def add_audit_row(
        self,
        *,
        at: dt.datetime,
        actor: str,
        subject_type: str,
        subject_id: str,
        event: str,
        old: dict[str, Any] | None,
        new: dict[str, Any] | None,
    ) -> None:
        """An audit line, written at once at the driver (past the unit of work and SQLAlchemy's
        binding: the answer path writes one with every reward, holding the write lock)."""
        bulk = BulkStatements(self.session.connection())
        bulk.run(
            "INSERT INTO audit_log (at, actor, subject_type, subject_id, event, old, new)"  # noqa: S608 - placeholders of ours
            f" VALUES (?, ?, ?, ?, ?, {bulk.json_slot()}, {bulk.json_slot()})",
            (bulk.db_time(at), actor, subject_type, subject_id, event, bulk.db_json(old), bulk.db_json(new)),
        )

    def add(self, row: Consent | ConsentRecord | AuditEntry | UnsubscribeLink | PrivacyNotice) -> None:
        self.session.add(row)

    def notice(self, version: str) -> PrivacyNotice | None:
        return self.session.scalars(select(PrivacyNotice).where(PrivacyNotice.version == version)).one_or_none()

    def add_notice_once(self, row: PrivacyNotice) -> bool:
        """Insert a notice in a savepoint; False when its version is already taken."""
        try:
            with self.session.begin_nested():
                self.session.add(row)
        except IntegrityError:
            return False
        return True

    def latest_notice(self) -> PrivacyNotice | None:
        return self.session.scalars(select(PrivacyNotice).order_by(PrivacyNotice.id.desc()).limit(1)).one_or_none()

    def notices_page(self, *, limit: int, offset: int) -> tuple[list[PrivacyNotice], int]:
        """Published notices, newest first."""
        total = self.session.scalar(select(func.count()).select_from(PrivacyNotice)) or 0
        rows = self.session.scalars(select(PrivacyNotice).order_by(PrivacyNotice.id.desc()).limit(limit).offset(offset))
        return list(rows), total

    def notice_requirements(self) -> list[tuple[str, list[str]]]:
        """(version, purposes asking for fresh consent) of every published notice, oldest first.
        A few rows: one per notice ever published."""
        rows = self.session.execute(
            select(PrivacyNotice.version, PrivacyNotice.requires_fresh_consent).order_by(PrivacyNotice.id)
        )
        return [(version, list(purposes)) for version, purposes in rows]

    def ledger(self, customer_id: int) -> list[ConsentRecord]:
        return list(
            self.session.scalars(
                select(ConsentRecord).where(ConsentRecord.customer_id == customer_id).order_by(ConsentRecord.id)
            )
        )

    def audit_page(self, *, subject_type: str | None, limit: int, offset: int) -> tuple[list[AuditEntry], int]:
        """The audit log, newest first, optionally of one kind of subject (`customer`, `staff`, …)."""
        query = select(AuditEntry)
        if subject_type:
            query = query.where(AuditEntry.subject_type == subject_type)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit).offset(offset))
        return list(rows), total

    def ledger_page(self, *, customer_id: int | None, limit: int, offset: int) -> tuple[list[ConsentRecord], int]:
        """The consent ledger, newest first, optionally of one customer."""
        query = select(ConsentRecord)
        if customer_id is not None:
            query = query.where(ConsentRecord.customer_id == customer_id)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.session.scalars(query.order_by(ConsentRecord.id.desc()).limit(limit).offset(offset))
        return list(rows), total

    def audit_for(self, subject_type: str, subject_id: str) -> list[AuditEntry]:
        return list(
            self.session.scalars(
                select(AuditEntry)
                .where(AuditEntry.subject_type == subject_type, AuditEntry.subject_id == subject_id)
                .order_by(AuditEntry.id)
            )
        )

    def unsubscribe_link(self, token_hash: str) -> UnsubscribeLink | None:
        return self.session.scalars(
            select(UnsubscribeLink).where(UnsubscribeLink.token_hash == token_hash)
        ).one_or_none()

    def mark_unsubscribe_used(self, link_id: int, now: dt.datetime) -> bool:
        result = self.session.execute(
            update(UnsubscribeLink)
            .where(UnsubscribeLink.id == link_id, UnsubscribeLink.used_at.is_(None))
            .values(used_at=now)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def consent_join_sql(
    alias: str, customer: str, *, purpose: str, channel: str, counted_versions: frozenset[str] | None
) -> str:
    """LEFT JOIN of a customer's consent to one purpose on one channel, as `alias` (purpose,
    channel and versions checked against our own shapes by the caller). A grant given under a
    notice outside `counted_versions` (when it is not None) joins no row, as if never asked."""
    fresh = ""
    if counted_versions is not None:
        listed = ", ".join(f"'{version}'" for version in sorted(counted_versions))
        fresh = f" AND ({alias}.granted = FALSE OR {alias}.notice_version IN ({listed}))"
    return (
        f"LEFT JOIN {Consent.__tablename__} {alias} ON {alias}.customer_id = {customer} "
        f"AND {alias}.purpose = '{purpose}' AND {alias}.channel = '{channel}'{fresh}"
    )
