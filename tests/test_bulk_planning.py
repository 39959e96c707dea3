"""A wave planned in the database writes what planning customer by customer writes: the same
follow-ups (status, reason, plan, due time after quiet hours), the same history and the same
contact reservations, over customers refused for every reason the policy has."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from followup.cases.models import Case
from followup.customers.models import Customer
from followup.followups import service as followups
from followup.followups.models import Followup, FollowupHistory
from followup.kernel.time import ManualClock
from followup.policy.models import ContactReservation
from followup.runtime import Runtime
from followup.strategies import waves
from followup.strategies.models import Strategy
from followup.strategies.schemas import StrategyCreate
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body

UTC = dt.UTC
ZONES = ("Asia/Shanghai", "Europe/London", "America/New_York")


def _world(api: TestClient, clock: ManualClock, channels: list[str] | None = None) -> None:
    """Sixty customers in three zones: some without an email, some without consent, two with an
    open security case, some followed up last week by another strategy (their budget spent)."""
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    for n in range(60):
        body: dict[str, Any] = {
            "time_zone": ZONES[n % 3],
            "attributes": {"panel": True},
            "consents": {"feedback": {"email": n % 4 != 0, "inapp": n % 5 == 0}},
        }
        if n % 3 != 1:
            body["email"] = f"c{n:02}@example.com"
        assert api.put(f"/api/v1/customers/c{n:02}", json=body).status_code == 200
    after = strategy_body(channels=["email", "inapp"], delay="PT0S", audience=None)
    assert api.post("/api/v1/strategies", json=after).status_code == 201
    events = [transfer(f"t{n}", f"c{n:02}", occurred_at=clock.now()) for n in range(0, 60, 7)]
    assert api.post("/api/v1/events", json={"events": events}).status_code == 200
    panel = {
        "key": "panel",
        "kind": "periodic",
        "schedule": {"cron": "0 10 1 * *", "time_zone": "Asia/Shanghai"},
        "audience": {"field": "customer.attributes.panel", "op": "eq", "value": True},
        "holdout_percent": 15,
        "spread": "PT6H",
        "channels": channels or ["email", "inapp"],
        "survey": "payment-csat",
        "message": {"en": {"subject": "Hello {{ customer.locale }}", "body": "Thanks"}},
    }
    assert api.post("/api/v1/strategies", json=panel).status_code == 201, panel


def _open_security_cases(session: Session, external_ids: list[str], now: dt.datetime) -> None:
    for external_id in external_ids:
        customer_id = session.scalar(select(Customer.id).where(Customer.external_id == external_id))
        assert customer_id is not None
        session.add(
            Case(
                customer_id=customer_id,
                kind="security",
                priority="security",
                status="open",
                summary="test",
                opened_at=now,
                due_at=now + dt.timedelta(days=1),
            )
        )
    session.flush()


def _written(session: Session, strategy_id: int) -> dict[str, Any]:
    """What the wave wrote, per customer, without the ids the database gave it."""
    rows = session.scalars(select(Followup).where(Followup.strategy_id == strategy_id)).all()
    by_id = {row.id: row.customer_id for row in rows}
    history: dict[int, list[tuple[Any, ...]]] = {}
    for entry in session.scalars(select(FollowupHistory).where(FollowupHistory.followup_id.in_(list(by_id)))):
        history.setdefault(by_id[entry.followup_id], []).append((entry.at, entry.action, entry.reason, entry.detail))
    reservations = session.scalars(
        select(ContactReservation).where(ContactReservation.strategy_id == strategy_id)
    ).all()
    return {
        "followups": {
            row.customer_id: (
                row.run_key,
                row.status,
                row.reason,
                row.plan,
                row.next_step,
                row.due_at,
                row.planned_at,
                row.closed_at,
                row.channel,
            )
            for row in rows
        },
        "history": {customer: sorted(entries, key=repr) for customer, entries in history.items()},
        "reservations": sorted(
            (r.customer_id, r.reserved_at, r.released_at, r.contacted_at, r.followup_id in by_id) for r in reservations
        ),
    }


@pytest.mark.parametrize(
    ("channels", "reasons"),
    [
        (["email", "inapp"], {"holdout", "no_consent", "open_security_case", "fatigue"}),
        (["email"], {"holdout", "no_consent", "unreachable", "open_security_case", "fatigue"}),
    ],
)
def test_the_wave_in_the_database_writes_what_planning_one_by_one_writes(
    api: TestClient, runtime: Runtime, clock: ManualClock, channels: list[str], reasons: set[str]
) -> None:
    # Given the world, a week later, when the panel fires (02:00 UTC: quiet night in London and New York)
    _world(api, clock, channels)
    clock.set(dt.datetime(2026, 12, 1, 2, 0, tzinfo=UTC))
    now = clock.now()
    with runtime.session() as session:
        _open_security_cases(session, ["c02", "c10"], now)
        strategy = session.scalars(select(Strategy).where(Strategy.key == "panel")).one()
        spec = StrategyCreate.model_validate(strategy.definition)
        drawn = waves.draw_wave(session, strategy, spec, fired_at=now, now=now, settings=runtime.settings)
        assert drawn is not None
        assert len(drawn.picks) == 60
        # When the wave is planned one by one, read, and rolled back
        one_by_one = session.begin_nested()
        items = drawn.items(strategy, spec)
        stats = followups.plan_followups(session, items, now=now, settings=runtime.settings)
        session.flush()
        expected = _written(session, strategy.id)
        one_by_one.rollback()
        # And then planned in the database, as a wave is
        in_bulk = waves.plan_drawn(session, strategy, spec, drawn, now=now, settings=runtime.settings)
        session.flush()
        got = _written(session, strategy.id)
        # (and planned again, it writes nothing: every customer has this run's follow-up)
        again = waves.plan_drawn(session, strategy, spec, drawn, now=now, settings=runtime.settings)
        assert (again.planned, again.suppressed, again.duplicates) == (0, 0, 60)
        assert _written(session, strategy.id) == got
    # Then both wrote the same rows, and every reason and a quiet-hours deferral were among them
    assert (in_bulk.planned, in_bulk.suppressed, in_bulk.deferred, in_bulk.duplicates, in_bulk.reasons) == (
        stats.planned,
        stats.suppressed,
        stats.deferred,
        stats.duplicates,
        stats.reasons,
    )
    assert stats.deferred > 0
    assert got == expected
    assert set(stats.reasons) == reasons
    actions = {entry[1] for entries in got["history"].values() for entry in entries}
    assert actions == {"planned", "suppressed", "deferred"}
    assert stats.planned > 5


def test_a_bulk_plan_refuses_what_it_cannot_share(api: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    _world(api, clock)
    clock.set(dt.datetime(2026, 12, 1, 2, 0, tzinfo=UTC))
    now = clock.now()
    with runtime.session() as session:
        strategy = session.scalars(select(Strategy).where(Strategy.key == "panel")).one()
        spec = StrategyCreate.model_validate(strategy.definition)
        drawn = waves.draw_wave(session, strategy, spec, fired_at=now, now=now, settings=runtime.settings)
        assert drawn is not None
        (first, *_) = drawn.items(strategy, spec)
        picks = [(cid, at, zone, preset) for cid, _, at, zone, preset in drawn.picks]
        for template in (first._replace(auto_channel=True), first._replace(run_key=None)):
            with pytest.raises(ValueError, match="one plan"):
                followups.plan_followups_in_bulk(session, template, picks, now=now, settings=runtime.settings)
        assert session.scalars(select(Followup).where(Followup.strategy_id == strategy.id)).all() == []
