"""contact points as their own rows

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

A customer's email and phone move from columns of `customers` to rows of `contact_points` (kind,
sealed value, blind index, status and when it changed), beside the push devices that arrive with
them. The sealed bytes move as they are: they were sealed under the customer's key with their kind
as purpose, as contact points are. `customers.reach` says which kinds a customer holds a valid one
of, so planning still reads one row per customer.

Messages gain the provider's receipt (delivered, failed, bounced) and when it came, the provider
that took the message, and an SMS's segment count; receipts find a message by the provider's
reference. An attempt gains `seq`: a claim that fails over has a row per provider it tried.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_KINDS = (("email", 1), ("phone", 2))
_COPY = (
    "INSERT INTO contact_points (customer_id, kind, label, value_sealed, value_index, status, changed_at,"
    " created_at) SELECT id, '{kind}', '', {kind}_sealed, {kind}_index, 'valid', updated_at, updated_at"
    " FROM customers WHERE {kind}_sealed IS NOT NULL AND {kind}_index IS NOT NULL"
)
_REACH = "UPDATE customers SET reach = reach + {bit} WHERE {kind}_sealed IS NOT NULL"
_COPY_BACK = (
    "UPDATE customers SET {kind}_sealed = (SELECT value_sealed FROM contact_points p"
    " WHERE p.customer_id = customers.id AND p.kind = '{kind}' AND p.label = ''),"
    " {kind}_index = (SELECT value_index FROM contact_points p"
    " WHERE p.customer_id = customers.id AND p.kind = '{kind}' AND p.label = '')"
)


def upgrade() -> None:
    op.create_table(
        "contact_points",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=True),
        sa.Column("value_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("value_index", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.String(length=64), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_contact_points_customer_id_customers", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_contact_points"),
        sa.UniqueConstraint("customer_id", "kind", "label", name="uq_contact_points_customer_id_kind_label"),
    )
    op.create_index("ix_contact_points_kind_index", "contact_points", ["kind", "value_index"])
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("reach", sa.SmallInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("receipt", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("receipt_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("provider", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("segments", sa.SmallInteger(), nullable=True))
        batch.create_index("ix_messages_provider_ref", ["provider_ref"])
    with op.batch_alter_table("message_attempts") as batch:
        batch.add_column(sa.Column("seq", sa.SmallInteger(), nullable=False, server_default="0"))
        batch.drop_constraint("uq_message_attempts_message_id_number", type_="unique")
        batch.create_unique_constraint("uq_message_attempts_message_id_number_seq", ["message_id", "number", "seq"])
    for kind, bit in _KINDS:  # our own names, never input
        op.execute(_COPY.format(kind=kind))
        op.execute(_REACH.format(kind=kind, bit=bit))
    with op.batch_alter_table("customers") as batch:
        batch.drop_index("ix_customers_email_index")
        batch.drop_index("ix_customers_phone_index")
        for kind, _ in _KINDS:
            batch.drop_column(f"{kind}_index")
            batch.drop_column(f"{kind}_sealed")


def downgrade() -> None:
    op.execute("DELETE FROM message_attempts WHERE seq > 0")  # one row per claim again: the first try
    with op.batch_alter_table("message_attempts") as batch:
        batch.drop_constraint("uq_message_attempts_message_id_number_seq", type_="unique")
        batch.create_unique_constraint("uq_message_attempts_message_id_number", ["message_id", "number"])
        batch.drop_column("seq")
    with op.batch_alter_table("messages") as batch:
        batch.drop_index("ix_messages_provider_ref")
        for name in ("segments", "provider", "receipt_at", "receipt"):
            batch.drop_column(name)
    with op.batch_alter_table("customers") as batch:
        for kind, _ in _KINDS:
            batch.add_column(sa.Column(f"{kind}_sealed", sa.LargeBinary(), nullable=True))
            batch.add_column(sa.Column(f"{kind}_index", sa.String(length=64), nullable=True))
    for kind, _ in _KINDS:
        op.execute(_COPY_BACK.format(kind=kind))
    with op.batch_alter_table("customers") as batch:
        batch.create_index("ix_customers_email_index", ["email_index"])
        batch.create_index("ix_customers_phone_index", ["phone_index"])
        batch.drop_column("reach")
    op.drop_index("ix_contact_points_kind_index", table_name="contact_points")
    op.drop_table("contact_points")
