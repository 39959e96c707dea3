from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from followup.kernel.db import chunked
from followup.surveys.models import Invitation, Response, Survey, SurveyVersion


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

    def invitation_by_hash(self, token_hash: str) -> Invitation | None:
        return self.session.scalars(select(Invitation).where(Invitation.token_hash == token_hash)).one_or_none()

    def mark_used(self, invitation: Invitation, now: dt.datetime) -> bool:
        """The single-use guard: exactly one caller sees True, however many race for it."""
        result = self.session.execute(
            update(Invitation)
            .where(Invitation.followup_id == invitation.followup_id, Invitation.used_at.is_(None))
            .values(used_at=now)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def mark_completed(self, invitation: Invitation, now: dt.datetime) -> bool:
        result = self.session.execute(
            update(Invitation)
            .where(
                Invitation.followup_id == invitation.followup_id,
                Invitation.used_at.is_not(None),
                Invitation.completed_at.is_(None),
            )
            .values(completed_at=now)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

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
