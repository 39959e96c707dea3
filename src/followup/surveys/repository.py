from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, bindparam, case, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from followup.kernel import expiry
from followup.kernel.db import BulkStatements, chunked, insert_ignoring_conflicts
from followup.surveys.models import InterviewBooking, Invitation, Response, Survey, SurveyVersion


class RatingRow(NamedTuple):
    """A response as a rating writes it."""

    followup_id: int
    invitation_id: int
    customer_id: int
    survey_version_id: int
    channel: str
    source: str
    ratings: dict[str, Any]
    nps: int | None
    csat: int | None
    ces: int | None
    created_at: dt.datetime
    completed_at: dt.datetime | None


# Built once: a statement built per call costs more than SQLite spends running it.
_INVITATION_BY_HASH = (
    select(Invitation, SurveyVersion)
    .join(SurveyVersion, SurveyVersion.id == Invitation.survey_version_id)
    .where(Invitation.token_hash == bindparam("hash"))
)


class SurveyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def by_key(self, key: str) -> Survey | None:
        return self.session.scalars(select(Survey).where(Survey.key == key)).one_or_none()

    def current_version(self, survey: Survey) -> SurveyVersion:
        return self.session.scalars(
            select(SurveyVersion).where(
                SurveyVersion.survey_id == survey.id, SurveyVersion.version == survey.current_version
            )
        ).one()

    def version(self, version_id: int) -> SurveyVersion | None:
        return self.session.get(SurveyVersion, version_id)

    def survey(self, survey_id: int) -> Survey | None:
        return self.session.get(Survey, survey_id)

    def list_surveys(self, *, limit: int, offset: int) -> tuple[list[Survey], int]:
        total = self.session.scalar(select(func.count()).select_from(Survey)) or 0
        rows = self.session.scalars(select(Survey).order_by(Survey.id).limit(limit).offset(offset))
        return list(rows), total

    def add(self, row: Survey | SurveyVersion | Invitation | Response) -> None:
        self.session.add(row)

    def invitation_by_hash(self, token_hash: str) -> tuple[Invitation, SurveyVersion] | None:
        """The invitation behind a token hash, with the survey version it asks, in one query."""
        found = self.session.execute(_INVITATION_BY_HASH, {"hash": token_hash}).first()
        return None if found is None else (found[0], found[1])

    def newest_open_invitation(
        self,
        *,
        now: dt.datetime,
        followup_id: int | None = None,
        customer_id: int | None = None,
        channel: str | None = None,
    ) -> Invitation | None:
        """The newest invitation not yet rated nor expired, of a follow-up or of a customer."""
        query = select(Invitation).where(
            Invitation.used_at.is_(None), Invitation.completed_at.is_(None), Invitation.expires_at > now
        )
        if followup_id is not None:
            query = query.where(Invitation.followup_id == followup_id)
        if customer_id is not None:
            query = query.where(Invitation.customer_id == customer_id)
        if channel is not None:
            query = query.where(Invitation.channel == channel)
        return self.session.scalars(query.order_by(Invitation.created_at.desc(), Invitation.id.desc()).limit(1)).first()

    # The answer path writes at the driver, past the unit of work and SQLAlchemy's binding
    # (kernel.db.BulkStatements): an answer is a few plain statements, and the write lock every
    # other answer waits for is held while they run. The invitation object in the session is told
    # what was written, so it stays true.

    def mark_used(self, invitation: Invitation, now: dt.datetime) -> bool:
        """The single-use guard: exactly one caller sees True, however many race for it."""
        bulk = BulkStatements(self.session.connection())
        result = bulk.run(
            "UPDATE invitations SET used_at = ? WHERE followup_id = ? AND used_at IS NULL",
            (bulk.db_time(now), invitation.followup_id),
        )
        if not result.rowcount:
            return False
        set_committed_value(invitation, "used_at", now)
        return True

    def mark_completed(self, invitation: Invitation, now: dt.datetime) -> bool:
        bulk = BulkStatements(self.session.connection())
        result = bulk.run(
            "UPDATE invitations SET completed_at = ?"
            " WHERE followup_id = ? AND used_at IS NOT NULL AND completed_at IS NULL",
            (bulk.db_time(now), invitation.followup_id),
        )
        if not result.rowcount:
            return False
        set_committed_value(invitation, "completed_at", now)
        return True

    def add_response_row(self, rating: RatingRow) -> int:
        """A new response, written at once; its id."""
        bulk = BulkStatements(self.session.connection())
        completed_at = bulk.db_time(rating.completed_at) if rating.completed_at is not None else None
        found = bulk.run(
            "INSERT INTO responses (followup_id, invitation_id, customer_id, survey_version_id, channel, source,"  # noqa: S608 - a placeholder of ours
            f" ratings, nps, csat, ces, created_at, completed_at) VALUES (?, ?, ?, ?, ?, ?, {bulk.json_slot()},"
            " ?, ?, ?, ?, ?) RETURNING id",
            (
                rating.followup_id,
                rating.invitation_id,
                rating.customer_id,
                rating.survey_version_id,
                rating.channel,
                rating.source,
                bulk.db_json(rating.ratings),
                rating.nps,
                rating.csat,
                rating.ces,
                bulk.db_time(rating.created_at),
                completed_at,
            ),
        )
        return int(found.scalar_one())

    def response_for_followup(self, followup_id: int) -> Response | None:
        return self.session.scalars(select(Response).where(Response.followup_id == followup_id)).one_or_none()

    def responses_query(
        self, *, customer_id: int | None, survey_id: int | None, since: dt.datetime | None, until: dt.datetime | None
    ) -> Select[Any]:
        query = select(Response)
        if customer_id is not None:
            query = query.where(Response.customer_id == customer_id)
        if survey_id is not None:
            query = query.where(
                Response.survey_version_id.in_(select(SurveyVersion.id).where(SurveyVersion.survey_id == survey_id))
            )
        if since is not None:
            query = query.where(Response.created_at >= since)
        if until is not None:
            query = query.where(Response.created_at < until)
        return query

    def list_responses(self, query: Select[Any], *, limit: int, offset: int) -> tuple[list[Response], int]:
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.session.scalars(query.order_by(Response.id.desc()).limit(limit).offset(offset))
        return list(rows), total

    def responses_for_followups(self, followup_ids: Iterable[int]) -> list[Response]:
        out: list[Response] = []
        for chunk in chunked(list(followup_ids)):
            out.extend(self.session.scalars(select(Response).where(Response.followup_id.in_(chunk))))
        return out

    def versions(self, ids: Iterable[int]) -> dict[int, SurveyVersion]:
        out: dict[int, SurveyVersion] = {}
        for chunk in chunked(list(set(ids))):
            out.update(
                {v.id: v for v in self.session.scalars(select(SurveyVersion).where(SurveyVersion.id.in_(chunk)))}
            )
        return out

    def response_activity(self) -> Iterator[tuple[int, str, int | None, dt.datetime]]:
        """(customer, channel, nps, created_at) of every response, oldest first, streamed."""
        query = select(Response.customer_id, Response.channel, Response.nps, Response.created_at).order_by(
            Response.created_at, Response.id
        )
        for row in self.session.execute(query.execution_options(yield_per=5000)):
            yield (row[0], row[1], row[2], row[3])


class InterviewRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def insert_booking(self, row: dict[str, Any]) -> int | None:
        """The new booking's id, or None when its slot is booked already.

        ON CONFLICT on the slot's unique key: of any number of concurrent inserts for one slot the
        database lets exactly one through (on PostgreSQL the others wait for it to commit, then do
        nothing). A second booking by the same follow-up still raises IntegrityError.
        """
        dialect = self.session.get_bind().dialect.name
        statement = insert_ignoring_conflicts(
            dialect, InterviewBooking.__table__, index_elements=["survey_id", "question_id", "starts_at"]
        ).returning(InterviewBooking.__table__.c.id)
        found = self.session.execute(statement, row).scalar_one_or_none()
        return None if found is None else int(found)

    def get(self, booking_id: int) -> InterviewBooking | None:
        return self.session.get(InterviewBooking, booking_id)

    def booked_starts(self, survey_id: int, question_id: str) -> set[dt.datetime]:
        rows = self.session.scalars(
            select(InterviewBooking.starts_at).where(
                InterviewBooking.survey_id == survey_id, InterviewBooking.question_id == question_id
            )
        )
        return set(rows)

    def list_bookings(
        self,
        *,
        survey_id: int | None,
        since: dt.datetime | None,
        until: dt.datetime | None,
        upcoming_from: dt.datetime | None,
        limit: int,
        offset: int,
    ) -> tuple[list[InterviewBooking], int]:
        """Bookings by start time; with `upcoming_from`, those still to come first (soonest first),
        then the past ones (latest first)."""
        query = select(InterviewBooking)
        if survey_id is not None:
            query = query.where(InterviewBooking.survey_id == survey_id)
        if since is not None:
            query = query.where(InterviewBooking.starts_at >= since)
        if until is not None:
            query = query.where(InterviewBooking.starts_at < until)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        starts = InterviewBooking.starts_at
        order: list[Any]
        if upcoming_from is None:
            order = [starts, InterviewBooking.id]
        else:
            to_come = starts >= upcoming_from
            # Past rows share a NULL second key, so each database's own NULL order does not matter.
            order = [case((to_come, 0), else_=1), case((to_come, starts)), starts.desc(), InterviewBooking.id]
        rows = self.session.scalars(query.order_by(*order).limit(limit).offset(offset))
        return list(rows), total


class SubjectRepository:
    """What this domain holds about one customer, for their data rights (ADR 0024)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def responses(self, customer_id: int) -> list[Response]:
        return list(
            self.session.scalars(select(Response).where(Response.customer_id == customer_id).order_by(Response.id))
        )

    def bookings(self, customer_id: int) -> list[InterviewBooking]:
        return list(
            self.session.scalars(
                select(InterviewBooking)
                .where(InterviewBooking.customer_id == customer_id)
                .order_by(InterviewBooking.id)
            )
        )

    def erase(self, customer_id: int, *, now: dt.datetime) -> None:
        """Scores stay, detached from the person; texts, meeting places and open links go."""
        self.session.execute(
            update(Response).where(Response.customer_id == customer_id).values(texts_sealed=None),
            execution_options={"synchronize_session": False},
        )
        self.session.execute(
            update(InterviewBooking).where(InterviewBooking.customer_id == customer_id).values(location={}),
            execution_options={"synchronize_session": False},
        )
        self.session.execute(
            update(Invitation)
            .where(Invitation.customer_id == customer_id, Invitation.expires_at > now)
            .values(expires_at=now),
            execution_options={"synchronize_session": False},
        )


class RetentionRepository:
    """Responses, and their texts, past their retention periods."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @staticmethod
    def _texts_older(cutoff: dt.datetime) -> list[ColumnElement[bool]]:
        return [Response.texts_sealed.is_not(None), Response.created_at < cutoff]

    def count_texts_older(self, cutoff: dt.datetime) -> int:
        return expiry.count(self.session, Response.id, self._texts_older(cutoff))

    def clear_texts_older(self, cutoff: dt.datetime, *, limit: int) -> int:
        return expiry.clear_batch(
            self.session,
            Response,
            Response.id,
            self._texts_older(cutoff),
            values={"texts_sealed": None},
            order_by=Response.created_at,
            limit=limit,
        )

    @staticmethod
    def _older(cutoff: dt.datetime) -> list[ColumnElement[bool]]:
        return [Response.created_at < cutoff]

    def count_older(self, cutoff: dt.datetime) -> int:
        return expiry.count(self.session, Response.id, self._older(cutoff))

    def delete_older(self, cutoff: dt.datetime, *, limit: int) -> int:
        """Responses go whole (a case that came of one keeps its own record: `response_id` is set
        to NULL by the foreign key)."""
        return expiry.delete_batch(
            self.session, Response, Response.id, self._older(cutoff), order_by=Response.created_at, limit=limit
        )
