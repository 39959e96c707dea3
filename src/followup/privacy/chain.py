"""The audit log's hash chain: the bytes each line's hash is taken over, and the walk that finds the
first line altered, removed or inserted.

Each line holds its place in the chain (`seq`, 1, 2, 3, … with no gap), the id of the line before it
(`prev_id`), that line's hash (`prev_hash`) and its own `hash`: SHA-256 over `canonical_bytes`. The
head (`audit_chain_head`, one row) holds the last line's sequence number, hash and id, so removing
the last lines shows too.

`canonical_bytes` is part of the stored data's format: every stored hash was taken over it, on
SQLite and PostgreSQL alike, so it never changes. A new form would need a new version tag and a
migration that re-chains the log.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

GENESIS = "0" * 64  # the `prev_hash` of the first line
_VERSION = "followup-audit/v1"
_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


@functools.lru_cache(maxsize=256)  # a transaction's lines share their time
def canonical_time(at: dt.datetime) -> str:
    """A time as the hash sees it: UTC, ISO 8601 with microseconds (what both databases keep)."""
    if at.tzinfo is None:  # SQLite gives stored times back naive, in UTC
        at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class ChainLine:
    """One audit line as the chain reads it."""

    id: int
    seq: int
    prev_id: int | None
    at: dt.datetime
    actor: str
    subject_type: str
    subject_id: str
    event: str
    old: Any
    new: Any
    prev_hash: str
    hash: str


def canonical_bytes(
    *,
    seq: int,
    prev_id: int | None,
    at: dt.datetime,
    actor: str,
    subject_type: str,
    subject_id: str,
    event: str,
    old: Any,
    new: Any,
    prev_hash: str,
) -> bytes:
    """One JSON array, keys sorted, no spaces, UTF-8 (not \\u escapes). The line's own id is not in
    it (the database gives it only once the line is written); the next line's `prev_id` covers it."""
    fields = [_VERSION, seq, prev_id, canonical_time(at), actor, subject_type, subject_id, event, old, new, prev_hash]
    return _ENCODE(fields).encode()


def line_hash(**fields: Any) -> str:
    return hashlib.sha256(canonical_bytes(**fields)).hexdigest()


def hash_of(line: ChainLine) -> str:
    """The hash the line's stored fields give now (equal to `line.hash` unless it was changed)."""
    return line_hash(
        seq=line.seq,
        prev_id=line.prev_id,
        at=line.at,
        actor=line.actor,
        subject_type=line.subject_type,
        subject_id=line.subject_id,
        event=line.event,
        old=line.old,
        new=line.new,
        prev_hash=line.prev_hash,
    )


@dataclass(frozen=True)
class ChainHead:
    seq: int
    hash: str
    last_id: int | None


How = Literal["altered", "removed", "inserted"]


@dataclass(frozen=True)
class ChainBreak:
    """The first line found wrong: its id, what happened to it, and how that shows."""

    row_id: int | None
    how: How
    why: str

    def __str__(self) -> str:
        where = f"row {self.row_id}" if self.row_id is not None else "its head"
        return f"audit log broken at {where}: {self.how} ({self.why})"


@dataclass(frozen=True)
class ChainVerdict:
    rows: int
    head: ChainHead | None
    broken: ChainBreak | None


@dataclass
class _Previous:
    id: int | None = None
    seq: int = 0
    hash: str = GENESIS


def walk(lines: Iterable[ChainLine], head: ChainHead | None) -> ChainVerdict:
    """Walk the lines in `seq` order (any number: one line is held ahead, nothing more) and name the
    first one altered, removed or inserted, checked against the head at the end."""
    previous = _Previous()
    count = 0
    ahead = _Peekable(lines)
    for line in ahead:
        problem = _check(line, previous, ahead.peek(), head)
        if problem is not None:
            return ChainVerdict(rows=count, head=head, broken=problem)
        count += 1
        previous = _Previous(id=line.id, seq=line.seq, hash=line.hash)
    return ChainVerdict(rows=count, head=head, broken=_check_end(previous, head))


def _check(
    line: ChainLine, previous: _Previous, following: ChainLine | None, head: ChainHead | None
) -> ChainBreak | None:
    intact = hash_of(line) == line.hash
    linked = line.prev_id == previous.id and line.prev_hash == previous.hash
    in_order = line.seq == previous.seq + 1
    if following is not None and following.prev_id == previous.id and following.prev_hash == previous.hash:
        # The line after this one follows the line before it: this one was put in between, however
        # well its own hash and links were forged.
        return ChainBreak(line.id, "inserted", f"row {following.id} follows the row before it")
    if intact and linked and in_order and (head is None or line.seq <= head.seq):
        return None
    if head is not None and line.seq > head.seq:
        return ChainBreak(line.id, "inserted", f"it comes after the head, at sequence {head.seq}")
    if not intact and linked:
        return ChainBreak(line.id, "altered", "its fields no longer give its hash")
    if intact and line.prev_id == previous.id and previous.id is not None:
        # It names the right line before it, but that line's hash has changed since.
        return ChainBreak(previous.id, "altered", f"row {line.id} holds an earlier hash of it")
    if line.prev_id is not None and line.prev_id != previous.id and line.seq > previous.seq + 1:
        return ChainBreak(line.prev_id, "removed", f"row {line.id} names it as the row before it")
    return ChainBreak(line.id, "inserted", "neither its fields nor its place fit the chain")


def _check_end(last: _Previous, head: ChainHead | None) -> ChainBreak | None:
    if head is None:
        if last.id is None:
            return None
        return ChainBreak(None, "removed", f"the head is missing; the last row is {last.id}")
    if head.seq > last.seq:
        return ChainBreak(head.last_id, "removed", f"the head ends at sequence {head.seq}, the rows at {last.seq}")
    if head.last_id != last.id or head.hash != last.hash:
        return ChainBreak(last.id, "altered", "the head holds another hash or id for the last row")
    return None


class _Peekable(Iterator[ChainLine]):
    def __init__(self, lines: Iterable[ChainLine]) -> None:
        self._lines = iter(lines)
        self._next: ChainLine | None = next(self._lines, None)

    def __next__(self) -> ChainLine:
        if self._next is None:
            raise StopIteration
        line, self._next = self._next, next(self._lines, None)
        return line

    def peek(self) -> ChainLine | None:
        return self._next
