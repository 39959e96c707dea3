"""retention: the worker's record of each purge, and the indexes the purges read

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03

Each retention part (ADR 0026) gets a row in `retention_parts`: what went in all and when the
worker looks next. The purges find their oldest rows through an index each, partial where the rows
already cleared should leave it; deleting an event sets its follow-ups' event_id to NULL, found
through `ix_followups_event` instead of a scan of the follow-ups per event.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, table, column, the partial index's condition or None)
_INDEXES = (
    ("ix_events_occurred", "events", "occurred_at", None),
    ("ix_followups_event", "followups", "event_id", None),
    ("ix_messages_content_created", "messages", "created_at", "length(content_sealed) > 0"),
    ("ix_inbound_messages_text_received", "inbound_messages", "received_at", "text_sealed IS NOT NULL"),
    ("ix_responses_texts_created", "responses", "created_at", "texts_sealed IS NOT NULL"),
    ("ix_case_events_texts", "case_events", "case_id", "text_sealed IS NOT NULL"),
    ("ix_inbox_items_created", "inbox_items", "created_at", None),
    ("ix_short_links_expires", "short_links", "expires_at", None),
)


def upgrade() -> None:
    op.create_table(
        "retention_parts",
        sa.Column("part", sa.String(length=64), nullable=False),
        sa.Column("data_class", sa.String(length=16), nullable=False),
        sa.Column("purged", sa.BigInteger(), nullable=False),
        sa.Column("last_purged", sa.BigInteger(), nullable=False),
        sa.Column("last_purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_cutoff", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("part", name=op.f("pk_retention_parts")),
    )
    for name, table, column, where in _INDEXES:
        condition = None if where is None else sa.text(where)
        op.create_index(name, table, [column], unique=False, sqlite_where=condition, postgresql_where=condition)


def downgrade() -> None:
    for name, table, _, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_table("retention_parts")
