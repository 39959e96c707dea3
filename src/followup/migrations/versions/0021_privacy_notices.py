"""privacy notices, and the notice each consent was given under

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03

Published notices get a table of their own; the consent ledger records the hash of the notice a
consent was given under beside its version, and the current consent the version it was set under
(a notice may ask for fresh consent to a purpose). The ledger's sources take the names the API
documents: `unsubscribe_link` and `complaint` become `unsubscribe`, `sms` becomes `sms_keyword`.
Rows recorded before keep a null hash: which words they were given under was never kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSONType = sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql")

# Old source → new source. Going down, `unsubscribe` becomes `unsubscribe_link`: a complaint cannot
# be told apart from an unsubscribe any more.
RENAMED = {"unsubscribe_link": "unsubscribe", "complaint": "unsubscribe", "sms": "sms_keyword"}


def upgrade() -> None:
    op.create_table(
        "privacy_notices",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("text", JSONType, nullable=False),
        sa.Column("requires_fresh_consent", JSONType, nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(length=160), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_privacy_notices"),
        sa.UniqueConstraint("version", name="uq_privacy_notices_version"),
    )
    with op.batch_alter_table("consent_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notice_hash", sa.String(length=64), nullable=True))
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notice_version", sa.String(length=32), nullable=True))
    ledger = sa.table("consent_ledger", sa.column("source", sa.String))
    for old, new in RENAMED.items():
        op.execute(ledger.update().where(ledger.c.source == old).values(source=new))


def downgrade() -> None:
    ledger = sa.table("consent_ledger", sa.column("source", sa.String))
    op.execute(ledger.update().where(ledger.c.source == "sms_keyword").values(source="sms"))
    op.execute(ledger.update().where(ledger.c.source == "unsubscribe").values(source="unsubscribe_link"))
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_column("notice_version")
    with op.batch_alter_table("consent_ledger", schema=None) as batch_op:
        batch_op.drop_column("notice_hash")
    op.drop_table("privacy_notices")
