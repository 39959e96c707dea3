"""Run the benchmarks, each side of each run in a fresh spawned process, and summarise them.

A figure is the median over `runs` runs; every run measures the engine and its raw baseline one
after the other on the same machine, so their ratio is not skewed by a quieter moment for one.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import multiprocessing
import os
import platform
import sqlite3
import statistics
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import text

from followup.bench.measure import Measurement
from followup.kernel.db import make_engine

Benchmark = Literal["ingest", "dispatch", "answer", "segments", "waves"]
BENCHMARKS: tuple[Benchmark, ...] = ("ingest", "dispatch", "answer", "segments", "waves")
CHILD_TIMEOUT = 3 * 3600.0


@dataclass(frozen=True)
class BenchOptions:
    events: int = 1_000_000
    batch: int = 5000
    messages: int = 1000
    requests: int = 2000
    runs: int = 3
    postgres_url: str | None = None
    postgres_events: int = 1_000_000
    only: Benchmark | None = None
    workdir: Path | None = None
    segment_customers: int = 1_000_000
    sms_concurrency: int = 4
    sms_latency_ms: int = 20


@dataclass
class Figure:
    """One benchmark's result: medians over runs, the raw runs, and peak memory of each side."""

    name: str
    unit: str
    size: int
    engine: float
    baseline: float
    ratio: float
    engine_peak_rss_mb: float
    baseline_peak_rss_mb: float
    engine_p50_ms: float | None = None
    engine_p99_ms: float | None = None
    baseline_p50_ms: float | None = None
    baseline_p99_ms: float | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)


def _run_in_child(target: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Executed in the spawned process: import `module:function`, call it, send back the result."""
    module_name, function_name = target.split(":")
    function: Callable[..., Measurement] = getattr(importlib.import_module(module_name), function_name)
    return function(**kwargs).as_dict()


def measure_in_child(target: str, kwargs: dict[str, Any]) -> Measurement:
    """A fresh interpreter per measurement: its peak memory is its own, its caches start cold."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        data = pool.submit(_run_in_child, target, kwargs).result(timeout=CHILD_TIMEOUT)
    return Measurement(**data)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: an observed latency, never an interpolated one."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def _summarise(name: str, unit: str, size: int, pairs: list[tuple[Measurement, Measurement]]) -> Figure:
    engine_rates = [engine.rate for engine, _ in pairs]
    baseline_rates = [baseline.rate for _, baseline in pairs]
    figure = Figure(
        name=name,
        unit=unit,
        size=size,
        engine=statistics.median(engine_rates),
        baseline=statistics.median(baseline_rates),
        ratio=statistics.median(engine.rate / baseline.rate for engine, baseline in pairs),
        engine_peak_rss_mb=max(engine.peak_rss_mb for engine, _ in pairs),
        baseline_peak_rss_mb=max(baseline.peak_rss_mb for _, baseline in pairs),
    )
    if all(engine.latencies_ms and baseline.latencies_ms for engine, baseline in pairs):
        figure.engine_p50_ms = statistics.median(percentile(e.latencies_ms, 0.50) for e, _ in pairs)
        figure.engine_p99_ms = statistics.median(percentile(e.latencies_ms, 0.99) for e, _ in pairs)
        figure.baseline_p50_ms = statistics.median(percentile(b.latencies_ms, 0.50) for _, b in pairs)
        figure.baseline_p99_ms = statistics.median(percentile(b.latencies_ms, 0.99) for _, b in pairs)
    for engine, baseline in pairs:
        figure.runs.append(
            {
                "engine": {**_without_latencies(engine), "rate": engine.rate},
                "baseline": {**_without_latencies(baseline), "rate": baseline.rate},
                "ratio": engine.rate / baseline.rate,
            }
        )
    return figure


def _without_latencies(measurement: Measurement) -> dict[str, Any]:
    return {key: value for key, value in measurement.as_dict().items() if key != "latencies_ms"}


Report = Callable[[str], None]


def _pairs(
    module: str, kwargs: dict[str, Any], *, runs: int, label: str, report: Report
) -> list[tuple[Measurement, Measurement]]:
    pairs = []
    for run in range(1, runs + 1):
        engine = measure_in_child(f"followup.bench.{module}:run_engine", kwargs)
        report(f"{label} run {run}/{runs}: engine {engine.rate:,.1f}/s")
        baseline = measure_in_child(f"followup.bench.{module}:run_baseline", kwargs)
        report(f"{label} run {run}/{runs}: baseline {baseline.rate:,.1f}/s, ratio {engine.rate / baseline.rate:.3f}")
        pairs.append((engine, baseline))
    return pairs


def run_benchmarks(options: BenchOptions, *, report: Report = lambda _line: None) -> list[Figure]:
    selected = [options.only] if options.only else list(BENCHMARKS)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="followup-bench-", dir=options.workdir) as workdir:
        if "ingest" in selected:
            kwargs = {"events_total": options.events, "batch_size": options.batch, "workdir": workdir}
            pairs = _pairs("ingest", kwargs, runs=options.runs, label="ingest SQLite", report=report)
            figures.append(_summarise("ingest SQLite", "events/s", options.events, pairs))
            if options.postgres_url:
                kwargs = {**kwargs, "events_total": options.postgres_events, "postgres_url": options.postgres_url}
                pairs = _pairs("ingest", kwargs, runs=options.runs, label="ingest PostgreSQL", report=report)
                figures.append(_summarise("ingest PostgreSQL", "events/s", options.postgres_events, pairs))
        if "dispatch" in selected:
            kwargs = {"messages": options.messages, "workdir": workdir}
            pairs = _pairs("dispatch", kwargs, runs=options.runs, label="dispatch email", report=report)
            figures.append(_summarise("dispatch email", "messages/s", options.messages, pairs))
            kwargs = {**kwargs, "concurrency": options.sms_concurrency, "latency_ms": options.sms_latency_ms}
            pairs = _pairs("dispatch_sms", kwargs, runs=options.runs, label="dispatch SMS", report=report)
            figures.append(_summarise("dispatch SMS", "messages/s", options.messages, pairs))
        if "answer" in selected:
            kwargs = {"requests": options.requests, "workdir": workdir}
            pairs = _pairs("answer", kwargs, runs=options.runs, label="answer one-click", report=report)
            figures.append(_summarise("answer one-click", "requests/s", options.requests, pairs))
        if "segments" in selected:
            kwargs = {"customers": options.segment_customers, "workdir": workdir}
            pairs = _pairs("segments", kwargs, runs=options.runs, label="segment preview", report=report)
            figures.append(_summarise("segment preview", "customers/s", options.segment_customers, pairs))
        if "waves" in selected:
            kwargs = {"customers": options.segment_customers, "workdir": workdir}
            pairs = _pairs("waves", kwargs, runs=options.runs, label="wave planning", report=report)
            figures.append(_summarise("wave planning", "follow-ups/s", options.segment_customers, pairs))
            if options.postgres_url:
                kwargs = {**kwargs, "postgres_url": options.postgres_url}
                label = "wave planning PostgreSQL"
                pairs = _pairs("waves", kwargs, runs=options.runs, label=label, report=report)
                figures.append(_summarise(label, "follow-ups/s", options.segment_customers, pairs))
    return figures


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _postgres_version(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return str(connection.execute(text("SHOW server_version")).scalar_one())
    finally:
        engine.dispose()


def describe_machine(options: BenchOptions) -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _postgres_version(options.postgres_url) if options.postgres_url else None,
    }


def write_json(path: Path, options: BenchOptions, machine: dict[str, Any], figures: list[Figure]) -> None:
    options_out = {
        key: str(value) if isinstance(value, Path) else value
        for key, value in asdict(options).items()
        if key != "postgres_url"
    }
    options_out["postgres"] = options.postgres_url is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "finished_at": dt.datetime.now(dt.UTC).isoformat(),
        "machine": machine,
        "options": options_out,
        "figures": {figure.name: asdict(figure) for figure in figures},
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
