"""customer activity: day buckets per type, follow-up and answer stats, preference and value tier

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Targeting reads what a customer has done (`customer.stats.*`): counts and volumes over rolling
windows, the event types and features used and the first and last event, all from one bucket per
customer, UTC day, event type and feature; and their last follow-up, last NPS and answers per
channel. The tables start empty; `followup customers recompute-stats` fills them from the event
log and the answers already stored (run it once after this upgrade).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSONType = sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("preferred_channel", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("value_tier", sa.String(length=32), nullable=True))
    op.create_table(
        "customer_activity",
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("last_followup_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_nps", sa.SmallInteger(), nullable=True),
        sa.Column("last_nps_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("responses_by_channel", JSONType, nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_customer_activity_customer_id_customers", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("customer_id", name="pk_customer_activity"),
    )
    op.create_table(
        "customer_activity_days",
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("feature", sa.String(length=128), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("first_at", sa.BigInteger(), nullable=False),
        sa.Column("last_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_customer_activity_days_customer_id_customers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "day", "type", "feature", name="pk_customer_activity_days"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("customer_activity_days")
    op.drop_table("customer_activity")
    # SQLite drops a column in place since 3.35; a batch copy of `customers` would drop the old
    # table, and with it (ON DELETE CASCADE) every row that refers to a customer.
    op.execute("ALTER TABLE customers DROP COLUMN value_tier")
    op.execute("ALTER TABLE customers DROP COLUMN preferred_channel")
