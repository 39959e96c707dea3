"""Surveys and their versions, invitation tokens, and the storage of responses."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from followup.config import InputLimits
from followup.customers import service as customers
from followup.kernel.actors import SYSTEM, Actor
from followup.kernel.crypto import KeyProvider, hash_token, new_token
from followup.kernel.errors import Conflict, InvalidInput, NotFound
from followup.kernel.text import text_problem
from followup.privacy import service as privacy
from followup.privacy.scrubbing import scrub
from followup.surveys import interviews
from followup.surveys.interviews import (
    InterviewAlreadyBooked,
    SlotTaken,
    day_text,
    describe_booking,
    offset_text,
    time_text,
    when_text,
    where_text,
)
from followup.surveys.models import Invitation, Response, Survey, SurveyVersion
from followup.surveys.repository import RatingRow, SurveyRepository
from followup.surveys.schemas import (
    MAX_LOCATION_CHARS,
    RATING_SCALES,
    YES_NO,
    YES_NO_ANSWERS,
    AnswerProblem,
    InterviewOut,
    InterviewQuestion,
    LocalizedText,
    Question,
    ResponseOut,
    SurveyCreate,
    SurveyOut,
    check_answers,
    first_rating_question,
)

__all__ = [
    "InterviewAlreadyBooked",
    "SlotTaken",
    "day_text",
    "describe_booking",
    "offset_text",
    "time_text",
    "when_text",
    "where_text",
]

_QUESTIONS = TypeAdapter(list[Question])
_TEXT_PURPOSE = "response-text"


class SurveyNotFound(NotFound):
    code = "survey_not_found"


class SurveyExists(Conflict):
    code = "survey_exists"


class InvitationInvalid(NotFound):
    """Unknown, used and expired tokens are indistinguishable on purpose: a probe learns nothing."""

    code = "invitation_invalid"


class AnswerInvalid(InvalidInput):
    code = "answer_invalid"


InvitationState = Literal["rating", "details"]


@dataclass(frozen=True)
class OpenInvitation:
    invitation: Invitation
    state: InvitationState
    version: SurveyVersion
    questions: list[Any]
    title: LocalizedText


def questions_of(version: SurveyVersion) -> list[Any]:
    return _QUESTIONS.validate_python(version.questions)


def _check_text(field: str, text: LocalizedText, *, max_chars: int, multiline: bool) -> None:
    for locale, value in text.items():
        _check_line(f"{field}.{locale}", value, max_chars=max_chars, multiline=multiline)


def _check_line(field: str, value: str, *, max_chars: int, multiline: bool = False) -> None:
    problem = text_problem(value, max_chars=max_chars, multiline=multiline)
    if problem is not None:
        code, sentence = problem
        raise InvalidInput(f"{field}: {sentence}.", code=code, field=field)


def check_survey_limits(data: SurveyCreate, *, limits: InputLimits) -> None:
    """Refuse text over the length limits (422 limit_exceeded) or with control characters (422
    invalid_character). The title and choice labels are one line: the title becomes an email's
    subject. A prompt may span lines. Only on write: a stored survey is read as it is."""
    _check_text("title", data.title, max_chars=limits.max_title_chars, multiline=False)
    for index, question in enumerate(data.questions):
        _check_text(f"questions.{index}.prompt", question.prompt, max_chars=limits.max_prompt_chars, multiline=True)
        for position, option in enumerate(getattr(question, "options", ())):
            _check_text(
                f"questions.{index}.options.{position}.label",
                option.label,
                max_chars=limits.max_title_chars,
                multiline=False,
            )
        if isinstance(question, InterviewQuestion):
            # One line: it becomes the LOCATION of a calendar invitation.
            _check_line(f"questions.{index}.location.detail", question.location.detail, max_chars=MAX_LOCATION_CHARS)


def _stored_questions(data: SurveyCreate) -> list[dict[str, Any]]:
    """The questions as a version's JSON column holds them (slots as RFC 3339 text with their offset)."""
    return [q.model_dump(mode="json", by_alias=True, exclude_none=True) for q in data.questions]


def create_survey(
    session: Session, data: SurveyCreate, *, limits: InputLimits, now: dt.datetime, actor: Actor = SYSTEM
) -> Survey:
    check_survey_limits(data, limits=limits)
    interviews.check_interview_slots(data, now=now)
    repo = SurveyRepository(session)
    if repo.by_key(data.key) is not None:
        raise SurveyExists(f"A survey with key '{data.key}' already exists.", field="key")
    title = data.title.model_dump(by_alias=True, exclude_none=True)
    survey = Survey(key=data.key, title=title, current_version=1, created_at=now, updated_at=now)
    repo.add(survey)
    session.flush()
    repo.add(
        SurveyVersion(
            survey_id=survey.id,
            version=1,
            title=title,
            questions=_stored_questions(data),
            created_at=now,
        )
    )
    session.flush()
    _audit(session, survey, "survey.created", actor=actor, now=now, old=None)
    return survey


def _audit(session: Session, survey: Survey, event: str, *, actor: Actor, now: dt.datetime, old: int | None) -> None:
    """Which version is current, before and after: the versions themselves stay in `survey_versions`."""
    privacy.record_audit(
        session,
        actor=actor,
        subject_type="survey",
        subject_id=survey.key,
        event=event,
        now=now,
        old=None if old is None else {"version": old},
        new={"version": survey.current_version},
    )


def survey_body(session: Session, survey: Survey) -> SurveyCreate:
    """The survey's current version as the body that would create it (what `apply` compares)."""
    version = current_version(session, survey)
    return SurveyCreate.model_validate({"key": survey.key, "title": version.title, "questions": version.questions})


def update_survey(
    session: Session,
    survey: Survey,
    data: SurveyCreate,
    *,
    limits: InputLimits,
    now: dt.datetime,
    actor: Actor = SYSTEM,
) -> bool:
    """A new version when the title or the questions differ from the current one; False (and no
    version) when they mean the same. Follow-ups under way keep the version they were sent."""
    check_survey_limits(data, limits=limits)
    current = survey_body(session, survey)
    if current.model_dump(mode="json", by_alias=True) == data.model_dump(mode="json", by_alias=True):
        return False
    interviews.check_interview_slots(data, now=now)
    repo = SurveyRepository(session)
    title = data.title.model_dump(by_alias=True, exclude_none=True)
    survey.current_version += 1
    survey.title = title
    survey.updated_at = now
    repo.add(
        SurveyVersion(
            survey_id=survey.id,
            version=survey.current_version,
            title=title,
            questions=_stored_questions(data),
            created_at=now,
        )
    )
    session.flush()
    _audit(session, survey, "survey.updated", actor=actor, now=now, old=survey.current_version - 1)
    return True


def get_survey(session: Session, key: str) -> Survey | None:
    return SurveyRepository(session).by_key(key)


def access_survey(session: Session, key: str) -> Survey:
    survey = SurveyRepository(session).by_key(key)
    if survey is None:
        raise SurveyNotFound(f"No survey with key '{key}'. Create it with POST /api/v1/surveys first.", field="survey")
    return survey


def current_version(session: Session, survey: Survey) -> SurveyVersion:
    return SurveyRepository(session).current_version(survey)


def get_version(session: Session, version_id: int) -> SurveyVersion | None:
    return SurveyRepository(session).version(version_id)


def describe_survey(session: Session, survey: Survey) -> SurveyOut:
    version = current_version(session, survey)
    return SurveyOut(
        id=survey.id,
        key=survey.key,
        version=version.version,
        title=LocalizedText.model_validate(version.title),
        questions=questions_of(version),
        created_at=survey.created_at,
        updated_at=survey.updated_at,
    )


def list_surveys(session: Session, *, limit: int, offset: int) -> tuple[list[SurveyOut], int]:
    rows, total = SurveyRepository(session).list_surveys(limit=limit, offset=offset)
    return [describe_survey(session, row) for row in rows], total


def create_invitation(
    session: Session,
    *,
    followup_id: int,
    customer_id: int,
    survey_version_id: int,
    channel: str,
    expires_at: dt.datetime,
    now: dt.datetime,
) -> str:
    """A fresh 256-bit token for a link; only its hash is stored, so the caller must use it now."""
    token = new_token()
    SurveyRepository(session).add(
        Invitation(
            token_hash=hash_token(token),
            followup_id=followup_id,
            customer_id=customer_id,
            survey_version_id=survey_version_id,
            channel=channel,
            created_at=now,
            expires_at=expires_at,
        )
    )
    return token


def open_invitation(session: Session, token: str, *, now: dt.datetime) -> OpenInvitation:
    """The invitation behind a token and what the page should ask, or InvitationInvalid."""
    found = SurveyRepository(session).invitation_by_hash(hash_token(token)) if 16 <= len(token) <= 128 else None
    if found is None:
        raise InvitationInvalid("This link is not valid any more.")
    invitation, version = found
    return _opened(session, invitation, now=now, version=version)


def _opened(
    session: Session, invitation: Invitation | None, *, now: dt.datetime, version: SurveyVersion | None = None
) -> OpenInvitation:
    if invitation is None or invitation.expires_at <= now or invitation.completed_at is not None:
        raise InvitationInvalid("This link is not valid any more.")
    if version is None:
        version = SurveyRepository(session).version(invitation.survey_version_id)
    if version is None:
        raise InvitationInvalid("This link is not valid any more.")
    return OpenInvitation(
        invitation=invitation,
        state="details" if invitation.used_at else "rating",
        version=version,
        questions=questions_of(version),
        title=LocalizedText.model_validate(version.title),
    )


def open_followup_invitation(
    session: Session, followup_id: int, *, now: dt.datetime, channel: str | None = None
) -> OpenInvitation:
    """The follow-up's newest invitation still open (on `channel`, when given): how an answer
    given without its link (an SMS reply, an agent on a call) finds what it answers.
    InvitationInvalid when there is none."""
    invitation = SurveyRepository(session).newest_open_invitation(followup_id=followup_id, channel=channel, now=now)
    return _opened(session, invitation, now=now)


def reopen_invitation(session: Session, opened: OpenInvitation, *, now: dt.datetime) -> OpenInvitation:
    """The same invitation read again after its rating: now in its `details` state (an agent on a
    call records the other answers right after the rating)."""
    return _opened(session, opened.invitation, now=now)


def rating_question_id(opened: OpenInvitation) -> str:
    """The id of the question a one-click rating (or a score sent by SMS) answers."""
    return str(first_rating_question(opened.questions).id)


def yes_no_answer(opened: OpenInvitation, response: RecordedRating) -> str | None:
    """ "yes" or "no" when the response answers a yes_no question; None for a rating."""
    question = first_rating_question(opened.questions)
    said = (response.ratings or {}).get(question.id) if question.type == YES_NO else None
    return said if said in YES_NO_ANSWERS else None


def is_yes_no(opened: OpenInvitation) -> bool:
    """Whether the invitation's one-click question is a yes_no question (not a rating scale)."""
    return bool(first_rating_question(opened.questions).type == YES_NO)


def awaiting_rating(session: Session, customer_id: int, *, channel: str, now: dt.datetime) -> Invitation | None:
    """The customer's newest invitation on this channel still waiting for its rating: the one a
    bare score sent back by SMS answers."""
    return SurveyRepository(session).newest_open_invitation(customer_id=customer_id, channel=channel, now=now)


def reissue_link(session: Session, invitation: Invitation) -> str:
    """A new token for an invitation (the old one stops working): the link to the optional
    questions sent after a rating given by SMS, whose first link is never shown again."""
    token = new_token()
    invitation.token_hash = hash_token(token)
    session.flush()
    return token


class RecordedRating(NamedTuple):
    """The response a rating made: what the answer path goes on with."""

    id: int
    channel: str
    ratings: dict[str, Any]
    nps: int | None
    csat: int | None


def record_rating(
    session: Session, opened: OpenInvitation, *, answers: dict[str, Any], source: str, now: dt.datetime
) -> RecordedRating:
    """Record the rating (`source`: how it was given). Exactly one of any number of concurrent
    callers succeeds, however each came."""
    rating_question = first_rating_question(opened.questions)
    try:
        clean = check_answers(opened.questions, answers, only={rating_question.id})
    except ValueError as exc:
        raise AnswerInvalid(str(exc), field=rating_question.id) from exc
    repo = SurveyRepository(session)
    if opened.state != "rating" or not repo.mark_used(opened.invitation, now):
        raise InvitationInvalid("This link is not valid any more.")
    ratings, scales, _ = _sorted_answers({}, opened.questions, clean)
    # Nothing optional to ask: the link is used up now rather than showing an empty page.
    completed = len(opened.questions) == 1
    if completed:
        repo.mark_completed(opened.invitation, now)
    response_id = repo.add_response_row(
        RatingRow(
            followup_id=opened.invitation.followup_id,
            invitation_id=opened.invitation.id,
            customer_id=opened.invitation.customer_id,
            survey_version_id=opened.version.id,
            channel=opened.invitation.channel,
            source=source,
            ratings=ratings,
            nps=scales.get("nps"),
            csat=scales.get("csat"),
            ces=scales.get("ces"),
            created_at=now,
            completed_at=now if completed else None,
        )
    )
    return RecordedRating(
        response_id, opened.invitation.channel, ratings, nps=scales.get("nps"), csat=scales.get("csat")
    )


class RecordedDetails(NamedTuple):
    response: Response
    texts: dict[str, str]  # the new free text, by question
    interview_id: int | None  # the interview booked with these answers


def record_details(
    session: Session, opened: OpenInvitation, *, answers: dict[str, Any], keys: KeyProvider, now: dt.datetime
) -> RecordedDetails:
    """Record the optional questions after the rating, and book the interview slot chosen.

    SlotTaken (409) when another customer has the slot; the caller rolls back, and the customer
    picks again on the same link: nothing of this step stays written."""
    rating_question = first_rating_question(opened.questions)
    others = {question.id for question in opened.questions if question.id != rating_question.id}
    try:
        # After the one-click rating everything is optional: the customer may as well close the page.
        clean = check_answers(opened.questions, answers, only=others, enforce_required=False)
    except ValueError as exc:
        raise AnswerInvalid(str(exc)) from exc
    repo = SurveyRepository(session)
    response = repo.response_for_followup(opened.invitation.followup_id)
    if opened.state != "details" or response is None or not repo.mark_completed(opened.invitation, now):
        raise InvitationInvalid("This link is not valid any more.")
    interview_id = None
    for question in opened.questions:
        if isinstance(question, InterviewQuestion) and question.id in clean:
            try:
                interview_id = interviews.book_interview(
                    session,
                    opened.version,
                    question,
                    followup_id=response.followup_id,
                    customer_id=response.customer_id,
                    chosen=clean[question.id],
                    now=now,
                )
            except AnswerProblem as exc:
                raise AnswerInvalid(str(exc), field=question.id) from exc
    texts = _apply_answers(response, opened.questions, clean)
    if texts:
        response.texts_sealed = customers.seal_for_customer(
            session,
            response.customer_id,
            json.dumps(texts, ensure_ascii=False).encode(),
            keys=keys,
            now=now,
            purpose=_TEXT_PURPOSE,
        )
    response.completed_at = now
    session.flush()
    return RecordedDetails(response, texts, interview_id)


def _apply_answers(response: Response, questions: list[Any], clean: dict[str, Any]) -> dict[str, str]:
    """Ratings and choices go to clear columns; free text is returned for sealing."""
    ratings, scales, texts = _sorted_answers(response.ratings or {}, questions, clean)
    response.ratings = ratings
    for scale, value in scales.items():
        if getattr(response, scale) is None:
            setattr(response, scale, value)
    return texts


def _sorted_answers(
    earlier: dict[str, Any], questions: list[Any], clean: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, int], dict[str, str]]:
    """The answers as the response keeps them: every rating and choice by question (with those
    given `earlier`), the first value of each rating scale for its own column, and the free text
    apart, to be sealed."""
    texts: dict[str, str] = {}
    scales: dict[str, int] = {}
    ratings = dict(earlier)
    for question in questions:
        if question.id not in clean:
            continue
        value = clean[question.id]
        if question.type == "text":
            # Scrubbed here, before anything seals, shows or checks it (scrubbing.py says what goes).
            texts[question.id] = scrub(value)
            continue
        ratings[question.id] = value
        if question.type in RATING_SCALES:
            scales.setdefault(question.type, value)
    return ratings, scales, texts


def read_texts(session: Session, response: Response, *, keys: KeyProvider) -> dict[str, str]:
    if response.texts_sealed is None:
        return {}
    plain = customers.open_for_customer(
        session, response.customer_id, response.texts_sealed, keys=keys, purpose=_TEXT_PURPOSE
    )
    if plain is None:
        return {}
    texts: dict[str, str] = json.loads(plain)
    return texts


def list_responses(
    session: Session,
    *,
    customer_id: int | None,
    survey_key: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    limit: int,
    offset: int,
    keys: KeyProvider,
) -> tuple[list[ResponseOut], int]:
    repo = SurveyRepository(session)
    survey_id = access_survey(session, survey_key).id if survey_key else None
    query = repo.responses_query(customer_id=customer_id, survey_id=survey_id, since=since, until=until)
    rows, total = repo.list_responses(query, limit=limit, offset=offset)
    return describe_responses(session, rows, keys=keys), total


def describe_responses(session: Session, rows: list[Response], *, keys: KeyProvider) -> list[ResponseOut]:
    repo = SurveyRepository(session)
    versions = repo.versions(row.survey_version_id for row in rows)
    surveys = {v.survey_id: repo.survey(v.survey_id) for v in versions.values()}
    external = customers.external_ids(session, {row.customer_id for row in rows})
    out = []
    for row in rows:
        version = versions[row.survey_version_id]
        survey = surveys[version.survey_id]
        out.append(
            ResponseOut(
                id=row.id,
                followup_id=row.followup_id,
                customer_id=external.get(row.customer_id, ""),
                survey=survey.key if survey else "",
                survey_version=version.version,
                channel=row.channel,
                source=row.source,
                answers={**(row.ratings or {}), **read_texts(session, row, keys=keys)},
                nps=row.nps,
                csat=row.csat,
                ces=row.ces,
                created_at=row.created_at,
                completed_at=row.completed_at,
            )
        )
    return out


def scores_for_followups(session: Session, followup_ids: Iterable[int]) -> dict[int, tuple[int | None, int | None]]:
    """followup id → (nps, csat), for metrics."""
    return {
        row.followup_id: (row.nps, row.csat) for row in SurveyRepository(session).responses_for_followups(followup_ids)
    }


def response_activity(session: Session) -> Iterator[tuple[int, str, int | None, dt.datetime]]:
    """(customer, channel, nps, when) of every stored answer, oldest first: what activity counts."""
    return SurveyRepository(session).response_activity()


def free_interview_slots(session: Session, opened: OpenInvitation, *, now: dt.datetime) -> dict[str, list[dt.datetime]]:
    """Per interview question of the invitation's survey: the slots still free, soonest first."""
    return {
        question.id: interviews.free_slots(session, opened.version, question, now=now)
        for question in opened.questions
        if isinstance(question, InterviewQuestion)
    }


def list_interviews(
    session: Session,
    *,
    survey_key: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    upcoming_from: dt.datetime | None = None,
    limit: int,
    offset: int,
    keys: KeyProvider,
) -> tuple[list[InterviewOut], int]:
    """Booked interviews by start time; with `upcoming_from`, those to come first, then the past."""
    survey_id = access_survey(session, survey_key).id if survey_key else None
    return interviews.list_interviews(
        session,
        survey_id=survey_id,
        since=since,
        until=until,
        upcoming_from=upcoming_from,
        limit=limit,
        offset=offset,
        keys=keys,
    )


def describe_response(session: Session, response_id: int, *, keys: KeyProvider) -> ResponseOut | None:
    """One response with its answers opened, or None (a case's triggering response, on its page)."""
    row = session.get(Response, response_id)
    return describe_responses(session, [row], keys=keys)[0] if row is not None else None
