"""Interviews: a survey question that books one of its slots for the customer.

The customer books on the page after the rating, with the other optional questions. A slot is
free while it is in the future and nobody has booked it; the database decides who gets it when
several customers post the same slot at once (a unique key, see `InterviewRepository`).
Reached by other domains through `surveys.service`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from followup.customers import service as customers
from followup.kernel.crypto import KeyProvider
from followup.kernel.errors import Conflict, InvalidInput
from followup.surveys.models import InterviewBooking, SurveyVersion
from followup.surveys.repository import InterviewRepository, SurveyRepository
from followup.surveys.schemas import (
    AnswerProblem,
    BookedInterview,
    InterviewLocation,
    InterviewOut,
    InterviewQuestion,
    LocalizedText,
    SurveyCreate,
    slot_value,
)

# How far ahead a survey may offer a slot: a year covers any research plan, and keeps slots far
# from the edge of what a date can hold.
MAX_SLOT_AHEAD = dt.timedelta(days=366)

_WORDS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "phone": "电话",
        "address": "地址",
        "video": "视频通话",
        "colon": "：",
        "day": " ",
        "zone": "（{offset}）",
    },
    "en": {
        "phone": "Phone call",
        "address": "Address",
        "video": "Video call",
        "colon": ": ",
        "day": ", ",
        "zone": " ({offset})",
    },
}


class SlotTaken(Conflict):
    code = "slot_taken"


class InterviewAlreadyBooked(Conflict):
    code = "interview_already_booked"


def check_interview_slots(data: SurveyCreate, *, now: dt.datetime) -> None:
    """Refuse a slot that has begun (422 slot_in_past) or lies more than a year ahead (422
    slot_too_far), naming it. Only on write: a stored version keeps its past slots, unoffered."""
    for index, question in enumerate(data.questions):
        if not isinstance(question, InterviewQuestion):
            continue
        for position, slot in enumerate(question.slots):
            field = f"questions.{index}.slots.{position}"
            if slot <= now:
                raise InvalidInput(
                    f"{field}: {slot.isoformat()} is not in the future; offer only times still to come.",
                    code="slot_in_past",
                    field=field,
                )
            if slot > now + MAX_SLOT_AHEAD:
                raise InvalidInput(
                    f"{field}: {slot.isoformat()} is more than {MAX_SLOT_AHEAD.days} days ahead.",
                    code="slot_too_far",
                    field=field,
                )


def free_slots(session: Session, version: SurveyVersion, question: InterviewQuestion, *, now: dt.datetime) -> list[Any]:
    """The slots a customer may still book, soonest first, each with the offset it was offered in."""
    taken = InterviewRepository(session).booked_starts(version.survey_id, question.id)
    return sorted(slot for slot in question.slots if slot > now and slot.astimezone(dt.UTC) not in taken)


def book_interview(
    session: Session,
    version: SurveyVersion,
    question: InterviewQuestion,
    *,
    followup_id: int,
    customer_id: int,
    chosen: str,
    now: dt.datetime,
) -> int:
    """Book the slot `chosen` (a value `check_answers` accepted) for this follow-up; the booking id.

    SlotTaken when someone has it, AnswerProblem when it has begun, InterviewAlreadyBooked when
    this follow-up booked this question before. The caller's transaction must be rolled back then.
    """
    slot = next(slot for slot in question.slots if slot_value(slot) == chosen)
    if slot <= now:
        raise AnswerProblem("slot_past", question.id, f"question '{question.id}': that time has passed")
    offset = slot.utcoffset() or dt.timedelta()
    row = {
        "survey_id": version.survey_id,
        "survey_version_id": version.id,
        "question_id": question.id,
        "followup_id": followup_id,
        "customer_id": customer_id,
        "starts_at": slot,
        "ends_at": slot + dt.timedelta(minutes=question.duration_minutes),
        "utc_offset_minutes": int(offset.total_seconds() // 60),
        "location": question.location.model_dump(mode="json"),
        "booked_at": now,
    }
    try:
        booking_id = InterviewRepository(session).insert_booking(row)
    except IntegrityError as exc:
        raise InterviewAlreadyBooked("This follow-up has booked its interview already.", field=question.id) from exc
    if booking_id is None:
        raise SlotTaken("That time was just taken; pick another.", field=question.id)
    return booking_id


def _local(booking: InterviewBooking) -> tuple[dt.datetime, dt.datetime]:
    zone = dt.timezone(dt.timedelta(minutes=booking.utc_offset_minutes))
    return booking.starts_at.astimezone(zone), booking.ends_at.astimezone(zone)


def describe_booking(session: Session, booking_id: int) -> BookedInterview | None:
    """A booking with what a confirmation says: its question's prompt and its survey's title."""
    booking = InterviewRepository(session).get(booking_id)
    version = SurveyRepository(session).version(booking.survey_version_id) if booking else None
    if booking is None or version is None:
        return None
    prompt = next((q["prompt"] for q in version.questions if q.get("id") == booking.question_id), version.title)
    starts_at, ends_at = _local(booking)
    return BookedInterview(
        id=booking.id,
        followup_id=booking.followup_id,
        customer_id=booking.customer_id,
        question_id=booking.question_id,
        survey_title=LocalizedText.model_validate(version.title),
        prompt=LocalizedText.model_validate(prompt),
        starts_at=starts_at,
        ends_at=ends_at,
        location=InterviewLocation.model_validate(booking.location),
        booked_at=booking.booked_at,
    )


def list_interviews(
    session: Session,
    *,
    survey_id: int | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    upcoming_from: dt.datetime | None,
    limit: int,
    offset: int,
    keys: KeyProvider,
) -> tuple[list[InterviewOut], int]:
    rows, total = InterviewRepository(session).list_bookings(
        survey_id=survey_id, since=since, until=until, upcoming_from=upcoming_from, limit=limit, offset=offset
    )
    repo = SurveyRepository(session)
    versions = repo.versions(row.survey_version_id for row in rows)
    keys_of = {v.survey_id: survey.key for v in versions.values() if (survey := repo.survey(v.survey_id))}
    external = customers.external_ids(session, {row.customer_id for row in rows})
    out = []
    for row in rows:
        customer = customers.get_by_id(session, row.customer_id)
        email = customers.masked_address(session, customer, "email", keys=keys) if customer else None
        starts_at, _ = _local(row)
        out.append(
            InterviewOut(
                id=row.id,
                survey=keys_of.get(row.survey_id, ""),
                survey_version=versions[row.survey_version_id].version,
                question_id=row.question_id,
                followup_id=row.followup_id,
                customer_id=external.get(row.customer_id, ""),
                email=email,
                slot=starts_at,
                starts_at=row.starts_at,
                ends_at=row.ends_at,
                location=InterviewLocation.model_validate(row.location),
                booked_at=row.booked_at,
            )
        )
    return out, total


# ── the words a customer reads ─────────────────────────────────────────────────────────────────


def _babel_locale(locale: str) -> Locale:
    try:
        return Locale.parse(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


def offset_text(moment: dt.datetime) -> str:
    """UTC+08:00, UTC-05:00, UTC: the offset a slot was offered in."""
    offset = moment.utcoffset() or dt.timedelta()
    if not offset:
        return "UTC"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes > 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def day_text(moment: dt.datetime, locale: str) -> str:
    """The slot's day on its own wall clock: Thursday, December 10, 2026 · 2026年12月10日星期四."""
    return format_date(moment.date(), format="full", locale=_babel_locale(locale))


def time_text(moment: dt.datetime, locale: str) -> str:
    return format_time(moment.timetz().replace(tzinfo=None), format="short", locale=_babel_locale(locale))


def when_text(starts_at: dt.datetime, ends_at: dt.datetime, locale: str) -> str:
    """The whole appointment on the wall clock it was offered in, with the offset."""
    words = _WORDS.get(locale, _WORDS["en"])
    times = f"{time_text(starts_at, locale)}–{time_text(ends_at, locale)}"
    return f"{day_text(starts_at, locale)}{words['day']}{times}" + words["zone"].format(offset=offset_text(starts_at))


def where_text(location: InterviewLocation, locale: str) -> str:
    words = _WORDS.get(locale, _WORDS["en"])
    return f"{words[location.kind]}{words['colon']}{location.detail}"
