"""The `phone` channel: agents call customers from the call queue (`calls`).

No message is ever sent on it: a follow-up's phone step becomes a call task in the strategy's
queue instead (`followups.outreach`). The channel is here so that strategies may name it and the
contact policy asks about it like any channel (a phone number held, feedback consent on `phone`)."""

from __future__ import annotations

from followup.channels.base import Delivery, Handoff, PermanentChannelError, Receipt
from followup.channels.capabilities import BUILT_IN, PHONE


class CallQueueChannel:
    name = PHONE
    capabilities = BUILT_IN[PHONE]

    def send(self, delivery: Delivery, *, handoff: Handoff) -> Receipt:
        raise PermanentChannelError("the phone channel is worked by agents from the call queue, not sent")
