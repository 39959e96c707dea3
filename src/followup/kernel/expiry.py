"""Rows past a retention period, counted and purged in bounded batches: the statements each
domain's repository runs for `data_rights.retention`.

A batch reads the keys of at most `limit` rows, oldest first, through the index the caller's
predicate is made for (migration 0024), then deletes or clears those rows by key: one batch
touches `limit` rows whatever the table's size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session


def below_newest(key: InstrumentedAttribute[int]) -> ColumnElement[bool]:
    """True for every row but the one with the greatest key: on SQLite, a table whose ids are
    written elsewhere keeps its newest row, since SQLite gives a new row the greatest rowid plus one
    and would hand a deleted newest row's id out again."""
    return key < select(func.max(key)).scalar_subquery()


def count(session: Session, key: InstrumentedAttribute[Any], where: Sequence[ColumnElement[bool]]) -> int:
    return int(session.scalar(select(func.count(key)).where(*where)) or 0)


def _batch(
    key: InstrumentedAttribute[Any],
    where: Sequence[ColumnElement[bool]],
    order_by: InstrumentedAttribute[Any],
    limit: int,
) -> Any:
    return select(key).where(*where).order_by(order_by, key).limit(limit)


def delete_batch(
    session: Session,
    model: type[Any],
    key: InstrumentedAttribute[Any],
    where: Sequence[ColumnElement[bool]],
    *,
    order_by: InstrumentedAttribute[Any],
    limit: int,
) -> int:
    """Delete up to `limit` rows matching `where`, oldest first; returns how many went."""
    ids = list(session.scalars(_batch(key, where, order_by, limit)))
    if not ids:
        return 0
    session.execute(delete(model).where(key.in_(ids)), execution_options={"synchronize_session": False})
    return len(ids)


def clear_batch(
    session: Session,
    model: type[Any],
    key: InstrumentedAttribute[Any],
    where: Sequence[ColumnElement[bool]],
    *,
    values: Mapping[str, Any],
    order_by: InstrumentedAttribute[Any],
    limit: int,
) -> int:
    """Set `values` (the columns that expire) on up to `limit` rows matching `where`, oldest first;
    `where` must no longer hold once they are set, so the next batch finds the next rows."""
    ids = list(session.scalars(_batch(key, where, order_by, limit)))
    if not ids:
        return 0
    session.execute(
        update(model).where(key.in_(ids)).values(**values), execution_options={"synchronize_session": False}
    )
    return len(ids)
