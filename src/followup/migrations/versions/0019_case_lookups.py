"""indexes for finding a response's or a follow-up's cases

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03

Every answer asks whether its response already has a case, and a follow-up's page lists its cases;
both scanned the whole cases table.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_cases_response_kind", "cases", ["response_id", "kind"])
    op.create_index("ix_cases_followup", "cases", ["followup_id"])


def downgrade() -> None:
    op.drop_index("ix_cases_followup", table_name="cases")
    op.drop_index("ix_cases_response_kind", table_name="cases")
