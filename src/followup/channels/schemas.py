"""The content of a message, channel-neutral; each channel renders it its own way."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel


class RatingLink(BaseModel):
    score: int
    url: str


class CalendarEvent(BaseModel):
    """An appointment a message confirms. Email sends it as an iCalendar invitation (RFC 5546
    REQUEST) from the sender to the recipient; `uid` names the appointment for good, so a later
    message about it updates the same calendar entry."""

    uid: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    summary: str
    location: str
    description: str = ""
    url: str | None = None
    stamp: dt.datetime  # when the appointment was made


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
    # An appointment this message confirms (an interview booking); `link` may then be empty.
    event: CalendarEvent | None = None


class InboxItemOut(BaseModel):
    id: int
    title: str
    body: str
    link: str
    created_at: dt.datetime
    read: bool
