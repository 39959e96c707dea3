from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from followup.kernel.db import KEY_STORE_SCHEMA, Base, BigId, JSONType, UTCDateTime


class Customer(Base):
    """A wallet customer. Their contact points are rows of `contact_points`; `reach` says which
    kinds they hold a usable one of, so planning reads it from this row alone."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(128), unique=True)
    locale: Mapped[str] = mapped_column(String(16), default="zh-CN")
    time_zone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # One bit per kind of contact point (contacts.REACH_BITS) of which the customer holds a valid
    # one; kept by `contact_points` in the same transaction as the contact points themselves.
    reach: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    event_count: Mapped[int] = mapped_column(default=0)
    last_event_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Set by the wallet (PUT /customers/{id}); read by rules as customer.preferred_channel and
    # customer.value_tier, and by the personal channel's choice.
    preferred_channel: Mapped[str | None] = mapped_column(String(16))
    value_tier: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Set when the customer was erased: the row stays as a pseudonym (external_id "erased-…") so
    # that scores, rewards and the audit log keep their history without the person (ADR 0024).
    erased_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ContactPoint(Base):
    """One way to reach a customer: an email, a phone number, a push device, a social id.

    The value is sealed under the customer's data key (purpose: its kind) and found through its
    blind index (an inbound SMS names a number; a bounce names an address). `label` tells apart
    several of one kind: "" for the email and the phone, the wallet's device id for a device.
    `status` is valid until a provider says otherwise (bounced, invalid, unregistered); the policy
    then refuses the channel as unreachable until the wallet gives a new value.
    """

    __tablename__ = "contact_points"
    __table_args__ = (
        UniqueConstraint("customer_id", "kind", "label"),
        Index("ix_contact_points_kind_index", "kind", "value_index"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(128), default="")
    platform: Mapped[str | None] = mapped_column(String(16))  # a device's: android, ios
    value_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    value_index: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="valid")
    status_reason: Mapped[str | None] = mapped_column(String(64))  # the provider's code for it
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # the status's, or the value's
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class CustomerKey(Base):
    """The customer's data key, wrapped by the master key. Deleting this row shreds their data.

    It lives in the key store, apart from the database (ADR 0024), so a restored backup of the
    database finds no key for a customer erased after the backup was taken. No foreign key: the
    key store may be another file or schema.
    """

    __tablename__ = "customer_keys"
    __table_args__ = (Index("ix_customer_keys_key_version", "key_version"), {"schema": KEY_STORE_SCHEMA})

    customer_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    # The master key version (key id) `wrapped_key` is wrapped under (ADR 0025). The server default
    # is 1 so that a process of an older release, which knows no versions, still writes the truth.
    key_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class KeyCheck(Base):
    """The index root wrapped under one master key version: what the runtime unwraps at start-up to
    know that the configured key of that version is the right one (ADR 0025).

    Written when a version first becomes the current one, before anything is wrapped under it.
    """

    __tablename__ = "key_checks"
    __table_args__ = ({"schema": KEY_STORE_SCHEMA},)

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    wrapped_root: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Tombstone(Base):
    """An erased customer, remembered in the key store by the blind index of their external id.

    It outlives a restore of the database: when followup finds a customer of a tombstone still
    holding their identity (a backup from before the erasure), it erases them again.
    """

    __tablename__ = "tombstones"
    __table_args__ = (Index("ix_tombstones_customer_id", "customer_id"), {"schema": KEY_STORE_SCHEMA})

    external_index: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigId)
    request_id: Mapped[str] = mapped_column(String(32))
    erased_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class CustomerActivity(Base):
    """What follow-ups and answers add to a customer's stats: their last follow-up, last NPS and
    answers per channel (the events' part is in the day buckets). `followup customers
    recompute-stats` rebuilds it from the follow-up history and the stored answers."""

    __tablename__ = "customer_activity"

    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    last_followup_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_nps: Mapped[int | None] = mapped_column(SmallInteger)
    last_nps_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    responses_by_channel: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class CustomerActivityDay(Base):
    """One customer's events of one type (and feature, for feature.* events) on one UTC day.

    Every events stat is read from these buckets: windows sum them (exactly, whole UTC days), the
    first and last event are their smallest first_at and largest last_at, the types and features
    used are their distinct keys. Ingest keeps them with one upsert per batch; on SQLite the table
    is WITHOUT ROWID, so a bucket is one B-tree entry, not a row plus an index entry.
    """

    __tablename__ = "customer_activity_days"
    __table_args__ = ({"sqlite_with_rowid": False},)

    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    # Plain integers, so ingest hands the driver numbers and no time needs formatting per bucket:
    # `day` counts UTC days since 1970-01-01, `first_at` / `last_at` are Unix times in seconds.
    day: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(64), primary_key=True)
    feature: Mapped[str] = mapped_column(String(128), primary_key=True)  # "" unless a feature.* event names one
    events: Mapped[int] = mapped_column(default=0)
    amount: Mapped[int] = mapped_column(BigInteger, default=0)  # sum of the events' amounts
    first_at: Mapped[int] = mapped_column(BigInteger)
    last_at: Mapped[int] = mapped_column(BigInteger)
