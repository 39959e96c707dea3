"""The shapes of privacy notices and of the consent ledger, for the API, the console and the pages."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BeforeValidator, Field

from followup.kernel.schemas import Schema
from followup.privacy.enums import Purpose

NOTICE_LOCALES: tuple[str, ...] = ("zh-CN", "en")
# Characters of one locale's text: a long notice is a few thousand; this bounds the page and the row.
MAX_NOTICE_CHARS = 20_000


def _one_kind_of_line_end(value: object) -> object:
    """Line ends as "\\n" alone: a notice typed on Windows reads, hashes and shows as the same notice."""
    return value.replace("\r\n", "\n").replace("\r", "\n") if isinstance(value, str) else value


NoticeBody = Annotated[str, BeforeValidator(_one_kind_of_line_end), Field(min_length=1)]


class NoticeText(Schema):
    """A notice's text in every locale customers read; both are required."""

    zh_cn: NoticeBody = Field(alias="zh-CN")
    en: NoticeBody

    def by_locale(self) -> dict[str, str]:
        return {"zh-CN": self.zh_cn, "en": self.en}


class NoticeIn(Schema):
    """`PUT /privacy/notices/{version}`: markdown-ish plain text (paragraphs split by a blank line,
    `# ` headings, `- ` list items), never HTML."""

    text: NoticeText
    requires_fresh_consent: list[Purpose] = Field(default_factory=list, max_length=3)


class NoticeOut(Schema):
    version: str
    text: dict[str, str]
    requires_fresh_consent: list[str]
    # sha256 (hex) of the notice's canonical content: see `privacy.service.notice_hash`.
    hash: str
    # Null for the built-in notice, which was never published by anyone.
    published_at: dt.datetime | None
    published_by: str
    current: bool
    built_in: bool


class ConsentHistoryItem(Schema):
    """One grant or withdrawal in a customer's consent ledger."""

    id: int
    purpose: str
    channel: str
    granted: bool
    source: str
    actor: str
    recorded_at: dt.datetime
    notice_version: str
    # Null for rows recorded before followup kept notices.
    notice_hash: str | None
