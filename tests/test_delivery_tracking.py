"""What comes back about an email and an inbox item: bounces signed in the Standard Webhooks form
mark the address and the message, a complaint withdraws consent, and answered or expired items
leave the inbox."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from followup.channels.sms.webhooks import sign
from followup.config import Settings
from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.worker import Worker
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey

SECRET = "whsec_" + "Ym91bmNlLXNlY3JldC1mb3ItdGVzdHM="  # base64 of "bounce-secret-for-tests"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"email_webhook_secret": SecretStr(SECRET)})


def _post_bounces(api: TestClient, body: Any, clock: ManualClock, *, secret: str = SECRET) -> Any:
    raw = json.dumps(body).encode()
    stamp = int(clock.now().timestamp())
    headers = {
        "content-type": "application/json",
        "webhook-id": "msg_bounce_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(secret, "msg_bounce_1", stamp, raw),
    }
    return api.post("/hooks/email/bounces", content=raw, headers=headers)


def _invite_by_email(runtime: Runtime, api: TestClient, clock: ManualClock, *, recontact_days: int = 30) -> None:
    make_survey(runtime)
    make_strategy(runtime, channels=["email", "inapp"], recontact_days=recontact_days)
    assert api.post("/api/v1/events", json={"events": [transfer("e1", "c1")]}).status_code == 200
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()


def test_a_hard_bounce_marks_the_address_and_the_message_and_the_followup_moves_on(
    runtime: Runtime, api: TestClient, clock: ManualClock, smtp: Any
) -> None:
    make_customer(runtime, "c1")
    _invite_by_email(runtime, api, clock)
    [followup] = api.get("/api/v1/followups").json()["items"]
    message_id = followup["messages"][0]["attempts"][0]["provider_ref"]
    # Unsigned, or stale, reports are refused and change nothing
    assert api.post("/hooks/email/bounces", json={"type": "hard", "email": "c1@example.com"}).status_code == 401
    clock.advance(dt.timedelta(minutes=10))
    stale = {"webhook-id": "x", "webhook-timestamp": str(int(clock.now().timestamp()) - 600)}
    raw = json.dumps({"type": "hard", "email": "c1@example.com"}).encode()
    stale["webhook-signature"] = sign(SECRET, "x", int(stale["webhook-timestamp"]), raw)
    assert api.post("/hooks/email/bounces", content=raw, headers=stale).status_code == 401
    assert api.get("/api/v1/customers/c1").json()["contact_points"][0]["status"] == "valid"
    # A signed hard bounce naming the message marks both
    bounce = {"type": "hard", "email": "C1@Example.com", "message_id": message_id}
    answer = _post_bounces(api, bounce, clock)
    assert answer.status_code == 200
    assert answer.json() == {"ok": True, "marked": 1}
    Worker(runtime).run_until_idle()
    [email] = [p for p in api.get("/api/v1/customers/c1").json()["contact_points"] if p["kind"] == "email"]
    assert (email["status"], email["status_reason"]) == ("bounced", "hard_bounce")
    [followup] = api.get("/api/v1/followups").json()["items"]
    assert [(m["channel"], m["state"]) for m in followup["messages"]] == [("email", "bounced"), ("inapp", "accepted")]
    # A report that does not read is a 422 naming the field
    bad = _post_bounces(api, {"type": "sideways", "email": "c1@example.com"}, clock)
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "webhook_invalid")


def test_a_complaint_withdraws_email_consent(runtime: Runtime, api: TestClient, clock: ManualClock) -> None:
    make_customer(runtime, "c1")
    assert _post_bounces(api, [{"type": "complaint", "email": "c1@example.com"}], clock).status_code == 200
    consents = api.get("/api/v1/customers/c1").json()["consents"]["feedback"]
    assert (consents["email"], consents["inapp"]) == (False, True)
    # A spam complaint is the customer's unsubscribe, and the ledger says so
    latest = api.get("/api/v1/customers/c1/consents/history").json()["items"][0]
    assert (latest["channel"], latest["granted"], latest["source"]) == ("email", False, "unsubscribe")


def test_answered_and_expired_items_leave_the_inbox(
    runtime: Runtime, api: TestClient, clock: ManualClock, smtp: Any
) -> None:
    make_customer(runtime, "c1", consents={"feedback": {"inapp": True}})
    make_customer(runtime, "c2", consents={"feedback": {"inapp": True}})
    make_survey(runtime)
    make_strategy(runtime, channels=["inapp"])
    events = [transfer("e1", "c1"), transfer("e2", "c2")]
    assert api.post("/api/v1/events", json={"events": events}).status_code == 200
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()
    [item] = api.get("/api/v1/customers/c1/inbox").json()
    assert len(api.get("/api/v1/customers/c2/inbox").json()) == 1
    # When c1 answers through the item's link
    token = item["link"].rsplit("/", 1)[1]
    assert api.post(f"/s/{token}", data={"nps": "9"}, follow_redirects=False).status_code in (200, 303)
    # Then c1's item left the inbox; c2's is still there until the follow-up expires
    assert api.get("/api/v1/customers/c1/inbox").json() == []
    clock.advance(dt.timedelta(days=8))
    Worker(runtime).run_until_idle()
    assert api.get("/api/v1/customers/c2/inbox").json() == []
