from __future__ import annotations

from typing import Literal, get_args

Purpose = Literal["feedback"]
ChannelName = Literal["email", "sms", "push", "inapp", "phone", "social"]

PURPOSES: tuple[str, ...] = get_args(Purpose)
CHANNEL_NAMES: tuple[str, ...] = get_args(ChannelName)
