"""What a follow-up message says, in the customer's locale. Channel-neutral."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import TemplateError

from followup.channels.schemas import CalendarEvent, MessageContent, RatingLink
from followup.customers.schemas import CustomerSnapshot
from followup.followups.schemas import MessageText
from followup.kernel import templating
from followup.kernel.text import control_character
from followup.surveys import service as surveys
from followup.surveys.schemas import (
    RATING_SCALES,
    YES_NO,
    YES_NO_ANSWERS,
    BookedInterview,
    LocalizedText,
    first_rating_question,
)

# A rendered text longer than this is cut: a template over large data must not flood a channel.
MAX_SUBJECT = 250
MAX_BODY = 10_000


class PersonalTextFailed(ValueError):
    """A strategy's template does not fit this customer's data (a missing value, a bad number)."""


_TEXT: dict[str, dict[str, Any]] = {
    "zh-CN": {
        "invite": "邀请您评价：{title}",
        "remind": "提醒：{title}",
        "greeting": "您好，",
        "body": "感谢您使用我们的钱包。您的反馈能帮助我们做得更好，点击下方的分数即可完成评价。",
        "short_body": "感谢您使用我们的钱包。",
        "link_label": "打开问卷",
        "footer": "此链接 {days} 天内有效，仅可使用一次。如不想再收到此类邮件，可随时退订。",
        "low": {"nps": "完全不可能", "csat": "非常不满意", "ces": "非常困难"},
        "high": {"nps": "非常可能", "csat": "非常满意", "ces": "非常容易"},
        "check": "请确认：{title}",
        "check_body": "我们发现您的账户有一次新的活动，请确认是否为您本人操作。",
        "answers": {"yes": "是我", "no": "不是我"},
    },
    "en": {
        "invite": "How did we do? {title}",
        "remind": "Reminder: {title}",
        "greeting": "Hello,",
        "body": "Thank you for using our wallet. Your feedback helps us improve: one click on a score is all it takes.",
        "short_body": "Thank you for using our wallet.",
        "link_label": "Open the survey",
        "footer": "This link works once and for {days} days. You can unsubscribe from these emails at any time.",
        "low": {"nps": "Not at all likely", "csat": "Very dissatisfied", "ces": "Very difficult"},
        "high": {"nps": "Extremely likely", "csat": "Very satisfied", "ces": "Very easy"},
        "check": "Please confirm: {title}",
        "check_body": "We noticed new activity on your account. Please tell us whether it was you.",
        "answers": {"yes": "Yes, it was me", "no": "No, it wasn't me"},
    },
}


def render_message(
    *,
    step: str,
    locale: str,
    title: LocalizedText,
    questions: list[Any],
    survey_url: str,
    unsubscribe_url: str | None,
    valid_days: int,
) -> MessageContent:
    text = _TEXT.get(locale, _TEXT["en"])
    rating = first_rating_question(questions)
    if rating.type == YES_NO:
        return _yes_no_message(
            text,
            step=step,
            locale=locale,
            title=title,
            question=rating.prompt.get(locale),
            survey_url=survey_url,
            unsubscribe_url=unsubscribe_url,
            footer=text["footer"].format(days=max(valid_days, 1)),
        )
    low, high = RATING_SCALES[rating.type]
    return MessageContent(
        locale=locale,
        subject=text["invite" if step == "invite" else "remind"].format(title=title.get(locale)),
        greeting=text["greeting"],
        body=text["body"],
        short_body=text["short_body"],
        question=rating.prompt.get(locale),
        scale_low_label=text["low"][rating.type],
        scale_high_label=text["high"][rating.type],
        rating_links=[RatingLink(score=score, url=f"{survey_url}?score={score}") for score in range(low, high + 1)],
        link=survey_url,
        link_label=text["link_label"],
        unsubscribe_url=unsubscribe_url,
        footer=text["footer"].format(days=max(valid_days, 1)),
    )


def _yes_no_message(
    text: dict[str, Any],
    *,
    step: str,
    locale: str,
    title: LocalizedText,
    question: str,
    survey_url: str,
    unsubscribe_url: str | None,
    footer: str,
) -> MessageContent:
    """A security check ("Was this you?"): its two answers as the links, numbered 1 and 2 for an SMS
    reply, and a body that asks rather than invites a rating."""
    heading = text["check"] if step == "invite" else text["remind"]
    return MessageContent(
        locale=locale,
        subject=heading.format(title=title.get(locale)),
        greeting=text["greeting"],
        body=text["check_body"],
        short_body=text["check_body"],
        question=question,
        rating_links=[
            RatingLink(score=number, label=text["answers"][said], url=f"{survey_url}?answer={said}")
            for number, said in enumerate(YES_NO_ANSWERS, start=1)
        ],
        link=survey_url,
        link_label=text["link_label"],
        unsubscribe_url=unsubscribe_url,
        footer=footer,
    )


_INTERVIEW_TEXT: dict[str, dict[str, str]] = {
    "zh-CN": {
        "subject": "访谈预约成功：{title}",
        "summary": "访谈：{title}",
        "greeting": "您好，",
        "body": (
            "感谢您愿意与我们交流。您的访谈已预约在 {when}，时长 {minutes} 分钟。{where}。"
            "附件中的日历邀请可将它加入您的日历。"
        ),
        "join": "加入视频通话",
        "footer": "您收到这封邮件，是因为您在问卷中预约了这次访谈。",
    },
    "en": {
        "subject": "Your interview is booked: {title}",
        "summary": "Interview: {title}",
        "greeting": "Hello,",
        "body": (
            "Thank you for agreeing to talk with us. Your interview is booked for {when}, for {minutes} minutes. "
            "{where}. The calendar invitation attached adds it to your calendar."
        ),
        "join": "Join the video call",
        "footer": "You receive this email because you booked this interview in our survey.",
    },
}


def render_interview_confirmation(interview: BookedInterview, *, locale: str) -> MessageContent:
    """The email confirming a booked interview, with the appointment as a calendar event."""
    text = _INTERVIEW_TEXT.get(locale, _INTERVIEW_TEXT["en"])
    title = interview.survey_title.get(locale)
    minutes = int((interview.ends_at - interview.starts_at).total_seconds() // 60)
    body = text["body"].format(
        when=surveys.when_text(interview.starts_at, interview.ends_at, locale),
        minutes=minutes,
        where=surveys.where_text(interview.location, locale),
    )
    video = interview.location.detail if interview.location.kind == "video" else None
    return MessageContent(
        locale=locale,
        subject=text["subject"].format(title=title),
        greeting=text["greeting"],
        body=body,
        link=video or "",
        link_label=text["join"] if video else "",
        footer=text["footer"],
        event=CalendarEvent(
            uid=f"followup-interview-{interview.id}",
            starts_at=interview.starts_at,
            ends_at=interview.ends_at,
            summary=text["summary"].format(title=title),
            location=interview.location.detail,
            description=f"{interview.prompt.get(locale)}\n\n{body}",
            url=video,
            stamp=interview.booked_at,
        ),
    )


def template_context(
    snapshot: CustomerSnapshot, *, event: Mapping[str, Any] | None, survey: Mapping[str, Any]
) -> dict[str, Any]:
    """What a message template reads: the customer (no contact points), their stats, the event
    the follow-up is about (None for periodic and proactive ones) and the survey."""
    return {
        "customer": {
            "id": snapshot.external_id,
            "locale": snapshot.locale,
            "time_zone": snapshot.time_zone,
            "value_tier": snapshot.value_tier,
            "preferred_channel": snapshot.preferred_channel,
            "attributes": snapshot.attributes,
        },
        "event": dict(event) if event is not None else None,
        "stats": snapshot.stats or {},
        "survey": dict(survey),
    }


def personal_text(templates: Mapping[str, MessageText], *, locale: str, context: Mapping[str, Any]) -> tuple[str, str]:
    """(subject, body) of the strategy's templates for this locale (else English, else the first),
    rendered; the subject made one line. PersonalTextFailed when the data does not fit."""
    chosen = templates.get(locale) or templates.get("en") or next(iter(templates.values()))
    try:
        subject = templating.render(chosen.subject, locale=locale, context=context)
        body = templating.render(chosen.body, locale=locale, context=context)
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise PersonalTextFailed(f"{type(exc).__name__}: {exc}") from exc
    subject = " ".join(subject.split())[:MAX_SUBJECT]
    subject = "".join(ch for ch in subject if control_character(ch) is None)
    body = "".join(ch for ch in body[:MAX_BODY] if control_character(ch, multiline=True) is None)
    if not subject or not body.strip():
        raise PersonalTextFailed("the template rendered an empty subject or text")
    return subject, body
