"""The data-rights work for the worker: erasure requests that are due, and the retention purge."""

from __future__ import annotations

from followup.data_rights import retention, service
from followup.kernel.jobs import Tasks

TASKS = Tasks(timers=(service.run_due_erasures, retention.purge_due), at_start=(service.reapply_at_start,))
