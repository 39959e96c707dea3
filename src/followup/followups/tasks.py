"""The follow-up domain's work for the worker: its timer and the job it handles."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from followup.dispatch.schemas import MessageUndelivered
from followup.dispatch.service import UNDELIVERED_JOB
from followup.followups import service
from followup.kernel.jobs import Tasks


def on_message_undelivered(session: Session, payload: Mapping[str, Any], now: dt.datetime) -> None:
    service.cascade_undelivered(session, MessageUndelivered.model_validate(payload), now=now)


TASKS = Tasks(jobs={UNDELIVERED_JOB: on_message_undelivered}, timers=(service.run_due_followups,))
