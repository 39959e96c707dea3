"""follow-ups are unique per (strategy, customer, run key)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

A follow-up was unique per (strategy, event), which guards event-driven follow-ups only. A
periodic wave or a proactive period plans follow-ups tied to no event, and must not plan one
customer twice either. The run key names what a follow-up belongs to — `event:<id>`, and later
the wave or the period — and (strategy, customer, run key) is unique. Existing rows get
`event:<event_id>`, or `followup:<id>` where their event was deleted, so no two collide.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("run_key", sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE followups SET run_key = CASE WHEN event_id IS NULL "
        "THEN 'followup:' || CAST(id AS VARCHAR(20)) ELSE 'event:' || CAST(event_id AS VARCHAR(20)) END"
    )
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.alter_column("run_key", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_constraint("uq_followups_strategy_id_event_id", type_="unique")
        batch_op.create_unique_constraint(
            "uq_followups_strategy_id_customer_id_run_key", ["strategy_id", "customer_id", "run_key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.drop_constraint("uq_followups_strategy_id_customer_id_run_key", type_="unique")
        batch_op.create_unique_constraint("uq_followups_strategy_id_event_id", ["strategy_id", "event_id"])
        batch_op.drop_column("run_key")
