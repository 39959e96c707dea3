"""A provider's rate limit holds across worker processes: two workers sending the same backlog
through one gateway never put more than rate_per_second (+1) requests into any sliding second,
with the limit kept in the database, and in Redis when FOLLOWUP_REDIS_URL is set."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import socket
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from followup.channels.rate_limit import DatabaseRateLimiter, RedisRateLimiter, acquire
from followup.config import GenericSmsSettings, Settings
from followup.kernel.db import make_engine
from followup.kernel.time import ManualClock
from followup.migrations.runner import upgrade
from followup.runtime import Runtime, build_runtime
from followup.worker import Worker
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey
from tests.conftest import wipe
from tests.rate_limit_worker import work
from tests.sms_servers import Answer, GenericGateway

RATE = 8.0
SENDS = 24
REDIS_URL = "redis://127.0.0.1:6379/15"


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def _busiest_second(times: list[float]) -> int:
    """The most requests inside any window of one second."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


class TimedGateway(GenericGateway):
    def __init__(self) -> None:
        super().__init__(token="t")
        self.arrivals: list[float] = []

    def accept(self, request: Any) -> Answer:
        import time

        self.arrivals.append(time.time())
        return super().accept(request)


@pytest.fixture(params=["database", "redis"])
def backlog(
    request: pytest.FixtureRequest, settings: Settings, clock: ManualClock, tmp_path: Path
) -> Iterator[tuple[Settings, TimedGateway]]:
    if request.param == "redis" and not _redis_up():
        pytest.skip("no Redis on 127.0.0.1:6379")
    gateway = TimedGateway()
    provider = GenericSmsSettings(
        kind="generic", name="gw", url=gateway.url, token=SecretStr("t"), rate_per_second=RATE
    )
    configured = settings.model_copy(
        update={"sms_providers": [provider], "redis_url": REDIS_URL if request.param == "redis" else None}
    )
    if settings.is_sqlite:
        # A database file of its own: the worker processes open and close it, and the suite's shared
        # file is kept out of their way.
        url = f"sqlite:///{tmp_path / 'rate-limits.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        configured = configured.model_copy(update={"database_url": url})
    if request.param == "redis":
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
    runtime = build_runtime(configured, clock=clock)
    try:
        for number in range(SENDS):
            make_customer(runtime, f"c{number}", phone=f"+86138123{number:05d}", consents={"feedback": {"sms": True}})
        make_survey(runtime)
        make_strategy(runtime, channels=["sms"])
        from fastapi.testclient import TestClient

        from followup.app import create_app
        from followup.staff import service as staff

        with runtime.session() as session:
            _, key = staff.create_api_key(session, name="tests", now=clock.now())
        with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {key}"}) as api:
            events = [transfer(f"e{number}", f"c{number}") for number in range(SENDS)]
            assert api.post("/api/v1/events", json={"events": events}).json()["accepted"] == SENDS
        clock.advance(dt.timedelta(minutes=31))
        worker = Worker(runtime)
        worker.run_timers()  # the invitations are queued; the sending is left to the two workers
        yield configured, gateway
    finally:
        runtime.close()
        gateway.close()
        wipe(runtime.engine)


def test_two_worker_processes_together_keep_to_the_providers_rate(
    backlog: tuple[Settings, TimedGateway], clock: ManualClock
) -> None:
    settings, gateway = backlog
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        ready = manager.Event()
        jobs = [pool.submit(work, settings, clock.now().isoformat(), 4, ready) for _ in range(2)]
        ready.set()
        sent = [job.result(timeout=120) for job in jobs]
    # Every message went out once, shared between both workers, and no second held more than rate + 1
    assert sum(sent) == SENDS
    assert min(sent) > 0
    assert len(gateway.sent) == SENDS
    assert _busiest_second(gateway.arrivals) <= RATE + 1


def test_a_slot_too_far_off_is_not_taken(runtime: Runtime) -> None:
    limiter = DatabaseRateLimiter(runtime.session)
    waits = [limiter.reserve("test:gw", 1.0, max_wait=2.5) for _ in range(5)]
    # now, 1 s, 2 s; then the next slot (3 s away) is refused without being taken
    assert [round(wait, 1) if wait is not None else None for wait in waits[:3]] == [0.0, 1.0, 2.0]
    assert waits[3:] == [None, None]
    assert acquire(limiter, "test:gw", None) == 0.0  # no rate: never waits


@pytest.mark.skipif(not _redis_up(), reason="no Redis on 127.0.0.1:6379")
def test_the_redis_limiter_takes_slots_in_order() -> None:
    limiter = RedisRateLimiter(REDIS_URL)
    try:
        limiter._client.delete("followup:rate:test:redis")
        waits = [limiter.reserve("test:redis", 2.0, max_wait=1.2) for _ in range(5)]
    finally:
        limiter.close()
    assert [round(wait, 1) if wait is not None else None for wait in waits] == [0.0, 0.5, 1.0, None, None]
