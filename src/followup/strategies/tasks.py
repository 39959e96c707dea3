"""The strategies domain's work for the worker: the periodic strategies' waves and the proactive
strategies' sweeps."""

from __future__ import annotations

from followup.kernel.jobs import Tasks
from followup.strategies.proactive import run_due_sweeps
from followup.strategies.waves import run_due_waves

TASKS = Tasks(timers=(run_due_waves, run_due_sweeps))
