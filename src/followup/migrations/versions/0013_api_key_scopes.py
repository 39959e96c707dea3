"""API keys get scopes, an owner and a last use

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03

A key may do only what its scopes allow (`events:write`, `customers:write`, `read`, `admin`, …);
keys made before scopes existed become `admin`, as they could do everything. A key may belong to a
staff member (an agent's key for the call queue), and keeps when it was last used (to the minute).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scopes", sa.String(length=200), nullable=False, server_default="admin"))
        batch.add_column(sa.Column("staff_id", BigId, nullable=True))
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key("fk_api_keys_staff_id_staff", "staff", ["staff_id"], ["id"], ondelete="SET NULL")
        batch.create_index("ix_api_keys_staff_id", ["staff_id"])


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index("ix_api_keys_staff_id")
        batch.drop_constraint("fk_api_keys_staff_id_staff", type_="foreignkey")
        batch.drop_column("last_used_at")
        batch.drop_column("staff_id")
        batch.drop_column("scopes")
