"""periodic strategies: the next wave's time and a record of each wave

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

A periodic strategy fires on a cron schedule; `strategies.next_run_at` is when its next wave is
due, moved on by the worker that claims it. `strategy_waves` records each wave: its firing, when it
was planned, how many firings it caught up for, and what became of its audience.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("strategies", sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_strategies_next_run_at", "strategies", ["next_run_at"])
    op.create_table(
        "strategy_waves",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("strategy_id", BigId, nullable=False),
        sa.Column("strategy_version", sa.Integer(), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("missed", sa.Integer(), nullable=False),
        sa.Column("audience", sa.Integer(), nullable=False),
        sa.Column("in_cooldown", sa.Integer(), nullable=False),
        sa.Column("sampled", sa.Integer(), nullable=False),
        sa.Column("capped", sa.Integer(), nullable=False),
        sa.Column("planned", sa.Integer(), nullable=False),
        sa.Column("suppressed", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["strategy_id"], ["strategies.id"], name="fk_strategy_waves_strategy_id_strategies", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_strategy_waves"),
        sa.UniqueConstraint("strategy_id", "fired_at", name="uq_strategy_waves_strategy_id_fired_at"),
    )


def downgrade() -> None:
    op.drop_table("strategy_waves")
    op.drop_index("ix_strategies_next_run_at", table_name="strategies")
    # In place on SQLite (3.35+): a batch copy of `strategies` would cascade into its dependants.
    op.execute("ALTER TABLE strategies DROP COLUMN next_run_at")
