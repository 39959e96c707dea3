"""The global holdout: a sticky slice of all customers that no strategy ever contacts, recorded
with reason global_holdout, so uplift can be measured against it."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import sys
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from followup.app import create_app
from followup.config import Settings
from followup.customers.models import Customer
from followup.followups.models import Followup
from followup.kernel.time import ManualClock
from followup.runtime import Runtime, build_runtime
from followup.staff import service as staff
from followup.worker import Worker
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.conftest import SmtpSink, wipe

PERCENT = 20.0
IDS = [f"c{n:03}" for n in range(60)]


def _held_out(customer_ids: list[str], percent: float) -> set[str]:
    """The slice as the documentation defines it, computed here independently."""
    return {
        customer_id
        for customer_id in customer_ids
        if int.from_bytes(hashlib.sha256(f"global-holdout|{customer_id}".encode()).digest()[:8], "big") / 2**64
        < percent / 100
    }


@pytest.fixture
def held_runtime(settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    runtime = build_runtime(settings.model_copy(update={"global_holdout_percent": PERCENT}), clock=clock)
    yield runtime
    wipe(runtime.engine)
    runtime.close()


def _api(runtime: Runtime) -> TestClient:
    with runtime.session() as session:
        _, key = staff.create_api_key(session, name="tests", now=runtime.clock.now())
    return TestClient(create_app(runtime), headers={"Authorization": f"Bearer {key}"})


def _outcomes(runtime: Runtime) -> dict[str, set[tuple[str, str | None]]]:
    """Per customer: the (status, reason) of each of their follow-ups."""
    with runtime.read_session() as session:
        rows = session.execute(
            select(Customer.external_id, Followup.status, Followup.reason).join(
                Followup, Followup.customer_id == Customer.id
            )
        )
        out: dict[str, set[tuple[str, str | None]]] = {}
        for external_id, status, reason in rows:
            out.setdefault(external_id, set()).add((status, reason))
        return out


def test_no_strategy_ever_contacts_the_global_holdout(
    held_runtime: Runtime, smtp: SmtpSink, clock: ManualClock
) -> None:
    held = _held_out(IDS, PERCENT)
    assert 3 < len(held) < 25
    with _api(held_runtime) as api:
        # Given reachable customers, an event strategy and a periodic one, sampling everyone
        for customer_id in IDS:
            body = {"email": f"{customer_id}@example.com", "consents": {"feedback": {"email": True}}}
            assert api.put(f"/api/v1/customers/{customer_id}", json=body).status_code == 200
        assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
        assert api.post("/api/v1/strategies", json=strategy_body(channels=["email"])).status_code == 201
        periodic = {
            "key": "weekly-panel",
            "kind": "periodic",
            "schedule": {"cron": "0 10 * * 1", "time_zone": "Asia/Shanghai"},
            "channels": ["email"],
            "survey": "payment-csat",
        }
        assert api.post("/api/v1/strategies", json=periodic).status_code == 201
        # When every customer transfers, and later the weekly wave fires and the worker sends
        events = [transfer(f"t-{customer_id}", customer_id) for customer_id in IDS]
        assert api.post("/api/v1/events", json={"events": events}).json()["accepted"] == len(IDS)
        clock.advance(dt.timedelta(days=15))
        Worker(held_runtime).run_until_idle()
        clock.advance(dt.timedelta(minutes=31))
        Worker(held_runtime).run_until_idle()
    # Then every follow-up of a held-out customer is suppressed as global_holdout, by both strategies
    outcomes = _outcomes(held_runtime)
    for customer_id in held:
        assert outcomes[customer_id] == {("suppressed", "global_holdout")}, customer_id
    assert all(("suppressed", "global_holdout") not in outcomes[c] for c in set(IDS) - held)
    # And no message reached any of them; the others were asked
    recipients = {message["To"] for message in smtp.messages}
    assert recipients.isdisjoint({f"{customer_id}@example.com" for customer_id in held})
    assert len(recipients) >= len(IDS) - len(held) - 2


def test_raising_the_holdout_stops_what_was_planned_for_the_new_slice(
    runtime: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock, settings: Settings
) -> None:
    # Given follow-ups planned with no global holdout
    for customer_id in IDS[:20]:
        body = {"email": f"{customer_id}@example.com", "consents": {"feedback": {"email": True}}}
        assert api.put(f"/api/v1/customers/{customer_id}", json=body).status_code == 200
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    body = strategy_body(channels=["email"], delay="PT1H")
    assert api.post("/api/v1/strategies", json=body).status_code == 201
    api.post("/api/v1/events", json={"events": [transfer(f"t-{c}", c) for c in IDS[:20]]})
    # When the holdout is raised before they are sent
    held = _held_out(IDS[:20], 30.0)
    assert held
    raised = build_runtime(settings.model_copy(update={"global_holdout_percent": 30.0}), clock=clock)
    try:
        clock.advance(dt.timedelta(hours=2))
        Worker(raised).run_until_idle()
    finally:
        raised.close()
    # Then the send-time check stops those in the new slice
    outcomes = _outcomes(runtime)
    for customer_id in held:
        assert outcomes[customer_id] == {("suppressed", "global_holdout")}, customer_id
    assert {message["To"] for message in smtp.messages}.isdisjoint({f"{c}@example.com" for c in held})


def test_the_slice_is_the_same_in_another_process() -> None:
    script = (
        "from followup.policy.service import in_global_holdout;"
        f"print(sorted(c for c in {IDS!r} if in_global_holdout(c, {PERCENT})))"
    )
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert other.stdout.strip() == str(sorted(_held_out(IDS, PERCENT)))
