"""Ingest: events/s through `events.service.ingest_events` with three active strategies, against
inserting the same rows with `executemany` into a bare table of the same columns."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from followup.bench.measure import Measurement, peak_rss_mb
from followup.bench.world import (
    EPOCH,
    bench_settings,
    create_reachable_customers,
    create_strategies,
    event_batches,
    migrate,
    sqlite_url,
)
from followup.events import service as events
from followup.followups.models import Followup
from followup.kernel.db import make_engine
from followup.kernel.time import ManualClock
from followup.runtime import build_runtime

# Half a month after the first event: the engine sees a wallet's backlog arriving.
INGEST_NOW = EPOCH + dt.timedelta(days=15)
BARE_COLUMNS = "event_id, type, customer_id, occurred_at, received_at, amount, currency, attributes"


def customer_pool(events_total: int) -> int:
    """About ten events per customer, as in the demo's month."""
    return max(10, events_total // 10)


def schema_url(postgres_url: str, schema: str) -> str:
    separator = "&" if "?" in postgres_url else "?"
    return f"{postgres_url}{separator}options=-csearch_path%3D{schema}"


def postgres_schema(postgres_url: str, schema: str, *, create: bool) -> None:
    engine = make_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            if create:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        engine.dispose()


def run_engine(*, events_total: int, batch_size: int, workdir: str, postgres_url: str | None = None) -> Measurement:
    """A fresh database (a new SQLite file, or a dedicated PostgreSQL schema dropped afterwards)."""
    schema = f"followup_bench_{uuid.uuid4().hex[:12]}"
    if postgres_url:
        postgres_schema(postgres_url, schema, create=True)
        url = schema_url(postgres_url, schema)
    else:
        url = sqlite_url(Path(workdir) / f"ingest-{uuid.uuid4().hex[:8]}.db")
    try:
        migrate(url)
        runtime = build_runtime(bench_settings(url), clock=ManualClock(INGEST_NOW))
        try:
            create_strategies(runtime)
            pool = customer_pool(events_total)
            create_reachable_customers(runtime, min(2000, pool))
            accepted = 0
            seconds = 0.0
            for batch in event_batches(events_total, batch_size, customer_pool=pool):
                started = time.perf_counter()
                with runtime.session() as session:
                    result = events.ingest_events(session, batch, now=runtime.clock.now(), settings=runtime.settings)
                seconds += time.perf_counter() - started
                accepted += result.accepted
            with runtime.read_session() as session:
                followups = session.scalar(select(func.count()).select_from(Followup)) or 0
                planned = (
                    session.scalar(select(func.count()).select_from(Followup).where(Followup.status == "planned")) or 0
                )
        finally:
            runtime.close()
    finally:
        if postgres_url:
            postgres_schema(postgres_url, schema, create=False)
    return Measurement(
        count=accepted,
        seconds=seconds,
        peak_rss_mb=peak_rss_mb(),
        extra={"followups": followups, "planned": planned, "customers": pool},
    )


def _bare_rows(batch: list[dict[str, Any]], received_at: str) -> list[tuple[Any, ...]]:
    return [
        (
            e["event_id"],
            e["type"],
            e["customer_id"],
            e["occurred_at"],
            received_at,
            e.get("amount"),
            e.get("currency"),
            json.dumps(e["attributes"]),
        )
        for e in batch
    ]


def run_baseline(*, events_total: int, batch_size: int, workdir: str, postgres_url: str | None = None) -> Measurement:
    """The floor: the same rows, one executemany and one commit per batch, no index, no checks."""
    if postgres_url:
        return _baseline_postgres(events_total=events_total, batch_size=batch_size, postgres_url=postgres_url)
    path = Path(workdir) / f"ingest-raw-{uuid.uuid4().hex[:8]}.db"
    connection = sqlite3.connect(path)
    # The engine's own pragmas (kernel.db), so the baseline is not flattered by weaker durability.
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, event_id TEXT, type TEXT, customer_id TEXT, "
        "occurred_at TEXT, received_at TEXT, amount INTEGER, currency TEXT, attributes TEXT)"
    )
    connection.commit()
    received_at = INGEST_NOW.isoformat()
    count = 0
    seconds = 0.0
    try:
        for batch in event_batches(events_total, batch_size, customer_pool=customer_pool(events_total)):
            started = time.perf_counter()
            connection.executemany(
                f"INSERT INTO events ({BARE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 - constant
                _bare_rows(batch, received_at),
            )
            connection.commit()
            seconds += time.perf_counter() - started
            count += len(batch)
    finally:
        connection.close()
    return Measurement(count=count, seconds=seconds, peak_rss_mb=peak_rss_mb())


def _baseline_postgres(*, events_total: int, batch_size: int, postgres_url: str) -> Measurement:
    import psycopg  # noqa: PLC0415 - only this path needs the driver directly

    conninfo = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    schema = f"followup_bench_raw_{uuid.uuid4().hex[:12]}"
    received_at = INGEST_NOW
    count = 0
    seconds = 0.0
    with psycopg.connect(conninfo) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
        try:
            connection.execute(
                f'CREATE TABLE "{schema}".events (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, '
                "event_id VARCHAR(128), type VARCHAR(64), customer_id VARCHAR(128), occurred_at TIMESTAMPTZ, "
                "received_at TIMESTAMPTZ, amount BIGINT, currency VARCHAR(3), attributes JSONB)"
            )
            connection.commit()
            for batch in event_batches(events_total, batch_size, customer_pool=customer_pool(events_total)):
                started = time.perf_counter()
                with connection.cursor() as cursor:
                    cursor.executemany(
                        f'INSERT INTO "{schema}".events ({BARE_COLUMNS}) '  # noqa: S608 - our own schema name
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        [(*row[:4], received_at, *row[5:]) for row in _bare_rows(batch, "")],
                    )
                connection.commit()
                seconds += time.perf_counter() - started
                count += len(batch)
        finally:
            connection.rollback()
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            connection.commit()
    return Measurement(count=count, seconds=seconds, peak_rss_mb=peak_rss_mb())


def main() -> None:
    """The engine side alone, in this process, for a profiler:
    python -m cProfile -o ingest.prof -m followup.bench.ingest --events 100000"""
    import argparse  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="followup-bench-") as workdir:
        measurement = run_engine(events_total=args.events, batch_size=args.batch, workdir=workdir)
    print(f"{measurement.count} events in {measurement.seconds:.2f}s: {measurement.rate:,.0f} events/s")


if __name__ == "__main__":
    main()
