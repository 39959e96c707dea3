"""index events and follow-ups by customer alone

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

A customer's events and follow-ups are found through an index on customer_id alone. The former
(customer_id, occurred_at) and (customer_id, planned_at) indexes carried a 26-character time in
every entry; on SQLite an event insert maintained an index entry three times the size, which
halved ingest (measured in docs/performance.md). Within one customer, SQLite's index is ordered by
rowid as well, so "a customer's latest first" still reads the index in order.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_customer_occurred")
        batch_op.create_index("ix_events_customer", ["customer_id"], unique=False)
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.drop_index("ix_followups_customer")
        batch_op.create_index("ix_followups_customer", ["customer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.drop_index("ix_followups_customer")
        batch_op.create_index("ix_followups_customer", ["customer_id", "planned_at"], unique=False)
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_customer")
        batch_op.create_index("ix_events_customer_occurred", ["customer_id", "occurred_at"], unique=False)
