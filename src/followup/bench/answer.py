"""Answer: one-click rating POSTs per second, p50/p99, against a real `followup serve`, and against
a bare FastAPI endpoint of the same framework and server settings that inserts one row."""

from __future__ import annotations

import datetime as dt
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from followup.bench.dispatch import large_transfers
from followup.bench.measure import Measurement, peak_rss_mb
from followup.bench.sink import free_port
from followup.bench.world import (
    bench_settings,
    create_reachable_customers,
    create_strategies,
    daytime_zone,
    migrate,
    sqlite_url,
)
from followup.channels.testing import RecordingChannel
from followup.events import service as events
from followup.kernel.time import ManualClock
from followup.runtime import build_runtime
from followup.worker import Worker

CLIENT_THREADS = 4
WARM_UP = 10
START_TIMEOUT = 30.0


@contextmanager
def served(command: list[str], *, port: int, env: dict[str, str]) -> Iterator[str]:
    """A server in a subprocess on 127.0.0.1:port, ready when /healthz answers; stopped with SIGINT."""
    process = subprocess.Popen(command, env=env)  # noqa: S603 - our own interpreter and module
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}")
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(command)} did not answer within {START_TIMEOUT:.0f}s")
            time.sleep(0.05)
        yield base_url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def post_answers(base_url: str, tokens: list[str], *, expect: int) -> tuple[float, list[float]]:
    """POST the rating form once per token from a few client threads; (seconds, latencies in ms)."""
    latencies: list[list[float]] = [[] for _ in range(CLIENT_THREADS)]
    failures: list[str] = []

    def client(index: int) -> None:
        with httpx.Client(base_url=base_url, timeout=30.0) as http:
            for number, token in enumerate(tokens[index::CLIENT_THREADS]):
                started = time.perf_counter()
                response = http.post(f"/s/{token}", data={"step": "rating", "nps": str(number % 11)})
                latencies[index].append((time.perf_counter() - started) * 1000)
                if response.status_code != expect:
                    failures.append(f"{response.status_code} for /s/…{token[-6:]}")

    threads = [threading.Thread(target=client, args=(index,)) for index in range(CLIENT_THREADS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(tokens)} answers failed, first: {failures[0]}")
    return seconds, [value for per_thread in latencies for value in per_thread]


def _invitation_tokens(url: str, count: int) -> tuple[list[str], str]:
    """`count` live invitations made by the engine itself; returns their tokens and the master key."""
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    clock = ManualClock(start)
    recorder = RecordingChannel("email", idempotent=False)
    settings = bench_settings(url)
    runtime = build_runtime(settings, clock=clock, channels={"email": recorder})
    try:
        create_strategies(runtime, channels=["email"])
        create_reachable_customers(runtime, count, time_zone=daytime_zone(start))
        transfers = large_transfers(count, occurred_at=start)
        for offset in range(0, count, 5000):
            with runtime.session() as session:
                events.ingest_events(session, transfers[offset : offset + 5000], now=start, settings=settings)
        clock.set(start + dt.timedelta(minutes=45))
        Worker(runtime).run_until_idle(max_rounds=10 * count + 10)
    finally:
        runtime.close()
    tokens = [delivery.content.link.rsplit("/s/", 1)[1] for delivery in recorder.sent]
    if len(tokens) != count:
        raise RuntimeError(f"the engine invited {len(tokens)} of {count} customers")
    assert settings.master_key is not None  # noqa: S101 - bench_settings always sets one
    return tokens, settings.master_key.get_secret_value()


def _measure_served(command: list[str], *, port: int, env: dict[str, str], tokens: list[str]) -> Measurement:
    """Serve with `command`, warm up on the first tokens, then time one answer per remaining token."""
    with served(command, port=port, env=env) as base_url:
        post_answers(base_url, tokens[:WARM_UP], expect=303)
        seconds, latencies = post_answers(base_url, tokens[WARM_UP:], expect=303)
    return Measurement(
        count=len(tokens) - WARM_UP,
        seconds=seconds,
        peak_rss_mb=peak_rss_mb(resource.RUSAGE_CHILDREN),
        latencies_ms=latencies,
    )


def run_engine(*, requests: int, workdir: str) -> Measurement:
    url = sqlite_url(Path(workdir) / f"answer-{uuid.uuid4().hex[:8]}.db")
    migrate(url)
    tokens, master_key = _invitation_tokens(url, requests + WARM_UP)
    port = free_port()
    env = {
        **os.environ,
        "FOLLOWUP_DATABASE_URL": url,
        "FOLLOWUP_MASTER_KEY": master_key,
        "FOLLOWUP_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "FOLLOWUP_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "followup.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return _measure_served(command, port=port, env=env, tokens=tokens)


def run_baseline(*, requests: int, workdir: str) -> Measurement:
    port = free_port()
    db_path = Path(workdir) / f"answer-raw-{uuid.uuid4().hex[:8]}.db"
    tokens = [uuid.uuid4().hex + uuid.uuid4().hex for _ in range(requests + WARM_UP)]
    command = [sys.executable, "-m", "followup.bench.bare_app", "--db", str(db_path), "--port", str(port)]
    return _measure_served(command, port=port, env=dict(os.environ), tokens=tokens)
