"""The follow-up domain's work for the worker: its timer and the job it handles."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from followup.dispatch.schemas import MessageUndelivered
from followup.dispatch.service import UNDELIVERED_JOB
from followup.followups import service
from followup.followups.answers import ANSWERED_JOB, finish_answer
from followup.followups.schemas import AnswerRecorded
from followup.kernel.jobs import JobContext, Tasks


def on_message_undelivered(context: JobContext, payload: Mapping[str, Any]) -> None:
    service.cascade_undelivered(context.session, MessageUndelivered.model_validate(payload), now=context.now)


def on_answered(context: JobContext, payload: Mapping[str, Any]) -> None:
    finish_answer(context.session, AnswerRecorded.model_validate(payload))


TASKS = Tasks(
    jobs={UNDELIVERED_JOB: on_message_undelivered, ANSWERED_JOB: on_answered},
    timers=(service.run_due_followups,),
)
