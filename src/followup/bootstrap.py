"""The composition root of the worker's work: every domain's tasks, gathered in one registry.

Each domain declares its timers and job handlers in its own `tasks.py`; this is the one module
that knows them all, so the worker holds no table of its own.
"""

from __future__ import annotations

from followup.followups import tasks as followup_tasks
from followup.kernel.jobs import Tasks


def worker_tasks() -> Tasks:
    return Tasks.merge([followup_tasks.TASKS])
