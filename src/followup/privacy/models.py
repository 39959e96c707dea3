from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from followup.kernel.db import Base, BigId, JSONType, UTCDateTime


class Consent(Base):
    """Current consent per customer, purpose and channel; the ledger below is its history."""

    __tablename__ = "consents"

    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    granted: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # The notice the current state was given or withdrawn under; null for consents recorded before
    # notices were kept. A grant under a notice older than one asking for fresh consent to its
    # purpose no longer counts (`privacy.service.consents_for`).
    notice_version: Mapped[str | None] = mapped_column(String(32))


class ConsentRecord(Base):
    """Append-only: every grant and withdrawal, who made it, how, and under which notice."""

    __tablename__ = "consent_ledger"
    __table_args__ = (Index("ix_consent_ledger_customer", "customer_id", "recorded_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(32))
    notice_version: Mapped[str] = mapped_column(String(32))
    # The sha256 of that notice's canonical content: which words the customer was shown. Null for
    # rows recorded before notices were kept.
    notice_hash: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(160))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class PrivacyNotice(Base):
    """A published privacy notice: its text per locale, never changed once published. The latest
    published is the current one; `requires_fresh_consent` names the purposes whose earlier grants
    stop counting from this notice on."""

    __tablename__ = "privacy_notices"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(32), unique=True)
    text: Mapped[dict[str, str]] = mapped_column(JSONType)
    requires_fresh_consent: Mapped[list[str]] = mapped_column(JSONType)
    content_hash: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    published_by: Mapped[str] = mapped_column(String(160))


class AuditEntry(Base):
    """Append-only log of changes to money, privacy and contact: who, what, old, new; hash-chained
    (`privacy.chain`): each line holds its place, the line before it and that line's hash.

    Lines are written only by `PrivacyRepository.add_audit_row`, never through the ORM. `old` and
    `new` hold references and sealed-or-not flags, never personal text.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_subject", "subject_type", "subject_id"),
        Index("ix_audit_log_seq", "seq", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(160))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(128))
    event: Mapped[str] = mapped_column(String(64))
    old: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    new: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    seq: Mapped[int] = mapped_column(BigInteger)
    prev_id: Mapped[int | None] = mapped_column(BigInteger)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The audit chain's last line, one row (id 1). Every append reads it under a row lock (on
    PostgreSQL; SQLite has one writer at a time), which puts concurrent appends in one order. A
    trigger on `audit_log` (migration 0020) moves it with each line written, so the append costs one
    statement more than the line itself; the removal of the last lines shows against it."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    last_id: Mapped[int | None] = mapped_column(BigInteger)


class UnsubscribeLink(Base):
    """A one-click unsubscribe link (RFC 8058); the token is stored only as its hash."""

    __tablename__ = "unsubscribe_links"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
