"""The strategies domain's work for the worker: the periodic strategies' waves."""

from __future__ import annotations

from followup.kernel.jobs import Tasks
from followup.strategies.waves import run_due_waves

TASKS = Tasks(timers=(run_due_waves,))
