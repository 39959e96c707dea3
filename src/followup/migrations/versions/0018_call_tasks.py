"""the call queue: call tasks and the outcomes agents record

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03

A follow-up's phone step becomes a call task in a queue, due inside the customer's calling hours;
agents claim tasks for a lease and record an outcome, kept in `call_outcomes`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "call_tasks",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("followup_id", _ID, nullable=False),
        sa.Column("customer_id", _ID, nullable=False),
        sa.Column("queue", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due_at", _WHEN, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("agent_id", _ID, nullable=True),
        sa.Column("lease_until", _WHEN, nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("closed_at", _WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["followup_id"], ["followups.id"], name="fk_call_tasks_followup_id_followups", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_call_tasks_customer_id_customers", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["agent_id"], ["staff.id"], name="fk_call_tasks_agent_id_staff", ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_call_tasks"),
    )
    op.create_index("ix_call_tasks_queue_status_due", "call_tasks", ["queue", "status", "due_at"])
    op.create_index("ix_call_tasks_followup", "call_tasks", ["followup_id"])
    op.create_index("ix_call_tasks_agent_status", "call_tasks", ["agent_id", "status"])
    op.create_table(
        "call_outcomes",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("task_id", _ID, nullable=False),
        sa.Column("agent_id", _ID, nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("at", _WHEN, nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"], ["call_tasks.id"], name="fk_call_outcomes_task_id_call_tasks", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["staff.id"], name="fk_call_outcomes_agent_id_staff", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_call_outcomes"),
    )
    op.create_index("ix_call_outcomes_at", "call_outcomes", ["at"])
    op.create_index("ix_call_outcomes_task", "call_outcomes", ["task_id"])


def downgrade() -> None:
    op.drop_index("ix_call_outcomes_task", table_name="call_outcomes")
    op.drop_index("ix_call_outcomes_at", table_name="call_outcomes")
    op.drop_table("call_outcomes")
    op.drop_index("ix_call_tasks_agent_status", table_name="call_tasks")
    op.drop_index("ix_call_tasks_followup", table_name="call_tasks")
    op.drop_index("ix_call_tasks_queue_status_due", table_name="call_tasks")
    op.drop_table("call_tasks")
