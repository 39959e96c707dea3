from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import StringConstraints

Purpose = Literal["feedback", "service"]
PURPOSES: tuple[str, ...] = get_args(Purpose)
# Purposes a customer holds until they withdraw them: replies about their own case.
GIVEN_BY_DEFAULT = frozenset({"service"})

# A channel's name: the built-ins' and any a plugin installs. The shape keeps a name safe to write
# into SQL as a literal (no quote can appear) and short enough for every column that holds one.
CHANNEL_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,15}$"
ChannelName = Annotated[str, StringConstraints(pattern=CHANNEL_NAME_PATTERN)]
# Known before they are installed: a wallet may collect SMS consent before it configures SMS.
BUILT_IN_CHANNELS: tuple[str, ...] = ("email", "sms", "push", "inapp", "phone", "social")
MAX_CHANNELS = 6  # in one strategy's list


def is_channel_name(text: str) -> bool:
    return re.fullmatch(CHANNEL_NAME_PATTERN, text) is not None
