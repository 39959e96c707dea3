"""Wave planning: follow-ups planned per second for one wave of a periodic strategy over a large
customer base with a three-condition audience, against a raw `INSERT … SELECT` of the same rows.

The customer base is the segment preview's (`bench.segments`), with consent to in-app feedback
for everyone, built once per bench run; each run of either side starts from a fresh copy of it
(copying is not timed). The engine side is what a worker does when the wave fires: the audience
found in SQL, the sticky sample, the contact policy for every customer, the follow-ups, their
history and the contact reservations written, committed. The baseline writes the same follow-up
rows with one statement, its predicate written by hand, and commits.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import time
import uuid
from pathlib import Path

from followup.bench.measure import Measurement, peak_rss_mb
from followup.bench.segments import NOW, RAW_PREDICATE, RULE, customer_world
from followup.bench.world import bench_settings, sqlite_url
from followup.customers.schemas import epoch_day
from followup.kernel.actors import SYSTEM
from followup.kernel.time import ManualClock
from followup.runtime import build_runtime
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
_ROWS = "SELECT 1, c.id, ?, 'planned', ?, 'invite', ?, ? FROM customers c"
RAW_INSERT = f"INSERT INTO followups ({_COLUMNS}) {_ROWS}{RAW_PREDICATE}"


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
    copy = Path(workdir) / f"wave-run-{uuid.uuid4().hex[:8]}.db"
    shutil.copyfile(_wave_world(workdir, customers), copy)
    return copy


def run_engine(*, customers: int, workdir: str) -> Measurement:
    path = _fresh_copy(workdir, customers)
    created = NOW - dt.timedelta(days=1)
    runtime = build_runtime(bench_settings(sqlite_url(path)), clock=ManualClock(created))
    try:
        limits = runtime.settings.input_limits
        with runtime.session() as session:
            surveys.create_survey(session, SurveyCreate.model_validate(SURVEY), limits=limits, now=created)
            strategies.create_strategy(
                session,
                StrategyCreate.model_validate(STRATEGY),
                available_channels=set(runtime.channels),
                limits=limits,
                actor=SYSTEM,
                now=created,
            )
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
        path.unlink(missing_ok=True)
    return Measurement(
        count=wave.planned,
        seconds=seconds,
        peak_rss_mb=peak_rss_mb(),
        extra={"claimed": claimed, "audience": wave.audience, "suppressed": wave.suppressed},
    )


def run_baseline(*, customers: int, workdir: str) -> Measurement:
    path = _fresh_copy(workdir, customers)
    today = epoch_day(NOW.date())
    at = NOW.isoformat(" ", "microseconds")[:26]
    plan = '{"strategy_key":"bench-panel","channels":["inapp"],"survey_version_id":1,"expire_after_s":604800}'
    conn = sqlite3.connect(path)
    try:
        started = time.perf_counter()
        cursor = conn.execute(RAW_INSERT, (f"wave:{wave_key(NOW)}", plan, at, at, today - 29, today))
        conn.commit()
        seconds = time.perf_counter() - started
        planned = cursor.rowcount
    finally:
        conn.close()
        path.unlink(missing_ok=True)
    return Measurement(count=planned, seconds=seconds, peak_rss_mb=peak_rss_mb(), extra={"planned": planned})
