"""Channels say what they need; the contact policy and dispatch read it instead of knowing channels
by name. An SMS channel (its capabilities: a phone number) plans and sends only to customers with a
phone, and is handed the number; a customer without one falls to the next channel at planning."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from followup.app import create_app
from followup.channels import capabilities
from followup.channels.base import Channel
from followup.channels.capabilities import BUILT_IN, Capabilities, OptOut
from followup.channels.testing import RecordingChannel
from followup.config import Settings
from followup.customers.contacts import ContactKind
from followup.customers.schemas import CustomerSnapshot
from followup.kernel.time import ManualClock
from followup.policy import service as policy
from followup.runtime import Runtime, build_runtime
from followup.staff import service as staff
from followup.worker import Worker
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey
from tests.conftest import wipe


def _snapshot(*, email: bool, phone: bool) -> CustomerSnapshot:
    return CustomerSnapshot(
        id=1,
        external_id="c1",
        locale="en",
        time_zone="UTC",
        attributes={},
        reach=(1 if email else 0) | (2 if phone else 0),
        event_count=0,
    )


def test_reachability_is_read_from_the_channels_capabilities() -> None:
    phone_only, email_only = _snapshot(email=False, phone=True), _snapshot(email=True, phone=False)
    assert policy.reachable(phone_only, "sms")
    assert not policy.reachable(email_only, "sms")
    assert policy.reachable(email_only, "email")
    assert not policy.reachable(phone_only, "email")
    assert policy.reachable(phone_only, "inapp")
    assert policy.reachable(email_only, "inapp")
    assert not policy.reachable(phone_only, "push")  # no customer holds a push device yet
    assert not policy.reachable(phone_only, "carrier-pigeon")  # unknown here: never reachable


def test_an_installed_channel_is_read_as_it_declares_itself() -> None:
    # A plugin that needs no address reaches everyone; one that needs an email only those with one.
    try:
        capabilities.install("wecom", Capabilities(address=None, opt_out=OptOut.APP_SETTING, idempotent=True))
        capabilities.install("mailer", Capabilities(address=ContactKind.EMAIL, opt_out=OptOut.LINK, idempotent=False))
        assert policy.reachable(_snapshot(email=False, phone=False), "wecom")
        assert not policy.reachable(_snapshot(email=False, phone=True), "mailer")
        assert policy.reachable(_snapshot(email=True, phone=False), "mailer")
    finally:
        capabilities._installed.pop("wecom", None)
        capabilities._installed.pop("mailer", None)


@pytest.fixture
def wallet(settings: Settings, clock: ManualClock) -> Iterator[tuple[Runtime, TestClient, dict[str, RecordingChannel]]]:
    sent = {"sms": RecordingChannel("sms"), "email": RecordingChannel("email", idempotent=False)}
    channels: dict[str, Channel] = dict(sent)
    runtime = build_runtime(settings, clock=clock, channels=channels)
    try:
        with runtime.session() as session:
            _, key = staff.create_api_key(session, name="tests", now=clock.now())
        with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {key}"}) as api:
            yield runtime, api, sent
    finally:
        runtime.close()
        wipe(runtime.engine)


def test_sms_plans_and_sends_to_the_phone_and_a_customer_without_one_gets_email(
    wallet: tuple[Runtime, TestClient, dict[str, RecordingChannel]], clock: ManualClock
) -> None:
    runtime, api, sent = wallet
    assert sent["sms"].capabilities == BUILT_IN["sms"]
    # Given one customer with a phone and one without, both consenting to SMS and email
    consents = {"feedback": {"email": True, "sms": True}}
    make_customer(runtime, "with-phone", phone="+8613812341234", consents=consents)
    make_customer(runtime, "no-phone", consents=consents)
    make_survey(runtime)
    make_strategy(runtime, channels=["sms", "email"])
    # When both make a large transfer and the invitations fall due
    events = [transfer("e1", "with-phone"), transfer("e2", "no-phone")]
    assert api.post("/api/v1/events", json={"events": events}).json()["accepted"] == 2
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()
    # Then the SMS went to the phone, in E.164, and the customer without one was emailed
    assert [d.address for d in sent["sms"].sent] == ["+8613812341234"]
    assert [d.address for d in sent["email"].sent] == ["no-phone@example.com"]
    channels = {item["customer_id"]: item["channel"] for item in api.get("/api/v1/followups").json()["items"]}
    assert channels == {"with-phone": "sms", "no-phone": "email"}


def test_a_plugin_channel_is_consented_planned_and_sent_like_a_built_in_one(
    settings: Settings, clock: ManualClock
) -> None:
    # Given a process running a plugin channel "wecom" that needs no address
    wecom = RecordingChannel("wecom")
    channels: dict[str, Channel] = {"wecom": wecom, "email": RecordingChannel("email", idempotent=False)}
    runtime = build_runtime(settings, clock=clock, channels=channels)
    try:
        with runtime.session() as session:
            _, key = staff.create_api_key(session, name="tests", now=clock.now())
        with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {key}"}) as api:
            # When a customer consents to it, and another to a channel nobody installed
            body = {"locale": "en", "consents": {"feedback": {"wecom": True}}, "preferred_channel": "wecom"}
            assert api.put("/api/v1/customers/c1", json=body).status_code == 200
            typo = api.put("/api/v1/customers/c2", json={"consents": {"feedback": {"wecomm": True}}})
            make_survey(runtime)
            make_strategy(runtime, channels=["wecom"])
            assert api.post("/api/v1/events", json={"events": [transfer("e1", "c1")]}).json()["accepted"] == 1
            clock.advance(dt.timedelta(minutes=31))
            Worker(runtime).run_until_idle()
            [followup] = api.get("/api/v1/followups").json()["items"]
            consents = api.get("/api/v1/customers/c1").json()["consents"]
    finally:
        runtime.close()
        wipe(runtime.engine)
    # Then the unknown name is refused, naming what is installed
    assert typo.status_code == 422
    assert typo.json()["error"]["field"] == "consents.feedback.wecomm"
    assert "there is no channel 'wecomm'" in typo.json()["error"]["message"]
    assert "wecom" in typo.json()["error"]["message"]
    # And the plugin was consented, chosen and sent on, once, without an address
    assert consents["feedback"]["wecom"] is True
    assert [(d.address, d.content.link.startswith("http")) for d in wecom.sent] == [(None, True)]
    assert (followup["channel"], followup["status"]) == ("wecom", "invited")
    assert followup["messages"][0]["state"] == "accepted"
