"""the audit log hash-chained, with no personal text in it

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03

Each audit line gets its place in the chain (`seq`), the id and hash of the line before it and its
own hash (`followup.privacy.chain`); `audit_chain_head` holds the last line, moved by a trigger on
every line written. The lines already there are chained in id order, so an upgraded database
verifies (`followup audit verify`).

Before they are chained, the old lines lose the words staff typed: a closed case's resolution and
a reopened case's reason become "sealed". Both are on the case's timeline already: the resolution
sealed under the customer's key, the reason in clear until `followup db upgrade` seals it (sealing
needs the master key, which a migration does not have; see `cases.seal_reopen_reasons`).

The trigger lives on `audit_log`: a later migration that copies the table (SQLite's batch mode)
must create it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from followup.kernel.db import JSONType, UTCDateTime
from followup.privacy.chain import GENESIS, line_hash

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAGE = 1000
# The only reason a customer gives (their "no" to "did we solve it?"): our words, kept as they are.
CUSTOMER_REASON = "the customer says it is not solved"
CUSTOMER_RESOLUTION = "The customer says it is solved."

_audit = sa.table(
    "audit_log",
    sa.column("id", sa.BigInteger()),
    sa.column("at", UTCDateTime()),
    sa.column("actor", sa.String()),
    sa.column("subject_type", sa.String()),
    sa.column("subject_id", sa.String()),
    sa.column("event", sa.String()),
    sa.column("old", JSONType),
    sa.column("new", JSONType),
    sa.column("seq", sa.BigInteger()),
    sa.column("prev_id", sa.BigInteger()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)

SQLITE_TRIGGER = """
CREATE TRIGGER audit_log_moves_head AFTER INSERT ON audit_log
BEGIN
    INSERT OR REPLACE INTO audit_chain_head (id, seq, hash, last_id) VALUES (1, NEW.seq, NEW.hash, NEW.id);
END
"""
POSTGRES_FUNCTION = """
CREATE FUNCTION audit_log_moves_head() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_chain_head (id, seq, hash, last_id) VALUES (1, NEW.seq, NEW.hash, NEW.id)
    ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, last_id = EXCLUDED.last_id;
    RETURN NULL;
END
$$
"""
POSTGRES_TRIGGER = (
    "CREATE TRIGGER audit_log_moves_head AFTER INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_moves_head()"
)


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_chain_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    seq, last_hash, last_id = _chain_existing_lines(op.get_bind())
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index("ix_audit_log_seq", ["seq"], unique=True)
    op.execute(
        sa.text("INSERT INTO audit_chain_head (id, seq, hash, last_id) VALUES (1, :seq, :hash, :last_id)").bindparams(
            seq=seq, hash=last_hash, last_id=last_id
        )
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        op.execute(POSTGRES_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)


def _chain_existing_lines(connection: sa.Connection) -> tuple[int, str, int | None]:
    """Chain the lines already written, in id order, a page at a time; the last one's place."""
    seq, prev_hash, prev_id = 0, GENESIS, None
    after = -1
    while True:
        rows = connection.execute(
            sa.select(_audit).where(_audit.c.id > after).order_by(_audit.c.id).limit(PAGE)
        ).mappings()
        page = list(rows)
        if not page:
            return seq, prev_hash, prev_id
        updates: list[dict[str, Any]] = []
        for row in page:
            seq += 1
            new = _without_typed_words(row["event"], row["new"])
            digest = line_hash(
                seq=seq,
                prev_id=prev_id,
                at=row["at"],
                actor=row["actor"],
                subject_type=row["subject_type"],
                subject_id=row["subject_id"],
                event=row["event"],
                old=row["old"],
                new=new,
                prev_hash=prev_hash,
            )
            updates.append(
                {
                    "row_id": row["id"],
                    "b_new": new,
                    "b_seq": seq,
                    "b_prev_id": prev_id,
                    "b_prev_hash": prev_hash,
                    "b_hash": digest,
                }
            )
            prev_hash, prev_id = digest, row["id"]
        connection.execute(
            _audit.update()
            .where(_audit.c.id == sa.bindparam("row_id"))
            .values(
                new=sa.bindparam("b_new", type_=JSONType),
                seq=sa.bindparam("b_seq"),
                prev_id=sa.bindparam("b_prev_id"),
                prev_hash=sa.bindparam("b_prev_hash"),
                hash=sa.bindparam("b_hash"),
            ),
            updates,
        )
        after = page[-1]["id"]


def _without_typed_words(event: str, new: Any) -> Any:
    """A line's `new` with a resolution's or a reopening reason's words replaced by "sealed"."""
    if not isinstance(new, dict):
        return new
    if event == "case.closed" and new.get("resolution") not in (None, CUSTOMER_RESOLUTION):
        return {**new, "resolution": "sealed"}
    if event == "case.reopened" and new.get("why") not in (None, CUSTOMER_REASON, "by hand"):
        return {**new, "why": "sealed"}
    return new


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_moves_head ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_moves_head()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_moves_head")
    op.drop_table("audit_chain_head")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_seq")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("prev_id")
        batch_op.drop_column("seq")
