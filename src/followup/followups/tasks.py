"""Job handlers of the follow-up domain."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from followup.followups import service


def on_message_undelivered(session: Session, payload: Mapping[str, Any], now: dt.datetime) -> None:
    service.handle_message_outcome(session, payload, now=now)
