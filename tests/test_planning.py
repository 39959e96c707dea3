"""The duplicate guard: one follow-up per strategy, customer and run, whatever the run is."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import select, text

from followup.followups import service as followups
from followup.followups.models import Followup
from followup.followups.schemas import PlanItem, PlanStats
from followup.policy import service as policy
from followup.policy.repository import BUDGET_LOCK_KEYS
from followup.runtime import Runtime
from followup.surveys import service as surveys
from tests.builders.customers import make_customer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey


def _plan(runtime: Runtime, items: list[PlanItem]) -> PlanStats:
    with runtime.session() as session:
        return followups.plan_followups(session, items, now=runtime.clock.now(), settings=runtime.settings)


def _item(runtime: Runtime, *, customer_id: int, run_key: str, strategy_id: int, version_id: int) -> PlanItem:
    return PlanItem(
        strategy_id=strategy_id,
        strategy_key="after-large-transfer",
        customer_id=customer_id,
        event_id=None,
        event_type=None,
        event_ref=None,
        send_at=runtime.clock.now(),
        channels=("inapp",),
        recontact_days=0,
        survey_version_id=version_id,
        reward_points=0,
        remind_after=None,
        expire_after=dt.timedelta(days=7),
        run_key=run_key,
    )


def test_a_followup_without_an_event_is_planned_once_per_run(runtime: Runtime) -> None:
    # Given two customers and a strategy, and follow-ups tied to a wave, not to an event
    first, second = make_customer(runtime, "c1"), make_customer(runtime, "c2")
    survey = make_survey(runtime)
    strategy = make_strategy(runtime)
    with runtime.read_session() as session:
        version_id = surveys.current_version(session, survey).id

    def item(customer_id: int, run_key: str) -> PlanItem:
        return _item(runtime, customer_id=customer_id, run_key=run_key, strategy_id=strategy.id, version_id=version_id)

    # When the same wave is planned twice, and the next wave once
    once = _plan(runtime, [item(first.id, "wave:2026-12"), item(second.id, "wave:2026-12")])
    again = _plan(runtime, [item(first.id, "wave:2026-12"), item(second.id, "wave:2026-12")])
    next_wave = _plan(runtime, [item(first.id, "wave:2027-01")])

    # Then each customer has one follow-up per wave, and the repeat is counted as duplicates
    assert (once.planned, once.suppressed) == (2, 0)
    assert (again.planned, again.suppressed, again.duplicates) == (0, 0, 2)
    assert (next_wave.planned, next_wave.suppressed, next_wave.reasons) == (0, 1, {"duplicate": 1})
    with runtime.read_session() as session:
        keys = sorted(session.execute(select(Followup.customer_id, Followup.run_key)).all())
    assert keys == [(first.id, "wave:2026-12"), (first.id, "wave:2027-01"), (second.id, "wave:2026-12")]


def test_an_event_followup_gets_its_events_run_key(runtime: Runtime) -> None:
    item = _item(runtime, customer_id=1, run_key="unused", strategy_id=1, version_id=1)._replace(
        event_id=42, event_type="transfer.succeeded", event_ref="e42", run_key=None
    )

    assert item.key() == "event:42"


def test_two_transactions_planning_for_one_customer_spend_the_budget_once(runtime: Runtime) -> None:
    """The policy's own lock holds the budget: nothing else (no customer row lock) serialises here."""
    # Given a customer with a budget of one follow-up, and two strategies
    customer = make_customer(runtime, "c1")
    survey = make_survey(runtime)
    strategies = [make_strategy(runtime, "first"), make_strategy(runtime, "second")]
    assert runtime.settings.fatigue_max_followups == 1
    with runtime.read_session() as session:
        version_id = surveys.current_version(session, survey).id
    first_planned = threading.Event()
    results: dict[str, PlanStats] = {}

    def plan(name: str, strategy_id: int, *, hold: bool) -> None:
        item = _item(runtime, customer_id=customer.id, run_key="wave:1", strategy_id=strategy_id, version_id=version_id)
        with runtime.session() as session:
            results[name] = followups.plan_followups(
                session, [item], now=runtime.clock.now(), settings=runtime.settings
            )
            if hold:  # keep the transaction open while the other one plans
                first_planned.set()
                time.sleep(0.5)

    # When both plan at once, the first holding its transaction open
    first = threading.Thread(target=plan, args=("first", strategies[0].id), kwargs={"hold": True})
    first.start()
    assert first_planned.wait(10)
    second = threading.Thread(target=plan, args=("second", strategies[1].id), kwargs={"hold": False})
    second.start()
    first.join(10)
    second.join(10)

    # Then one is planned and the other refused for fatigue
    assert (results["first"].planned, results["second"].planned) == (1, 0)
    assert results["second"].reasons == {"fatigue": 1}


def test_a_wave_sized_batch_holds_a_bounded_number_of_budget_locks(runtime: Runtime) -> None:
    """PostgreSQL keeps every advisory lock in one shared table (6,400 slots by default): a wave of
    50,000 customers, one lock each, ran out of it. The customers share 1,024 keys instead."""
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("the budget locks are PostgreSQL's advisory locks; SQLite has one write lock")
    with runtime.session() as session:
        policy.lock_budgets(session, range(1, 50_001))
        held = session.execute(
            text("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
        ).scalar_one()
        policy.lock_budgets(session, [7])  # a customer already covered: no new lock
        again = session.execute(
            text("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
        ).scalar_one()
    assert held == again == BUDGET_LOCK_KEYS
