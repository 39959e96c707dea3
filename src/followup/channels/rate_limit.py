"""Each provider's rate limit, shared by every worker on every host.

A limit of r messages a second is kept as the time of the next free slot: a send takes the slot
(the later of it and now) and moves it on by 1/r, then waits until its slot comes. Sends are thus
at least 1/r apart across all workers, so no sliding second ever holds more than r + 1 of them.
A send whose slot is further off than `max_wait` takes none and is told how long to wait instead
(the message is queued again for then), so a backlog never parks a worker.

The slot lives in Redis when FOLLOWUP_REDIS_URL is set (one atomic script, Redis's own clock), and
in the database otherwise (one short locking transaction per send; hosts' clocks must agree, as
NTP keeps them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from sqlalchemy.orm import Session

from followup.channels.repository import RateLimitRepository

MAX_WAIT_SECONDS = 5.0


class RateLimiter(Protocol):
    def reserve(self, key: str, rate: float, *, max_wait: float = MAX_WAIT_SECONDS) -> float | None:
        """Take the next slot of `key` at `rate` per second: the seconds until it comes (0: now),
        or None when it is further off than `max_wait` and nothing was taken."""
        ...


def acquire(
    limiter: RateLimiter, key: str, rate: float | None, *, sleep: Callable[[float], None] = time.sleep
) -> float:
    """Wait for a slot of `key`; returns 0, or the seconds to wait before asking again when the
    slot is too far off (the caller queues the message again)."""
    if rate is None:
        return 0.0
    wait = limiter.reserve(key, rate)
    if wait is None:
        return MAX_WAIT_SECONDS
    if wait > 0:
        sleep(wait)
    return 0.0


class DatabaseRateLimiter:
    def __init__(self, session: Callable[[], AbstractContextManager[Session]]) -> None:
        self._session = session

    def reserve(self, key: str, rate: float, *, max_wait: float = MAX_WAIT_SECONDS) -> float | None:
        with self._session() as session:
            repo = RateLimitRepository(session)
            now = time.time()
            slot = max(repo.next_slot_for_update(key), now)
            if slot - now > max_wait:
                return None
            repo.set_next_slot(key, slot + 1.0 / rate)
        return slot - now


# KEYS[1]: the limit's key; ARGV[1]: seconds between sends; ARGV[2]: the longest wait to take.
# Returns the wait in microseconds, or -1 when the slot is too far off (nothing taken).
_RESERVE = """
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now_us then slot = now_us end
local wait = slot - now_us
if wait > tonumber(ARGV[2]) then return -1 end
redis.call('SET', KEYS[1], tostring(slot + tonumber(ARGV[1])), 'PX', 60000 + math.floor(wait / 1000))
return wait
"""


class RedisRateLimiter:
    def __init__(self, url: str) -> None:
        import redis  # noqa: PLC0415 - only a process configured for Redis loads it

        self._client: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._script = self._client.register_script(_RESERVE)

    def reserve(self, key: str, rate: float, *, max_wait: float = MAX_WAIT_SECONDS) -> float | None:
        interval_us = max(1, round(1_000_000 / rate))
        wait_us = int(self._script(keys=[f"followup:rate:{key}"], args=[interval_us, int(max_wait * 1_000_000)]))
        return None if wait_us < 0 else wait_us / 1_000_000

    def close(self) -> None:
        self._client.close()
