"""Wave planning: follow-ups planned per second for one wave of a periodic strategy over a large
customer base with a three-condition audience, against a raw `INSERT … SELECT` of the same rows.

The customer base is the segment preview's (`bench.segments`), with consent to in-app feedback
for everyone, built once per bench run; each run of either side starts from a fresh copy of it
(copying is not timed). The engine side is what a worker does when the wave fires: the audience
found in SQL, the sticky sample, the contact policy for every customer, the follow-ups, their
history and the contact reservations written, committed. The baseline writes the same follow-up
rows with one statement, its predicate written by hand, and commits.

On PostgreSQL (`--postgres`) each run of either side gets a schema of its own, filled by COPY with
the same customers, payments and consents (not timed) and analysed, and dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from followup.bench.ingest import postgres_schema, schema_url
from followup.bench.measure import Measurement, peak_rss_mb
from followup.bench.segments import NOW, RAW_PREDICATE, RULE, customer_rows, customer_world, payment_rows
from followup.bench.world import bench_settings, migrate, sqlite_url
from followup.customers.schemas import epoch_day
from followup.kernel.actors import SYSTEM
from followup.kernel.time import ManualClock
from followup.runtime import Runtime, build_runtime
from followup.strategies import service as strategies
from followup.strategies.schemas import StrategyCreate
from followup.strategies.waves import run_due_waves, wave_key
from followup.surveys import service as surveys
from followup.surveys.schemas import SurveyCreate

# 10:00 on the 1st in Shanghai: bench.segments.NOW, so the wave fires then.
STRATEGY = {
    "key": "bench-panel",
    "kind": "periodic",
    "schedule": {"cron": "0 10 1 * *", "time_zone": "Asia/Shanghai"},
    "audience": RULE,
    "sample_rate": 1.0,
    "max_per_wave": 1_000_000,
    "spread": "PT4H",
    "channels": ["inapp"],
    "survey": "bench-nps",
}
SURVEY = {
    "key": "bench-nps",
    "title": {"zh-CN": "钱包使用感受", "en": "How is the wallet doing?"},
    "questions": [{"id": "nps", "type": "nps", "prompt": {"zh-CN": "推荐意愿？", "en": "Would you recommend us?"}}],
}

# The rows a wave plans, as a person would write them, with the segment preview's predicate.
_COLUMNS = "strategy_id, customer_id, run_key, status, plan, next_step, due_at, planned_at"
_ROWS = "SELECT ?, c.id, ?, 'planned', ?, 'invite', ?, ? FROM customers c"
RAW_INSERT = f"INSERT INTO followups ({_COLUMNS}) {_ROWS}{RAW_PREDICATE}"
# The same on PostgreSQL, whose JSON is read with ->> (the strategy's id is a parameter: 1 is
# not guaranteed, and the foreign key holds).
RAW_INSERT_POSTGRES = (
    f"INSERT INTO followups ({_COLUMNS}) "  # noqa: S608 - constants only
    "SELECT %s, c.id, %s, 'planned', %s::json, 'invite', %s, %s FROM customers c "
    "WHERE c.locale = 'zh-CN' AND c.attributes->>'tier' IN ('gold', 'platinum') "
    "AND (SELECT COALESCE(SUM(d.events), 0) FROM customer_activity_days d WHERE d.customer_id = c.id "
    "AND d.day >= %s AND d.day <= %s AND d.type = 'payment.succeeded') >= 2"
)
PLAN = (  # the plan the engine writes for this strategy, byte for byte
    '{"strategy_key":"bench-panel","channels":["inapp"],"survey_version_id":1,"expire_after_s":604800,'
    '"strategy_version":1}'
)


def _postgres_world(postgres_url: str, customers: int) -> str:
    """A fresh schema holding the wave world; returns its name. Filled by COPY, then analysed."""
    schema = f"followup_bench_wave_{uuid.uuid4().hex[:12]}"
    postgres_schema(postgres_url, schema, create=True)
    url = schema_url(postgres_url, schema)
    migrate(url)
    consented = NOW - dt.timedelta(days=60)
    with psycopg.connect(_psycopg_url(postgres_url), options=f"-csearch_path={schema}") as conn:
        with conn.cursor() as cursor:
            columns = "id, external_id, locale, attributes, event_count, created_at, updated_at, time_zone"
            with cursor.copy(f"COPY customers ({columns}) FROM STDIN") as copy:
                for row in customer_rows(customers, NOW):
                    copy.write_row((*row, "Asia/Shanghai"))
            columns = "customer_id, day, type, feature, events, amount, first_at, last_at"
            with cursor.copy(f"COPY customer_activity_days ({columns}) FROM STDIN") as copy:
                for row in payment_rows(customers):
                    copy.write_row(row)
            with cursor.copy("COPY consents (customer_id, purpose, channel, granted, updated_at) FROM STDIN") as copy:
                for number in range(1, customers + 1):
                    copy.write_row((number, "feedback", "inapp", True, consented))
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")
    return schema


def _psycopg_url(postgres_url: str) -> str:
    """The SQLAlchemy URL as libpq takes it."""
    return make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _set_up(runtime: Runtime, created: dt.datetime) -> int:
    """The survey and the panel, created the day before the wave; returns the strategy's id."""
    limits = runtime.settings.input_limits
    with runtime.session() as session:
        surveys.create_survey(session, SurveyCreate.model_validate(SURVEY), limits=limits, now=created)
        strategy = strategies.create_strategy(
            session,
            StrategyCreate.model_validate(STRATEGY),
            available_channels=set(runtime.channels),
            limits=limits,
            actor=SYSTEM,
            now=created,
        )
        return strategy.id


def _wave_world(workdir: str, customers: int) -> Path:
    """The segment world with in-app consent for everyone, built on first use."""
    path = Path(workdir) / f"waves-{customers}.db"
    if path.exists():
        return path
    building = path.with_suffix(".building")
    shutil.copyfile(customer_world(workdir, customers), building)
    at = (NOW - dt.timedelta(days=60)).isoformat(" ", "microseconds")[:26]
    conn = sqlite3.connect(building)
    try:
        conn.execute(
            "INSERT INTO consents (customer_id, purpose, channel, granted, updated_at) "
            "SELECT id, 'feedback', 'inapp', 1, ? FROM customers",
            (at,),
        )
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    building.rename(path)
    return path


def _fresh_copy(workdir: str, customers: int) -> Path:
    """A copy of the wave world for one run, on disk before the run starts: otherwise the first
    fsync inside the timed part (SQLite's checkpoint at commit) also writes out the copy's few
    hundred megabytes, about 0.2 s measured, for whichever side's timing it falls in."""
    copy = Path(workdir) / f"wave-run-{uuid.uuid4().hex[:8]}.db"
    shutil.copyfile(_wave_world(workdir, customers), copy)
    descriptor = os.open(copy, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return copy


def run_engine(*, customers: int, workdir: str, postgres_url: str | None = None) -> Measurement:
    schema = _postgres_world(postgres_url, customers) if postgres_url else None
    path = None if schema else _fresh_copy(workdir, customers)
    url = schema_url(postgres_url, schema) if postgres_url and schema else sqlite_url(path)  # type: ignore[arg-type]
    created = NOW - dt.timedelta(days=1)
    runtime = build_runtime(bench_settings(url), clock=ManualClock(created))
    try:
        _set_up(runtime, created)
        started = time.perf_counter()
        with runtime.session() as session:
            claimed = run_due_waves(session, now=NOW, settings=runtime.settings, keys=runtime.keys)
        seconds = time.perf_counter() - started
        with runtime.read_session() as session:
            rows, _ = strategies.list_waves(
                session, strategies.access_strategy(session, "bench-panel"), limit=1, offset=0
            )
        wave = rows[0]
    finally:
        runtime.close()
        if path is not None:
            path.unlink(missing_ok=True)
        if postgres_url and schema:
            postgres_schema(postgres_url, schema, create=False)
    return Measurement(
        count=wave.planned,
        seconds=seconds,
        peak_rss_mb=peak_rss_mb(),
        extra={"claimed": claimed, "audience": wave.audience, "suppressed": wave.suppressed},
    )


def run_baseline(*, customers: int, workdir: str, postgres_url: str | None = None) -> Measurement:
    if postgres_url:
        return _baseline_postgres(customers=customers, postgres_url=postgres_url)
    path = _fresh_copy(workdir, customers)
    created = NOW - dt.timedelta(days=1)
    runtime = build_runtime(bench_settings(sqlite_url(path)), clock=ManualClock(created))
    try:
        strategy_id = _set_up(runtime, created)  # the row the follow-ups' foreign key names
    finally:
        runtime.close()
    today = epoch_day(NOW.date())
    at = NOW.isoformat(" ", "microseconds")[:26]
    conn = sqlite3.connect(path)
    try:
        # The connection as the engine's are set up (kernel.db): the same foreign keys checked, the
        # same durability at commit, the same page cache.
        for pragma in ("foreign_keys=ON", "synchronous=NORMAL", "cache_size=-32768"):
            conn.execute(f"PRAGMA {pragma}")
        started = time.perf_counter()
        cursor = conn.execute(RAW_INSERT, (strategy_id, f"wave:{wave_key(NOW)}", PLAN, at, at, today - 29, today))
        conn.commit()
        seconds = time.perf_counter() - started
        planned = cursor.rowcount
    finally:
        conn.close()
        path.unlink(missing_ok=True)
    return Measurement(count=planned, seconds=seconds, peak_rss_mb=peak_rss_mb(), extra={"planned": planned})


def _baseline_postgres(*, customers: int, postgres_url: str) -> Measurement:
    schema = _postgres_world(postgres_url, customers)
    try:
        created = NOW - dt.timedelta(days=1)
        runtime = build_runtime(bench_settings(schema_url(postgres_url, schema)), clock=ManualClock(created))
        try:
            strategy_id = _set_up(runtime, created)  # the row the follow-ups' foreign key names
        finally:
            runtime.close()
        today = epoch_day(NOW.date())
        with psycopg.connect(_psycopg_url(postgres_url), options=f"-csearch_path={schema}") as conn:
            started = time.perf_counter()
            cursor = conn.execute(
                RAW_INSERT_POSTGRES, (strategy_id, f"wave:{wave_key(NOW)}", PLAN, NOW, NOW, today - 29, today)
            )
            conn.commit()
            seconds = time.perf_counter() - started
            planned = cursor.rowcount
    finally:
        postgres_schema(postgres_url, schema, create=False)
    return Measurement(count=planned, seconds=seconds, peak_rss_mb=peak_rss_mb(), extra={"planned": planned})
