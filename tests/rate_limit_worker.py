"""A worker process for the shared rate limit's test: builds its own runtime from the settings it is
given (as `followup worker` does) and sends whatever is due, at the test's fixed instant."""

from __future__ import annotations

import datetime as dt
from typing import Any

from followup.config import Settings
from followup.kernel.time import ManualClock
from followup.runtime import build_runtime
from followup.worker import Worker


def work(settings: Settings, now: str, batch_size: int, ready: Any) -> int:
    runtime = build_runtime(settings, clock=ManualClock(dt.datetime.fromisoformat(now)))
    try:
        ready.wait(30)  # both workers start sending together
        return Worker(runtime, batch_size=batch_size).run_until_idle().messages
    finally:
        runtime.close()
