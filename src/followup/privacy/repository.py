from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from followup.kernel.db import BulkStatements
from followup.privacy.chain import GENESIS, ChainHead, ChainLine, line_hash
from followup.privacy.models import AuditChainHead, AuditEntry, Consent, ConsentRecord, PrivacyNotice, UnsubscribeLink


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
        """An audit line, chained to the last one, written at once at the driver (past the unit of
        work and SQLAlchemy's binding: the answer path writes one with every reward, holding the
        write lock).

        Two statements: the head read under a row lock (PostgreSQL; on SQLite this transaction is
        already the one writer), which orders concurrent appends, and the line itself, whose
        trigger moves the head. The lock is held to the commit, so a transaction writes its audit
        lines after the row locks of the change they record.
        """
        bulk = BulkStatements(self.session.connection())
        head = self._locked_head(bulk)
        old_text, new_text = bulk.db_json(old), bulk.db_json(new)
        seq, prev_id, prev_hash = head.seq + 1, head.last_id, head.hash
        digest = line_hash(
            seq=seq,
            prev_id=prev_id,
            at=at,
            actor=actor,
            subject_type=subject_type,
            subject_id=subject_id,
            event=event,
            # As the column gives it back: the stored JSON text read again (tuples become lists).
            old=None if old_text is None else json.loads(old_text),
            new=None if new_text is None else json.loads(new_text),
            prev_hash=prev_hash,
        )
        bulk.run(
            "INSERT INTO audit_log (at, actor, subject_type, subject_id, event, old, new, seq, prev_id, prev_hash,"  # noqa: S608 - placeholders of ours
            f" hash) VALUES (?, ?, ?, ?, ?, {bulk.json_slot()}, {bulk.json_slot()}, ?, ?, ?, ?)",
            (
                bulk.db_time(at),
                actor,
                subject_type,
                subject_id,
                event,
                old_text,
                new_text,
                seq,
                prev_id,
                prev_hash,
                digest,
            ),
        )

    def _locked_head(self, bulk: BulkStatements) -> ChainHead:
        lock = " FOR UPDATE" if bulk.postgres else ""
        query = f"SELECT seq, hash, last_id FROM audit_chain_head WHERE id = 1{lock}"  # noqa: S608 - our constant
        row = bulk.first(query, ())
        if row is None:
            # Only on a head gone missing (a wiped database): start it again from the last line, so
            # appends go on; `followup audit verify` still reads the lines themselves.
            last = bulk.first("SELECT seq, hash, id FROM audit_log ORDER BY seq DESC LIMIT 1", ())
            seq, digest, last_id = last or (0, GENESIS, None)
            bulk.run(
                "INSERT INTO audit_chain_head (id, seq, hash, last_id) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (seq, digest, last_id),
            )
            row = bulk.first(query, ())
            assert row is not None  # noqa: S101 - written just above, or by another writer
        seq, digest, last_id = row
        return ChainHead(seq=int(seq), hash=str(digest), last_id=None if last_id is None else int(last_id))

    def audit_chain_head(self) -> ChainHead | None:
        row = self.session.get(AuditChainHead, 1)
        return None if row is None else ChainHead(seq=row.seq, hash=row.hash, last_id=row.last_id)

    def audit_chain_page(self, *, after_seq: int, limit: int) -> list[ChainLine]:
        """The next lines of the chain after `after_seq`, in order: the walk reads it page by page."""
        rows = self.session.execute(
            select(
                AuditEntry.id,
                AuditEntry.seq,
                AuditEntry.prev_id,
                AuditEntry.at,
                AuditEntry.actor,
                AuditEntry.subject_type,
                AuditEntry.subject_id,
                AuditEntry.event,
                AuditEntry.old,
                AuditEntry.new,
                AuditEntry.prev_hash,
                AuditEntry.hash,
            )
            .where(AuditEntry.seq > after_seq)
            .order_by(AuditEntry.seq)
            .limit(limit)
        )
        return [ChainLine(*row) for row in rows]

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


class SubjectRepository:
    """What this domain holds about one customer, for their data rights (ADR 0024)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def erase(self, customer_id: int) -> None:
        """Consents and links go; the ledger stays as proof of what was given, without who gave it."""
        self.session.execute(delete(Consent).where(Consent.customer_id == customer_id))
        self.session.execute(delete(UnsubscribeLink).where(UnsubscribeLink.customer_id == customer_id))
        self.session.execute(
            update(ConsentRecord)
            .where(ConsentRecord.customer_id == customer_id, ConsentRecord.actor.like("customer:%"))
            .values(actor="customer"),
            execution_options={"synchronize_session": False},
        )
