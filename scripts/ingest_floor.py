"""The floor under SQLite ingest: the writes ingest cannot do without, through raw sqlite3.

Per batch, on a database migrated like the engine's, with the engine's pragmas: one upsert that
creates or bumps every customer of the batch (event count, last event time) and returns their ids,
then one insert of the events with dedupe on event_id returning their ids, and a commit. No
validation, no strategies, no planning, no SQLAlchemy. Next to it, in the same process, the bench's
own raw baseline (`run_baseline`): the same rows appended to a bare table with executemany.

    .venv/bin/python scripts/ingest_floor.py --events 1000000

The ratio floor/baseline bounds what the engine's ingest can reach against that baseline on this
machine; docs/performance.md quotes a run.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from followup.bench.ingest import INGEST_NOW, customer_pool, run_baseline
from followup.bench.world import event_batches, migrate, sqlite_url

UPSERT = (
    "INSERT INTO customers (external_id, locale, time_zone, attributes, event_count, last_event_at, created_at, "
    "updated_at) VALUES {} ON CONFLICT (external_id) DO UPDATE SET event_count = customers.event_count + "
    "excluded.event_count, last_event_at = max(customers.last_event_at, excluded.last_event_at) "
    "RETURNING external_id, id"
)
EVENTS = (
    "INSERT INTO events (event_id, type, customer_id, occurred_at, received_at, amount, currency, attributes) "
    "VALUES {} ON CONFLICT (event_id) DO NOTHING RETURNING event_id, id"
)


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL", "cache_size=-32768"):
        connection.execute(f"PRAGMA {pragma}")
    return connection


def _chunks(rows: list[tuple[object, ...]], width: int) -> list[list[tuple[object, ...]]]:
    size = 30_000 // width
    return [rows[start : start + size] for start in range(0, len(rows), size)]


def _run(connection: sqlite3.Connection, sql: str, rows: list[tuple[object, ...]], width: int) -> dict[str, int]:
    out: dict[str, int] = {}
    group = "(" + ", ".join("?" * width) + ")"
    for part in _chunks(rows, width):
        statement = sql.format(", ".join([group] * len(part)))
        out.update(connection.execute(statement, [value for row in part for value in row]).fetchall())
    return out


def floor(events: int, batch: int, workdir: Path) -> float:
    path = workdir / "floor.db"
    migrate(sqlite_url(path))
    connection = _connect(path)
    now = INGEST_NOW.replace(tzinfo=None).isoformat(" ", "microseconds")
    seconds = 0.0
    for rows in event_batches(events, batch, customer_pool=customer_pool(events)):
        started = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        activity: dict[str, tuple[int, str]] = {}
        for event in rows:
            count, latest = activity.get(event["customer_id"], (0, ""))
            activity[event["customer_id"]] = (count + 1, max(latest, event["occurred_at"]))
        customers = [(eid, "zh-CN", "Asia/Shanghai", "{}", n, last, now, now) for eid, (n, last) in activity.items()]
        ids = _run(connection, UPSERT, sorted(customers), 8)
        stored = [
            (
                e["event_id"],
                e["type"],
                ids[e["customer_id"]],
                e["occurred_at"],
                now,
                e.get("amount"),
                e.get("currency"),
                json.dumps(e["attributes"]),
            )
            for e in rows
        ]
        _run(connection, EVENTS, stored, 8)
        connection.execute("COMMIT")
        seconds += time.perf_counter() - started
    connection.close()
    return events / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="followup-floor-") as workdir:
        low = floor(args.events, args.batch, Path(workdir))
        raw = run_baseline(events_total=args.events, batch_size=args.batch, workdir=workdir).rate
    print(f"floor {low:,.0f} events/s, baseline {raw:,.0f} events/s, floor/baseline {low / raw:.3f}")


if __name__ == "__main__":
    main()
