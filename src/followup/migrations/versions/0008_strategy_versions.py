"""strategy versions: every definition a strategy has had

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

Each change to a strategy (its definition or its status) is a new version; `strategy_versions`
keeps each one with who made it, and a follow-up's plan records the version that planned it.
Existing strategies get their current definition as their current version.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "strategy_versions",
        sa.Column("strategy_id", BigId, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["strategy_id"], ["strategies.id"], name="fk_strategy_versions_strategy_id_strategies", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("strategy_id", "version", name="pk_strategy_versions"),
    )
    op.execute(
        "INSERT INTO strategy_versions (strategy_id, version, definition, actor, created_at) "
        "SELECT id, version, definition, 'system', updated_at FROM strategies"
    )


def downgrade() -> None:
    op.drop_table("strategy_versions")
