"""Segment preview: customers previewed per second for a three-condition segment over a large
customer base, against a raw `COUNT(*)` with the same predicate through `sqlite3`.

The world (customers with a locale, an event count and a tier, and their payment buckets) is
built once per bench run into a SQLite file and reused by every run of both sides; building it
is not timed. The engine side is `segments.preview_rule` (count by locale and a masked sample of
20) on a fresh runtime; the baseline counts with the same predicate, written by hand.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from followup.bench.measure import Measurement, peak_rss_mb
from followup.bench.world import bench_settings, migrate, sqlite_url
from followup.customers.schemas import epoch_day
from followup.kernel.time import ManualClock
from followup.rules.tree import Rule
from followup.runtime import build_runtime
from followup.strategies import segments

NOW = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)
RULE = {
    "all": [
        {"field": "customer.locale", "op": "eq", "value": "zh-CN"},
        {"field": "customer.attributes.tier", "op": "in", "value": ["gold", "platinum"]},
        {"field": "customer.stats.payments_30d", "op": "gte", "value": 2},
    ]
}
# The same predicate, as a person would write it against the tables (two parameters: the window).
RAW_PREDICATE = """
WHERE c.locale = 'zh-CN'
  AND json_extract(c.attributes, '$.tier') IN ('gold', 'platinum')
  AND (SELECT COALESCE(SUM(d.events), 0) FROM customer_activity_days d
       WHERE d.customer_id = c.id AND d.day >= ? AND d.day <= ? AND d.type = 'payment.succeeded') >= 2
"""
RAW_COUNT = "SELECT COUNT(*) FROM customers c" + RAW_PREDICATE  # noqa: S608 - constants only


def customer_rows(customers: int, at: object) -> Iterator[tuple[object, ...]]:
    """(id, external_id, locale, attributes JSON, event_count, created_at, updated_at) per customer."""
    for number in range(1, customers + 1):
        attributes = '{"tier":"%s"}' % ("gold", "silver", "basic", "platinum")[number % 4]  # noqa: UP031
        yield (number, f"seg-{number:07d}", "zh-CN" if number % 3 else "en", attributes, number % 11, at, at)


def payment_rows(customers: int) -> Iterator[tuple[object, ...]]:
    """A fifth of the customers paid on three of the last 45 days: their daily activity buckets,
    (customer_id, day, type, feature, events, amount, first_at, last_at)."""
    rng = random.Random(11)  # noqa: S311 - a synthetic world, not a secret
    today = epoch_day(NOW.date())
    for number in range(5, customers + 1, 5):
        for offset in rng.sample(range(45), 3):
            day = today - offset
            second = day * 86400 + 3600
            yield (number, day, "payment.succeeded", "", 1, 100, second, second)


def customer_world(workdir: str, customers: int) -> Path:
    """The customer base, built on first use: a fifth of the customers paid on a few days."""
    path = Path(workdir) / f"segments-{customers}.db"
    if path.exists():
        return path
    building = path.with_suffix(".building")
    migrate(sqlite_url(building))
    conn = sqlite3.connect(building)
    try:
        conn.executemany(
            "INSERT INTO customers (id, external_id, locale, time_zone, attributes, event_count, created_at, "
            "updated_at) VALUES (?, ?, ?, 'Asia/Shanghai', ?, ?, ?, ?)",
            customer_rows(customers, NOW.isoformat(" ", "microseconds")[:26]),
        )
        conn.executemany(
            "INSERT INTO customer_activity_days (customer_id, day, type, feature, events, amount, first_at, last_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            payment_rows(customers),
        )
        conn.commit()
        # Everything into the database file itself before it is renamed: its WAL keeps the old name.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    building.rename(path)
    return path


def run_engine(*, customers: int, workdir: str) -> Measurement:
    path = customer_world(workdir, customers)
    runtime = build_runtime(bench_settings(sqlite_url(path)), clock=ManualClock(NOW))
    try:
        rule = Rule.model_validate({"root": RULE}).root
        started = time.perf_counter()
        with runtime.read_session() as session:
            preview = segments.preview_rule(session, rule, now=NOW, keys=runtime.keys)
        seconds = time.perf_counter() - started
    finally:
        runtime.close()
    return Measurement(
        count=customers,
        seconds=seconds,
        peak_rss_mb=peak_rss_mb(),
        extra={"matched": preview.count, "sample": len(preview.sample)},
    )


def run_baseline(*, customers: int, workdir: str) -> Measurement:
    path = customer_world(workdir, customers)
    today = epoch_day(NOW.date())
    conn = sqlite3.connect(path)
    try:
        started = time.perf_counter()
        (matched,) = conn.execute(RAW_COUNT, (today - 29, today)).fetchone()
        seconds = time.perf_counter() - started
    finally:
        conn.close()
    return Measurement(count=customers, seconds=seconds, peak_rss_mb=peak_rss_mb(), extra={"matched": matched})
