"""master key versions: each wrapped data key records its version; key checks

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03

Every wrapped data key in the key store records the master key version it is wrapped under
(existing keys are version 1, the one master key they were wrapped with), so that a new master key
can take over without re-wrapping everything at once. `key_checks` holds the index root wrapped
under each version that has been current, which the runtime opens at start-up to refuse a wrong
master key (ADR 0025).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = "followup_keys"


def _key_schema() -> str:
    """The key store's schema: `followup_keys` on SQLite (the attached file), the engine's on PostgreSQL."""
    bind = op.get_bind()
    translate = bind.get_execution_options().get("schema_translate_map") or {}
    return str(translate.get(KEYS, KEYS))


def upgrade() -> None:
    schema = _key_schema()  # named as the database knows it: Alembic's statements skip the translation
    # A plain ADD COLUMN (no table rebuild on SQLite): every existing row reads as version 1.
    op.add_column(
        "customer_keys",
        sa.Column("key_version", sa.Integer(), server_default="1", nullable=False),
        schema=schema,
    )
    op.create_index("ix_customer_keys_key_version", "customer_keys", ["key_version"], unique=False, schema=schema)
    op.create_table(
        "key_checks",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("wrapped_root", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_key_checks")),
        schema=schema,
    )


def downgrade() -> None:
    schema = _key_schema()
    keys = sa.table("customer_keys", sa.column("key_version"), schema=schema)
    moved = op.get_bind().execute(sa.select(sa.func.count()).select_from(keys).where(keys.c.key_version != 1))
    if moved.scalar_one():
        # The release before knows one master key; data keys under another would not open there.
        raise RuntimeError(
            "some data keys are wrapped under a master key version other than 1; an earlier release "
            "cannot open them. Make version 1 current again and run `followup keys rotate` before downgrading"
        )
    op.drop_table("key_checks", schema=schema)
    op.drop_index("ix_customer_keys_key_version", table_name="customer_keys", schema=schema)
    with op.batch_alter_table("customer_keys", schema=schema) as batch_op:
        batch_op.drop_column("key_version")
