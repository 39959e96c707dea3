"""The data-rights work for the worker: erasure requests that are due."""

from __future__ import annotations

from followup.data_rights import service
from followup.kernel.jobs import Tasks

TASKS = Tasks(timers=(service.run_due_erasures,), at_start=(service.reapply_at_start,))
