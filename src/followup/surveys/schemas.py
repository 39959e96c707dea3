"""The survey question schema, defined once.

The same models validate the API body, the JSON stored per survey version, the hosted page's
form and the answers posted to it.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, field_validator, model_validator

from followup.kernel.schemas import OffsetDateTime, Schema

Locale = Literal["zh-CN", "en"]
LOCALES: tuple[str, ...] = ("zh-CN", "en")
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="lower-case letters, digits, - and _")]


class LocalizedText(Schema):
    """Text per locale; at least one is required and the other falls back to it.

    Length and characters are checked when a survey is written, against the settings
    (`surveys.check_survey_limits`): this model also reads what was stored under looser limits.
    """

    zh_CN: str | None = Field(default=None, alias="zh-CN")
    en: str | None = None

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    @model_validator(mode="after")
    def _one_at_least(self) -> LocalizedText:
        if not (self.zh_CN or self.en):
            raise ValueError("give the text in at least one locale: zh-CN or en")
        return self

    def get(self, locale: str) -> str:
        preferred = self.zh_CN if locale == "zh-CN" else self.en
        return preferred or self.en or self.zh_CN or ""

    def items(self) -> list[tuple[str, str]]:
        """(locale as the API names it, text) for each locale given."""
        return [(locale, text) for locale, text in (("zh-CN", self.zh_CN), ("en", self.en)) if text is not None]


class _QuestionBase(Schema):
    id: Slug
    prompt: LocalizedText
    required: bool = True


class NpsQuestion(_QuestionBase):
    type: Literal["nps"]


class CsatQuestion(_QuestionBase):
    type: Literal["csat"]


class CesQuestion(_QuestionBase):
    type: Literal["ces"]


class YesNoQuestion(_QuestionBase):
    """A one-click "yes" or "no" — "Was it you who just signed in on a new device?". A "no" says the
    customer did not do what they are asked about: it opens a security case at once
    (`cases.open_for_denial`). It is a security check, not feedback: it counts in no metric."""

    type: Literal["yes_no"]


class ChoiceOption(Schema):
    id: Slug
    label: LocalizedText


class ChoiceQuestion(_QuestionBase):
    type: Literal["choice"]
    options: list[ChoiceOption] = Field(min_length=2, max_length=20)
    multiple: bool = False

    @field_validator("options")
    @classmethod
    def _unique_options(cls, options: list[ChoiceOption]) -> list[ChoiceOption]:
        if len({option.id for option in options}) != len(options):
            raise ValueError("option ids must be unique within a question")
        return options


class TextQuestion(_QuestionBase):
    type: Literal["text"]
    max_length: int = Field(default=1000, ge=1, le=5000)


MAX_INTERVIEW_SLOTS = 200
MAX_LOCATION_CHARS = 500


class InterviewLocation(Schema):
    """Where the interview happens: we call the customer (`phone`, the detail says how), they come
    to an `address`, or they join a `video` call at an https link."""

    kind: Literal["phone", "address", "video"]
    detail: str = Field(min_length=1, max_length=MAX_LOCATION_CHARS)

    @model_validator(mode="after")
    def _video_is_an_https_link(self) -> InterviewLocation:
        if self.kind == "video":
            parts = urlsplit(self.detail)
            if parts.scheme != "https" or not parts.hostname or any(ch.isspace() for ch in self.detail):
                raise ValueError(
                    "a video location's detail is the call's https:// link, such as https://meet.example.com/abc"
                )
        return self


class InterviewQuestion(_QuestionBase):
    """An offer to talk: the customer books one of the slots on the page, after the rating.

    A slot is booked once across every version of the survey (`interview_bookings`); which slots
    are still in the future is checked when a survey version is written, not when it is read.
    """

    type: Literal["interview"]
    duration_minutes: int = Field(ge=5, le=480)
    location: InterviewLocation
    slots: list[OffsetDateTime] = Field(min_length=1, max_length=MAX_INTERVIEW_SLOTS)

    @field_validator("slots")
    @classmethod
    def _distinct_slots(cls, slots: list[dt.datetime]) -> list[dt.datetime]:
        seen: set[dt.datetime] = set()
        for slot in slots:
            if slot in seen:  # aware datetimes compare as instants: 10:00+08:00 is 02:00Z
                raise ValueError(f"slots must be different times; {slot.isoformat()} is given twice")
            seen.add(slot)
        return slots


Question = Annotated[
    NpsQuestion | CsatQuestion | CesQuestion | YesNoQuestion | ChoiceQuestion | TextQuestion | InterviewQuestion,
    Field(discriminator="type"),
]
RATING_SCALES: dict[str, tuple[int, int]] = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
YES_NO = "yes_no"
YES_NO_ANSWERS: tuple[str, str] = ("yes", "no")
# The questions a message's one-click links (or an SMS reply) may answer: the first one of a survey.
ONE_CLICK_TYPES: tuple[str, ...] = (*RATING_SCALES, YES_NO)


class SurveyCreate(Schema):
    key: Slug
    title: LocalizedText
    questions: list[Question] = Field(min_length=1, max_length=20)

    @field_validator("questions")
    @classmethod
    def _check_questions(cls, questions: list[Any]) -> list[Any]:
        ids = [question.id for question in questions]
        if len(set(ids)) != len(ids):
            raise ValueError("question ids must be unique within a survey")
        if not any(question.type in ONE_CLICK_TYPES for question in questions):
            raise ValueError(
                "a survey needs at least one rating question (nps, csat or ces) or a yes_no question: "
                "the first one is what the one-click links answer"
            )
        yes_no = [question for question in questions if question.type == YES_NO]
        scales = [question.type for question in questions if question.type in RATING_SCALES]
        if yes_no and (len(yes_no) > 1 or scales):
            # A "no" opens a security case; a score beside it would be feedback taken in a security check.
            raise ValueError(
                "a yes_no question is a security check: its survey has one yes_no question and no nps, "
                "csat or ces question"
            )
        if sum(question.type == "interview" for question in questions) > 1:
            # One booking, and one confirmation email, per follow-up.
            raise ValueError("a survey may offer one interview question at most")
        return questions


class SurveyOut(Schema):
    id: int
    key: str
    version: int
    title: LocalizedText
    questions: list[Question]
    created_at: dt.datetime
    updated_at: dt.datetime


class ResponseOut(Schema):
    id: int
    followup_id: int
    customer_id: str
    survey: str
    survey_version: int
    channel: str
    source: str = Field(description="how the rating was given: page (the link), sms_reply, agent")
    answers: dict[str, Any]
    nps: int | None
    csat: int | None
    ces: int | None
    created_at: dt.datetime
    completed_at: dt.datetime | None


class InterviewOut(Schema):
    """A booked interview. Times are UTC; `slot` is the start as it was offered, with its offset."""

    id: int
    survey: str
    survey_version: int
    question_id: str
    followup_id: int
    customer_id: str
    email: str | None = Field(description="the customer's email, masked, when they have one")
    slot: dt.datetime
    starts_at: dt.datetime
    ends_at: dt.datetime
    location: InterviewLocation
    booked_at: dt.datetime


class BookedInterview(Schema):
    """A booking as a confirmation tells it: times on the wall clock of the slot as offered."""

    id: int
    followup_id: int
    customer_id: int
    question_id: str
    survey_title: LocalizedText
    prompt: LocalizedText
    starts_at: dt.datetime
    ends_at: dt.datetime
    location: InterviewLocation
    booked_at: dt.datetime


def slot_value(slot: dt.datetime) -> str:
    """A slot as a page's form posts it and a response records it: RFC 3339 with its own offset."""
    return slot.isoformat()


def _as_slot(raw: str) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        if value.tzinfo is None or value.utcoffset() is None:
            return None
        value.astimezone(dt.UTC)  # a time at the edge of year 1 or 9999 cannot be compared
    except (ValueError, OverflowError):
        return None
    return value


def _as_int(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"-?\d{1,3}", raw.strip()):
        return int(raw.strip())
    return None


class AnswerProblem(ValueError):
    """A bad answer, in English for the API, with what a page needs to say it in the customer's
    language: the kind of problem, the question and the figures the sentence names."""

    def __init__(self, kind: str, question_id: str, message: str, **params: Any) -> None:
        super().__init__(message)
        self.kind = kind
        self.question_id = question_id
        self.params = params


def first_rating_question(questions: list[Any]) -> Any:
    """The question a one-click link, an SMS reply's score or an agent's first answer gives: the
    survey's first rating (nps, csat, ces) or its yes_no question."""
    return next(question for question in questions if question.type in ONE_CLICK_TYPES)


def check_answers(
    questions: list[Any], answers: dict[str, Any], *, only: set[str] | None = None, enforce_required: bool = True
) -> dict[str, Any]:
    """Validate posted answers against the questions; return them typed (int for ratings).

    `only` limits which questions may be answered in this step. Raises ValueError with a sentence
    naming the question when an answer is missing or out of range (an AnswerProblem).
    """
    by_id = {question.id: question for question in questions}
    allowed = set(by_id) if only is None else only
    unknown = set(answers) - allowed
    if unknown:
        first = sorted(unknown)[0]
        raise AnswerProblem("unknown_question", first, f"unknown question: {first}")
    clean: dict[str, Any] = {}
    for qid in allowed:
        question = by_id[qid]
        raw = answers.get(qid)
        if raw is None or raw in ("", []):
            if question.required and enforce_required:
                raise AnswerProblem("needs_answer", qid, f"question '{qid}' needs an answer")
            continue
        if question.type in RATING_SCALES:
            low, high = RATING_SCALES[question.type]
            value = _as_int(raw)
            if value is None or not low <= value <= high:
                raise AnswerProblem(
                    "out_of_range",
                    qid,
                    f"question '{qid}' takes a whole number from {low} to {high}",
                    low=low,
                    high=high,
                )
            clean[qid] = value
        elif question.type == YES_NO:
            said = raw.strip().lower() if isinstance(raw, str) else None
            if said not in YES_NO_ANSWERS:
                raise AnswerProblem("not_yes_no", qid, f"question '{qid}' takes yes or no")
            clean[qid] = said
        elif question.type == "choice":
            values = raw if isinstance(raw, list) else [raw]
            options = {option.id for option in question.options}
            if not all(isinstance(v, str) and v in options for v in values):
                raise AnswerProblem(
                    "not_an_option", qid, f"question '{qid}' takes one of: {', '.join(sorted(options))}"
                )
            if not question.multiple and len(values) > 1:
                raise AnswerProblem("single_choice", qid, f"question '{qid}' takes a single choice")
            clean[qid] = values if question.multiple else values[0]
        elif question.type == "interview":
            chosen = _as_slot(raw) if isinstance(raw, str) and len(raw) <= 64 else None
            slot = next((slot for slot in question.slots if chosen is not None and slot == chosen), None)
            if slot is None:
                raise AnswerProblem("not_a_slot", qid, f"question '{qid}' takes one of the times it offers")
            clean[qid] = slot_value(slot)
        else:
            if not isinstance(raw, str):
                raise AnswerProblem("needs_text", qid, f"question '{qid}' takes text")
            text = raw.strip()
            if len(text) > question.max_length:
                limit = question.max_length
                raise AnswerProblem(
                    "too_long", qid, f"question '{qid}' takes at most {limit} characters", max_length=limit
                )
            if text:
                clean[qid] = text
    return clean
