"""The content of a message, channel-neutral; each channel renders it its own way."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel


class RatingLink(BaseModel):
    score: int
    url: str


class MessageContent(BaseModel):
    locale: str
    subject: str
    greeting: str
    body: str
    question: str | None = None
    scale_low_label: str | None = None
    scale_high_label: str | None = None
    rating_links: list[RatingLink] = []
    link: str
    link_label: str
    unsubscribe_url: str | None = None
    footer: str = ""
    # A person the message comes from (a proactive strategy's owner): From name and Reply-To.
    sender_name: str | None = None
    reply_to: str | None = None


class InboxItemOut(BaseModel):
    id: int
    title: str
    body: str
    link: str
    created_at: dt.datetime
    read: bool
