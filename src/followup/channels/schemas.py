"""The content of a message, channel-neutral; each channel renders it its own way."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class RatingLink(BaseModel):
    score: int  # what an SMS reply sends for it: the score itself, or 1 and 2 for a yes_no's yes and no
    url: str
    label: str | None = None  # shown instead of the score: a yes_no question's "Yes, it was me"


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
    # The body for channels that show a few lines (an SMS, a notification); null: the body itself.
    short_body: str | None = None
    question: str | None = None
    scale_low_label: str | None = None
    scale_high_label: str | None = None
    rating_links: list[RatingLink] = []
    link: str
    link_label: str
    unsubscribe_url: str | None = None
    # The customer's own privacy page (/p/<token>): set fresh when the message is sent.
    my_data_url: str | None = None
    footer: str = ""
    # A person the message comes from (a proactive strategy's owner): From name and Reply-To.
    sender_name: str | None = None
    reply_to: str | None = None
    # An appointment this message confirms (an interview booking); `link` may then be empty.
    event: CalendarEvent | None = None
    # When `link` stops working (the invitation's expiry): a short link made of it expires too.
    link_expires_at: dt.datetime | None = None
    # A reply the customer asked for (an opt-out's confirmation, help, a thank-you): sent as it is,
    # without the opt-out line or a survey prompt, and past quiet hours and consent.
    transactional: bool = False
    # What the customer consented to hear this for: `feedback` (follow-ups) or `service` (replies
    # about their own case, security checks: given unless withdrawn, and outside the feedback
    # fatigue budget).
    purpose: str = "feedback"
    # Past quiet hours: a security check ("Was this you?") is worth nothing in the morning.
    at_any_hour: bool = False


class InboxItemOut(BaseModel):
    id: int
    title: str
    body: str
    link: str
    # The current privacy notice in the customer's language: the app shows it with every item.
    privacy_url: str
    my_data_url: str = Field(description="the customer's own privacy page: see, download or delete their data")
    created_at: dt.datetime
    read: bool


class ProviderHealthOut(BaseModel):
    """One provider's health as every worker left it: failures in a row, its circuit, its errors."""

    channel: str
    provider: str
    failures_in_row: int
    open_until: dt.datetime | None
    skipped: int
    last_error_code: str | None
    last_error_at: dt.datetime | None
    last_success_at: dt.datetime | None
