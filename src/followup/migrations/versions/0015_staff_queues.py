"""staff members belong to queues

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03

An agent works the calls and cases of the queues they belong to (`calls`, `security`, `complaint`,
…), kept space-separated on their account.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff") as batch:
        batch.add_column(sa.Column("queues", sa.String(length=500), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("staff") as batch:
        batch.drop_column("queues")
