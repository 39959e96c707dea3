"""cases are worked to the end: queue, assignee, SLAs and breaches, resolution, re-survey, timeline

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03

A case now moves open → assigned → waiting → resolved → closed (and reopened) in a queue, with an
assignee, a first-response deadline beside its resolution deadline (`due_at`), the breach that
escalated it, what resolved it, and the customer's answer to "did we solve it?". Its timeline is
`case_events`: notes, replies, assignments and changes of state, a note's or reply's text sealed
under the customer's data key.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("queue", sa.String(length=32), nullable=False, server_default="detractor"))
        batch.add_column(sa.Column("assignee_id", _ID, nullable=True))
        batch.add_column(sa.Column("first_response_due_at", _WHEN, nullable=True))
        batch.add_column(sa.Column("first_response_at", _WHEN, nullable=True))
        batch.add_column(sa.Column("breach", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("breached_at", _WHEN, nullable=True))
        batch.add_column(sa.Column("resolved_at", _WHEN, nullable=True))
        batch.add_column(sa.Column("resolution_code", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("resurvey_token_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("resurvey_solved", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("resurvey_csat", sa.SmallInteger(), nullable=True))
        batch.add_column(sa.Column("reopened_count", sa.Integer(), nullable=False, server_default="0"))
        batch.create_foreign_key("fk_cases_assignee_id_staff", "staff", ["assignee_id"], ["id"], ondelete="SET NULL")
        batch.create_index("ix_cases_queue_status", ["queue", "status"])
        batch.create_index("ix_cases_assignee", ["assignee_id"])
        batch.create_index("ix_cases_resurvey_token", ["resurvey_token_hash"], unique=True)
    op.execute("UPDATE cases SET queue = kind")
    op.execute("UPDATE cases SET first_response_due_at = due_at")
    op.create_table(
        "case_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("case_id", _ID, nullable=False),
        sa.Column("at", _WHEN, nullable=False),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("text_sealed", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_case_events_case_id_cases", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_case_events"),
    )
    op.create_index("ix_case_events_case", "case_events", ["case_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_case_events_case", table_name="case_events")
    op.drop_table("case_events")
    with op.batch_alter_table("cases") as batch:
        batch.drop_index("ix_cases_resurvey_token")
        batch.drop_index("ix_cases_assignee")
        batch.drop_index("ix_cases_queue_status")
        batch.drop_constraint("fk_cases_assignee_id_staff", type_="foreignkey")
        for column in (
            "reopened_count",
            "resurvey_csat",
            "resurvey_solved",
            "resurvey_token_hash",
            "resolution_code",
            "resolved_at",
            "breached_at",
            "breach",
            "first_response_at",
            "first_response_due_at",
            "assignee_id",
            "queue",
        ):
            batch.drop_column(column)
