"""short links, providers' health and shared rate limits

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02

SMS carries a short link (`/r/{code}`) in place of the survey's long one; each provider of a
channel has a row of health (failures in a row, its circuit, its last error); a provider's rate
limit is shared by every worker through a row holding its next free slot.

Customers answer by SMS too: each inbound message is kept once per provider's id (a replayed
webhook changes nothing), a response says how it was given (`source`: page, sms_reply, agent),
and a message may belong to no follow-up (an opt-out's confirmation); a message keeps its
follow-up's strategy, so the funnel per strategy reads messages alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "short_links",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("target_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_short_links_customer_id_customers", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("code_hash", name="pk_short_links"),
    )
    op.create_index("ix_short_links_customer_id", "short_links", ["customer_id"])
    op.create_table(
        "provider_states",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("failures_in_row", sa.Integer(), nullable=False),
        sa.Column("open_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("last_error_code", sa.String(length=64), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("channel", "provider", name="pk_provider_states"),
    )
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("next_slot", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_rate_limits"),
    )
    op.create_table(
        "inbound_messages",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_ref", sa.String(length=255), nullable=False),
        sa.Column("customer_id", BigId, nullable=True),
        sa.Column("followup_id", BigId, nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("score", sa.SmallInteger(), nullable=True),
        sa.Column("text_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_inbound_messages_customer_id_customers", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["followup_id"], ["followups.id"], name="fk_inbound_messages_followup_id_followups", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_inbound_messages"),
        sa.UniqueConstraint("provider", "provider_ref", name="uq_inbound_messages_provider_provider_ref"),
    )
    op.create_index("ix_inbound_messages_customer_id", "inbound_messages", ["customer_id"])
    op.create_index("ix_inbound_messages_followup_id", "inbound_messages", ["followup_id"])
    op.create_index("ix_invitations_customer_channel", "invitations", ["customer_id", "channel"])
    with op.batch_alter_table("responses") as batch:
        batch.add_column(sa.Column("source", sa.String(length=16), nullable=False, server_default="page"))
    with op.batch_alter_table("messages") as batch:
        batch.alter_column("followup_id", existing_type=BigId, nullable=True)
        batch.add_column(sa.Column("strategy_id", BigId, nullable=True))
    op.execute(
        "UPDATE messages SET strategy_id = (SELECT f.strategy_id FROM followups f WHERE f.id = messages.followup_id)"
    )


def downgrade() -> None:
    op.execute("DELETE FROM messages WHERE followup_id IS NULL")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("strategy_id")
        batch.alter_column("followup_id", existing_type=BigId, nullable=False)
    with op.batch_alter_table("responses") as batch:
        batch.drop_column("source")
    op.drop_index("ix_invitations_customer_channel", table_name="invitations")
    op.drop_index("ix_inbound_messages_followup_id", table_name="inbound_messages")
    op.drop_index("ix_inbound_messages_customer_id", table_name="inbound_messages")
    op.drop_table("inbound_messages")
    op.drop_table("rate_limits")
    op.drop_table("provider_states")
    op.drop_index("ix_short_links_customer_id", table_name="short_links")
    op.drop_table("short_links")
