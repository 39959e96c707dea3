from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import StringConstraints

# feedback: surveys and follow-ups; service: replies about the customer's own case and security
# checks; research: invitations to interviews and user research.
Purpose = Literal["feedback", "service", "research"]
PURPOSES: tuple[str, ...] = get_args(Purpose)
# Purposes a customer holds until they withdraw them: replies about their own case.
GIVEN_BY_DEFAULT = frozenset({"service"})

# How a consent was given or withdrawn: through the wallet's API, on a survey page, by an SMS
# keyword (STOP, START), by an agent on a call, by an unsubscribe (the email's link, its one-click
# header, or a spam complaint the mail provider reported), or on the customer's privacy page.
ConsentSource = Literal["api", "survey_page", "sms_keyword", "agent_call", "unsubscribe", "privacy_page"]
CONSENT_SOURCES: tuple[str, ...] = get_args(ConsentSource)

# A privacy notice's version: short, and safe in a URL path and as a literal in SQL (no quote, no
# slash, no space). Dates ("2026-11-01") and numbers ("v3", "3.1") both fit.
NOTICE_VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"
NoticeVersion = Annotated[str, StringConstraints(pattern=NOTICE_VERSION_PATTERN)]

# A channel's name: the built-ins' and any a plugin installs. The shape keeps a name safe to write
# into SQL as a literal (no quote can appear) and short enough for every column that holds one.
CHANNEL_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,15}$"
ChannelName = Annotated[str, StringConstraints(pattern=CHANNEL_NAME_PATTERN)]
# Known before they are installed: a wallet may collect SMS consent before it configures SMS.
BUILT_IN_CHANNELS: tuple[str, ...] = ("email", "sms", "push", "inapp", "phone", "social")
MAX_CHANNELS = 6  # in one strategy's list


def is_channel_name(text: str) -> bool:
    return re.fullmatch(CHANNEL_NAME_PATTERN, text) is not None


def is_notice_version(text: str) -> bool:
    return re.fullmatch(NOTICE_VERSION_PATTERN, text) is not None
