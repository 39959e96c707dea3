"""the key store apart from the data, tombstones, erasure requests

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03

Customers' wrapped data keys move out of the database into the key store (a second SQLite file
attached as `followup_keys`, a schema of its own on PostgreSQL), beside the tombstones of erased
customers; see ADR 0024. Customers gain `erased_at`; data requests get their queue.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = "followup_keys"
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _key_schema() -> str:
    """The key store's schema: `followup_keys` on SQLite (the attached file), the engine's on PostgreSQL."""
    bind = op.get_bind()
    translate = bind.get_execution_options().get("schema_translate_map") or {}
    return str(translate.get(KEYS, KEYS))


def upgrade() -> None:
    bind = op.get_bind()
    schema = _key_schema()  # named as the database knows it: Alembic's statements skip the translation
    if bind.dialect.name == "postgresql":
        op.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    op.create_table(
        "customer_keys",
        sa.Column("customer_id", _ID, autoincrement=False, nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_keys")),
        schema=schema,
    )
    op.create_table(
        "tombstones",
        sa.Column("external_index", sa.String(length=64), nullable=False),
        sa.Column("customer_id", _ID, nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("external_index", name=op.f("pk_tombstones")),
        schema=schema,
    )
    op.create_index("ix_tombstones_customer_id", "tombstones", ["customer_id"], unique=False, schema=schema)
    keys = sa.table(
        "customer_keys", sa.column("customer_id"), sa.column("wrapped_key"), sa.column("created_at"), schema=schema
    )
    old = sa.table("customer_keys", sa.column("customer_id"), sa.column("wrapped_key"), sa.column("created_at"))
    op.execute(keys.insert().from_select(["customer_id", "wrapped_key", "created_at"], sa.select(old)))
    op.drop_table("customer_keys")

    with op.batch_alter_table("customers") as batch_op:
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "privacy_requests",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("customer_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("reason_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("hold_reason", sa.String(length=500), nullable=True),
        sa.Column("held_by", sa.String(length=160), nullable=True),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_privacy_requests_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_requests")),
        sa.UniqueConstraint("request_id", name=op.f("uq_privacy_requests_request_id")),
    )
    op.create_index("ix_privacy_requests_status_due", "privacy_requests", ["status", "due_at"], unique=False)
    op.create_index("ix_privacy_requests_customer", "privacy_requests", ["customer_id", "kind", "status"], unique=False)
    open_erasure = sa.text("kind = 'erasure' AND status IN ('pending', 'held')")
    op.create_index(
        "uq_privacy_requests_open_erasure",
        "privacy_requests",
        ["customer_id"],
        unique=True,
        sqlite_where=open_erasure,
        postgresql_where=open_erasure,
    )


def downgrade() -> None:
    schema = _key_schema()
    op.drop_index("uq_privacy_requests_open_erasure", table_name="privacy_requests")
    op.drop_index("ix_privacy_requests_customer", table_name="privacy_requests")
    op.drop_index("ix_privacy_requests_status_due", table_name="privacy_requests")
    op.drop_table("privacy_requests")
    with op.batch_alter_table("customers") as batch_op:
        batch_op.drop_column("erased_at")
    op.create_table(
        "customer_keys",
        sa.Column("customer_id", _ID, nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_customer_keys_customer_id_customers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_keys")),
    )
    keys = sa.table(
        "customer_keys", sa.column("customer_id"), sa.column("wrapped_key"), sa.column("created_at"), schema=schema
    )
    new = sa.table("customer_keys", sa.column("customer_id"), sa.column("wrapped_key"), sa.column("created_at"))
    op.execute(new.insert().from_select(["customer_id", "wrapped_key", "created_at"], sa.select(keys)))
    op.drop_index("ix_tombstones_customer_id", table_name="tombstones", schema=schema)
    op.drop_table("tombstones", schema=schema)
    op.drop_table("customer_keys", schema=schema)
