"""interview bookings: one customer's slot of an interview question

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

A survey may offer an interview: a question of type `interview` with slots. A booking is a row of
`interview_bookings`; the unique key (survey, question, start) is what keeps a slot to one
customer however many book it at once, and (follow-up, question) keeps a follow-up to one booking.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "interview_bookings",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("survey_id", BigId, nullable=False),
        sa.Column("survey_version_id", BigId, nullable=False),
        sa.Column("question_id", sa.String(length=64), nullable=False),
        sa.Column("followup_id", BigId, nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("utc_offset_minutes", sa.SmallInteger(), nullable=False),
        sa.Column("location", sa.JSON(), nullable=False),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["surveys.id"], name="fk_interview_bookings_survey_id_surveys", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["survey_version_id"],
            ["survey_versions.id"],
            name="fk_interview_bookings_survey_version_id_survey_versions",
        ),
        sa.ForeignKeyConstraint(
            ["followup_id"], ["followups.id"], name="fk_interview_bookings_followup_id_followups", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_interview_bookings_customer_id_customers", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_interview_bookings"),
        sa.UniqueConstraint(
            "survey_id", "question_id", "starts_at", name="uq_interview_bookings_survey_id_question_id_starts_at"
        ),
        sa.UniqueConstraint("followup_id", "question_id", name="uq_interview_bookings_followup_id_question_id"),
    )
    op.create_index("ix_interview_bookings_starts_at", "interview_bookings", ["starts_at"], unique=False)
    op.create_index("ix_interview_bookings_customer_id", "interview_bookings", ["customer_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_interview_bookings_customer_id", table_name="interview_bookings")
    op.drop_index("ix_interview_bookings_starts_at", table_name="interview_bookings")
    op.drop_table("interview_bookings")
