"""Where one ingest run spends its time, step by step, without a profiler's overhead.

Wraps the steps of `events.service.ingest_events` with timers, runs the bench's engine side once
and prints each step's share of the time inside `ingest_events`:

    .venv/bin/python scripts/ingest_phases.py --events 100000
    .venv/bin/python scripts/ingest_phases.py --events 100000 --postgres postgresql+psycopg://…

Steps nest: `plan` includes `plan.followups`, which includes `plan.policy`, `followups.insert` and
`followups.history`. What is not in a named step is validation's follow-up work per event (times,
attributes, the rows handed to the statements).
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import followup.events.repository as event_repository
import followup.events.service as events
import followup.followups.repository as followup_repository
import followup.strategies.service as strategies
from followup.bench.ingest import run_engine
from followup.followups import planning

spent: dict[str, float] = defaultdict(float)


def timed(owner: Any, name: str, label: str) -> None:
    inner: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(inner)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - started

    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--postgres", default=None)
    args = parser.parse_args()
    timed(events, "_ingest", "ingest_events")
    timed(events, "_validate", "validate")
    timed(events.customers, "record_arrivals", "customers.record_arrivals")
    timed(event_repository.EventRepository, "insert_new", "events.insert")
    timed(events.customers, "record_activity", "customers.record_activity")
    timed(events.strategies, "plan_followups_for_events", "plan")
    timed(strategies.customers, "snapshots", "plan.snapshots")
    timed(strategies.followups, "plan_followups", "plan.followups")
    timed(planning.policy, "check_planning", "plan.policy")
    timed(followup_repository.FollowupRepository, "insert_many", "followups.insert")
    timed(followup_repository.FollowupRepository, "add_history", "followups.history")
    with tempfile.TemporaryDirectory(prefix="followup-phases-") as workdir:
        measured = run_engine(events_total=args.events, batch_size=5000, workdir=workdir, postgres_url=args.postgres)
    total = spent["ingest_events"]
    print(f"{measured.rate:,.0f} events/s; inside ingest_events {total:.2f} s")
    for label, seconds in sorted(spent.items()):
        print(f"  {label:28} {seconds:7.2f} s {seconds / total:6.1%}")


if __name__ == "__main__":
    main()
