"""The composition root of the worker's work: every domain's tasks, gathered in one registry.

Each domain declares its timers and job handlers in its own `tasks.py`; this is the one module
that knows them all, so the worker holds no table of its own.
"""

from __future__ import annotations

from followup.data_rights import tasks as data_rights_tasks
from followup.followups import tasks as followup_tasks
from followup.kernel.jobs import Tasks
from followup.strategies import tasks as strategy_tasks


def worker_tasks() -> Tasks:
    # Waves first: the follow-ups a wave plans for now are then invited in the same tick.
    return Tasks.merge([strategy_tasks.TASKS, followup_tasks.TASKS, data_rights_tasks.TASKS])
