"""Cases: a security concern blocks further follow-ups until a person closes the case."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.worker import Worker
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey
from tests.conftest import SmtpSink
from tests.helpers import survey_path


def _answer_with_security_comment(runtime: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock) -> None:
    api.post("/api/v1/events", json={"events": [transfer("e1", "c1")]})
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()
    path = survey_path(smtp.wait_for(1)[0])
    assert api.post(path, data={"step": "rating", "nps": "8"}, follow_redirects=False).status_code == 303
    assert (
        api.post(path, data={"step": "details", "comment": "I did not make this transfer, I was hacked"}).status_code
        == 200
    )


def test_security_case_blocks_followups_until_closed(
    runtime: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock
) -> None:
    # Given a customer whose answer raised a security concern, and a strategy that may recontact at once
    runtime.settings.fatigue_max_followups = 10
    make_customer(runtime, "c1")
    make_survey(runtime)
    make_strategy(runtime, recontact_days=0)
    _answer_with_security_comment(runtime, api, smtp, clock)
    cases = api.get("/api/v1/cases", params={"status": "open"}).json()["items"]
    assert [(c["kind"], c["priority"], c["customer_id"]) for c in cases] == [("security", "security", "c1")]

    # When another large transfer happens, no follow-up is planned while the case is open
    clock.advance(dt.timedelta(hours=1))
    api.post("/api/v1/events", json={"events": [transfer("e2", "c1")]})
    second = api.get("/api/v1/followups", params={"customer_id": "c1"}).json()["items"][0]
    assert (second["event_id"], second["status"], second["reason"]) == ("e2", "suppressed", "open_security_case")

    # When an agent closes the case, with what was done
    closed = api.post(f"/api/v1/cases/{cases[0]['id']}/close", json={"resolution": "card blocked, funds returned"})
    assert closed.status_code == 200
    assert closed.json()["status"] == "closed"
    assert closed.json()["closed_at"] == clock.now().isoformat().replace("+00:00", "Z")
    again = api.post(f"/api/v1/cases/{cases[0]['id']}/close", json={"resolution": "twice"})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "case_closed")

    # Then the next event may be followed up again
    api.post("/api/v1/events", json={"events": [transfer("e3", "c1")]})
    third = api.get("/api/v1/followups", params={"customer_id": "c1"}).json()["items"][0]
    assert (third["event_id"], third["status"], third["reason"]) == ("e3", "planned", None)


def test_closing_an_unknown_case_is_a_clear_404(api: TestClient) -> None:
    response = api.post("/api/v1/cases/999/close", json={"resolution": "done"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "case_not_found"
