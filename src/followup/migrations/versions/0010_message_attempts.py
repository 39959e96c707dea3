"""message attempts and the times after acceptance

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

Each try at sending a message becomes a row of `message_attempts` (provider, outcome, provider
reference, error code, latency); a message gains the times it was delivered, opened, clicked and
answered, null until they happen.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIMES = ("delivered_at", "opened_at", "clicked_at", "answered_at")


def upgrade() -> None:
    op.create_table(
        "message_attempts",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("message_id", BigId, nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("provider_ref", sa.String(length=255), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_message_attempts_message_id_messages", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_message_attempts"),
        sa.UniqueConstraint("message_id", "number", name="uq_message_attempts_message_id_number"),
    )
    with op.batch_alter_table("messages") as batch:
        for name in _TIMES:
            batch.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        for name in reversed(_TIMES):
            batch.drop_column(name)
    op.drop_table("message_attempts")
