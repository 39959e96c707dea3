"""Dispatch reliability through real channels: retries with backoff and jitter, giving up after the
configured attempts, cascading to the next channel, permanent failures, idempotent in-app delivery.

The email channel is either the shipped `RecordingChannel` with scripted failures or the real
`SmtpChannel` pointed at a port nobody listens on (a real "connection refused"); the in-app channel
is the real one unless a test scripts it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from followup.app import create_app
from followup.channels.base import Channel, Delivery, Receipt
from followup.channels.capabilities import BUILT_IN
from followup.channels.email import SmtpChannel
from followup.channels.inapp import InAppChannel
from followup.channels.schemas import MessageContent
from followup.channels.testing import RecordingChannel
from followup.config import Settings
from followup.customers import service as customers
from followup.dispatch import service as dispatch
from followup.kernel.time import ManualClock
from followup.runtime import Runtime, build_runtime
from followup.staff import service as staff
from followup.worker import Worker
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey
from tests.conftest import START, SmtpSink, free_port, wipe

RETRY_BASE = 60.0  # settings.retry_base_seconds in tests/conftest.py
INVITE_DUE = START + dt.timedelta(minutes=30)  # the builder strategy's delay after the event at START


@dataclass
class Wallet:
    """One engine as a wallet runs it: its runtime, its REST API and a worker."""

    runtime: Runtime
    api: TestClient
    worker: Worker
    channels: dict[str, Channel]

    def followup(self, customer_id: str = "c1") -> dict[str, Any]:
        [found] = self.api.get("/api/v1/followups", params={"customer_id": customer_id}).json()["items"]
        return dict(found)

    def messages(self, customer_id: str = "c1") -> list[dict[str, Any]]:
        return list(self.followup(customer_id)["messages"])

    def inbox(self, customer_id: str = "c1") -> list[dict[str, Any]]:
        """The items as the app shows them, without the privacy page's link: its token is made
        afresh at every reading."""
        response = self.api.get(f"/api/v1/customers/{customer_id}/inbox")
        assert response.status_code == 200, response.text
        items = list(response.json())
        assert all("/p/" in item.pop("my_data_url") for item in items)
        return items


WalletFactory = Callable[..., Wallet]


@pytest.fixture
def wallet_with(settings: Settings, clock: ManualClock) -> Iterator[WalletFactory]:
    """Build an engine whose email channel (and optionally in-app channel) the test chooses.

    Without an in-app channel given, the real in-app inbox is used.
    """
    with ExitStack() as stack:

        def build(*, email: Channel, inapp: Channel | None = None, **setting_overrides: Any) -> Wallet:
            fields = settings.model_dump()
            fields.update(setting_overrides)
            channels: dict[str, Channel] = {"email": email}
            runtime = build_runtime(Settings(_env_file=None, **fields), clock=clock, channels=channels)  # type: ignore[call-arg]
            stack.callback(runtime.close)
            stack.callback(wipe, runtime.engine)
            channels["inapp"] = inapp or InAppChannel(runtime.session, keys=runtime.keys, clock=clock)
            with runtime.session() as session:
                _, key = staff.create_api_key(session, name="tests", now=clock.now())
            api = stack.enter_context(TestClient(create_app(runtime), headers={"Authorization": f"Bearer {key}"}))
            return Wallet(runtime=runtime, api=api, worker=Worker(runtime), channels=channels)

        yield build


def given_large_transfers(wallet: Wallet, *customer_ids: str, channels: list[str] | None = None) -> None:
    """Consenting customers, each with a large transfer at START; invitations due at INVITE_DUE."""
    for customer_id in customer_ids:
        make_customer(wallet.runtime, customer_id)
    make_survey(wallet.runtime)
    make_strategy(wallet.runtime, channels=channels or ["email", "inapp"])
    events = [transfer(f"e-{customer_id}", customer_id) for customer_id in customer_ids]
    assert wallet.api.post("/api/v1/events", json={"events": events}).json()["accepted"] == len(customer_ids)


def due_at(message: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(message["due_at"])


def connection_refused_smtp() -> SmtpChannel:
    """The real SMTP channel aimed at a loopback port nobody listens on."""
    return SmtpChannel(f"smtp://127.0.0.1:{free_port()}", sender="feedback@wallet.example", timeout=5)


def test_transient_failure_is_retried_after_exponential_backoff_and_not_before(
    wallet_with: WalletFactory, clock: ManualClock
) -> None:
    # Given an email channel that fails twice transiently, then works
    email, inapp = RecordingChannel("email", idempotent=False), RecordingChannel("inapp")
    email.fail_next = ["transient", "transient"]
    wallet = wallet_with(email=email, inapp=inapp)
    given_large_transfers(wallet, "c1")

    # When the invitation falls due and the first send fails
    clock.set(INVITE_DUE)
    wallet.worker.run_until_idle()

    # Then the retry waits half to all of the first backoff (base 60 s)
    [message] = wallet.messages()
    assert (message["status"], message["attempt_count"], message["last_error"]) == (
        "queued",
        1,
        "scripted transient failure",
    )
    retry_at = due_at(message)
    assert (
        INVITE_DUE + dt.timedelta(seconds=RETRY_BASE / 2) <= retry_at <= INVITE_DUE + dt.timedelta(seconds=RETRY_BASE)
    )

    # And nothing is sent, or even tried, one second before the retry is due
    clock.set(retry_at - dt.timedelta(seconds=1))
    wallet.worker.run_until_idle()
    assert email.sent == []
    assert [(m["status"], m["attempt_count"]) for m in wallet.messages()] == [("queued", 1)]

    # When the retry falls due and fails again, the backoff doubles
    clock.set(retry_at)
    wallet.worker.run_until_idle()
    [message] = wallet.messages()
    assert (message["status"], message["attempt_count"]) == ("queued", 2)
    second_retry_at = due_at(message)
    assert (
        retry_at + dt.timedelta(seconds=RETRY_BASE)
        <= second_retry_at
        <= retry_at + dt.timedelta(seconds=2 * RETRY_BASE)
    )

    # When that retry falls due, the mail goes out, once
    clock.set(second_retry_at)
    wallet.worker.run_until_idle()
    assert [delivery.address for delivery in email.sent] == ["c1@example.com"]
    [message] = wallet.messages()
    assert (message["channel"], message["status"], message["attempt_count"]) == ("email", "sent", 3)
    assert dt.datetime.fromisoformat(message["sent_at"]) == second_retry_at

    # And the follow-up stayed on email: nothing cascaded, nothing sent twice
    assert inapp.sent == []
    assert (wallet.followup()["status"], wallet.followup()["channel"]) == ("invited", "email")

    # And the message keeps every try: two refusals and the acceptance, each with its time
    tries = message["attempts"]
    assert [(t["number"], t["provider"], t["outcome"], t["error_code"]) for t in tries] == [
        (1, "email", "transient", "transient_refusal"),
        (2, "email", "transient", "transient_refusal"),
        (3, "email", "accepted", None),
    ]
    assert [dt.datetime.fromisoformat(t["started_at"]) for t in tries] == [INVITE_DUE, retry_at, second_retry_at]
    assert all(isinstance(t["latency_ms"], int) and t["latency_ms"] >= 0 for t in tries)
    assert tries[2]["provider_ref"] == f"email:{email.sent[0].idempotency_key}"
    assert (message["state"], message["accepted_at"]) == ("accepted", message["sent_at"])
    assert [message[k] for k in ("delivered_at", "opened_at", "clicked_at", "answered_at")] == [None] * 4


def test_a_message_is_clicked_by_its_links_first_get_and_answered_by_its_rating(
    wallet_with: WalletFactory, clock: ManualClock
) -> None:
    # Given an invitation emailed to c1
    email = RecordingChannel("email", idempotent=False)
    wallet = wallet_with(email=email)
    given_large_transfers(wallet, "c1")
    clock.set(INVITE_DUE)
    wallet.worker.run_until_idle()
    path = email.sent[0].content.link.removeprefix("http://testserver")

    # When a link checker asks for the page (HEAD), nothing is clicked
    assert wallet.api.head(path).status_code == 200
    assert wallet.messages()[0]["clicked_at"] is None

    # When the customer opens the link, and again a minute later
    clicked_at = clock.advance(dt.timedelta(minutes=5))
    assert wallet.api.get(path).status_code == 200
    clock.advance(dt.timedelta(minutes=1))
    assert wallet.api.get(path).status_code == 200

    # Then the first opening is the click
    [message] = wallet.messages()
    assert dt.datetime.fromisoformat(message["clicked_at"]) == clicked_at
    assert message["answered_at"] is None

    # When they rate
    answered_at = clock.advance(dt.timedelta(minutes=1))
    assert wallet.api.post(path, data={"nps": "9"}).status_code in (200, 303)
    clock.advance(dt.timedelta(seconds=30))
    wallet.worker.run_until_idle()  # does what the answer's transaction left to it

    # Then the message is answered when the customer answered, still the one accepted message it was
    [message] = wallet.messages()
    assert dt.datetime.fromisoformat(message["answered_at"]) == answered_at
    assert dt.datetime.fromisoformat(message["clicked_at"]) == clicked_at
    assert message["state"] == "accepted"
    clock.advance(dt.timedelta(hours=1))
    wallet.worker.run_until_idle()
    assert len(email.sent) == 1


def test_retries_of_messages_failing_together_are_spread_by_jitter(
    wallet_with: WalletFactory, clock: ManualClock
) -> None:
    # Given five customers whose invitations fall due at the same moment, and a failing channel
    email = RecordingChannel("email", idempotent=False)
    email.fail_next = ["transient"] * 5
    wallet = wallet_with(email=email)
    customers = [f"c{n}" for n in range(1, 6)]
    given_large_transfers(wallet, *customers)

    # When every first send fails at once
    clock.set(INVITE_DUE)
    wallet.worker.run_until_idle()

    # Then every retry lies in the first backoff window, but they do not all fall on one instant
    retries = [due_at(wallet.messages(customer)[0]) for customer in customers]
    window = (INVITE_DUE + dt.timedelta(seconds=RETRY_BASE / 2), INVITE_DUE + dt.timedelta(seconds=RETRY_BASE))
    assert all(window[0] <= retry <= window[1] for retry in retries), retries
    assert len(set(retries)) > 1
    assert email.sent == []


def test_email_failing_every_attempt_fails_and_the_customer_gets_the_inapp_inbox_item(
    wallet_with: WalletFactory, clock: ManualClock, smtp: SmtpSink
) -> None:
    # Given a mail server that refuses connections, and at most 3 attempts per message
    wallet = wallet_with(email=connection_refused_smtp(), send_max_attempts=3)
    given_large_transfers(wallet, "c1", channels=["email", "inapp"])
    assert wallet.inbox() == []

    # When the invitation falls due and every attempt is refused
    clock.set(INVITE_DUE)
    for attempt in (1, 2):
        failed_at = clock.now()
        wallet.worker.run_until_idle()
        [message] = wallet.messages()
        assert (message["status"], message["attempt_count"]) == ("queued", attempt)
        assert message["last_error"].startswith("cannot reach the mail server")
        backoff = RETRY_BASE * 2 ** (attempt - 1)
        assert (
            failed_at + dt.timedelta(seconds=backoff / 2)
            <= due_at(message)
            <= failed_at + dt.timedelta(seconds=backoff)
        )
        assert wallet.inbox() == [], "no cascade while email attempts remain"
        clock.set(due_at(message))
    wallet.worker.run_until_idle()

    # Then the email message failed for good after exactly 3 attempts ...
    email_message, inapp_message = wallet.messages()
    assert (email_message["channel"], email_message["status"], email_message["reason"]) == (
        "email",
        "failed",
        "send_failed",
    )
    assert email_message["attempt_count"] == 3
    # ... the follow-up cascaded to in-app, and the customer has the invitation in the inbox
    assert (inapp_message["channel"], inapp_message["status"], inapp_message["attempt_count"]) == ("inapp", "sent", 1)
    followup = wallet.followup()
    assert (followup["status"], followup["channel"]) == ("invited", "inapp")
    assert ("cascaded", "send_failed", "email failed; trying inapp") in [
        (h["action"], h["reason"], h["detail"]) for h in followup["history"]
    ]
    [item] = wallet.inbox()
    assert item["title"] == "邀请您评价：支付体验回访"
    assert item["link"].startswith("http://testserver/s/")
    assert item["read"] is False

    # And no email ever arrived anywhere, and no further attempt is made later
    clock.advance(dt.timedelta(hours=2))
    wallet.worker.run_until_idle()
    assert smtp.messages == []
    assert [(m["channel"], m["status"], m["attempt_count"]) for m in wallet.messages()] == [
        ("email", "failed", 3),
        ("inapp", "sent", 1),
    ]
    assert len(wallet.inbox()) == 1


def test_permanent_failure_on_the_last_channel_ends_the_followup_as_failed(
    wallet_with: WalletFactory, clock: ManualClock
) -> None:
    # Given both channels refuse the message permanently
    email, inapp = RecordingChannel("email", idempotent=False), RecordingChannel("inapp")
    email.fail_next = ["permanent"]
    inapp.fail_next = ["permanent"]
    wallet = wallet_with(email=email, inapp=inapp)
    given_large_transfers(wallet, "c1", channels=["email", "inapp"])

    # When the invitation falls due
    clock.set(INVITE_DUE)
    wallet.worker.run_until_idle()

    # Then each channel was tried once, without retry, and the follow-up failed with the reason
    assert [(m["channel"], m["status"], m["reason"], m["attempt_count"]) for m in wallet.messages()] == [
        ("email", "failed", "send_failed", 1),
        ("inapp", "failed", "send_failed", 1),
    ]
    followup = wallet.followup()
    assert (followup["status"], followup["reason"], followup["next_step"], followup["due_at"]) == (
        "failed",
        "send_failed",
        None,
        None,
    )
    assert followup["closed_at"] is not None
    assert [h["action"] for h in followup["history"]] == ["planned", "invited", "cascaded", "invited", "failed"]

    # And nothing is sent afterwards: no retry, no reminder, on either channel
    clock.advance(dt.timedelta(days=3))
    wallet.worker.run_until_idle()
    assert (email.sent, inapp.sent) == ([], [])
    assert len(wallet.messages()) == 2
    assert wallet.followup()["status"] == "failed"


class WorkerDied(BaseException):
    """Stands for SIGKILL: not an error any code path catches."""


class DiesAfterDelivering:
    """The real in-app channel, in a worker that dies right after the item is delivered and before
    the dispatcher records it."""

    name = "inapp"
    capabilities = BUILT_IN["inapp"]

    def __init__(self, inner: InAppChannel) -> None:
        self.inner = inner

    def send(self, delivery: Delivery, *, handoff: Callable[[], None]) -> Receipt:
        self.inner.send(delivery, handoff=handoff)
        raise WorkerDied


def test_inapp_delivery_of_the_same_message_twice_leaves_one_inbox_item(
    wallet_with: WalletFactory, clock: ManualClock
) -> None:
    # Given an in-app-only strategy, and a worker that dies after delivering, before recording
    wallet = wallet_with(email=RecordingChannel("email", idempotent=False))
    real_inapp = wallet.channels["inapp"]
    assert isinstance(real_inapp, InAppChannel)
    wallet.channels["inapp"] = DiesAfterDelivering(real_inapp)
    given_large_transfers(wallet, "c1", channels=["inapp"])
    clock.set(INVITE_DUE)
    with pytest.raises(WorkerDied):
        wallet.worker.run_until_idle()
    [first_item] = wallet.inbox()
    assert [(m["status"], m["attempt_count"]) for m in wallet.messages()] == [("sending", 1)]

    # When another worker takes the message over after the lease ran out and delivers it again
    wallet.channels["inapp"] = real_inapp
    clock.advance(dt.timedelta(seconds=wallet.runtime.settings.worker_lease_seconds + 1))
    wallet.worker.run_until_idle()

    # Then the message is sent and the customer still has exactly the one inbox item
    assert [(m["channel"], m["status"], m["attempt_count"]) for m in wallet.messages()] == [("inapp", "sent", 2)]
    assert wallet.inbox() == [first_item]

    # And the same delivery handed to the channel yet again answers with the first item, adding nothing
    with wallet.runtime.read_session() as session:
        customer_id = customers.access_customer(session, "c1").id
    again = Delivery(
        message_id=wallet.messages()[0]["id"],
        idempotency_key=dispatch.idempotency_key(wallet.followup()["id"], "invite", "inapp"),
        customer_id=customer_id,
        address=None,
        content=MessageContent(locale="zh-CN", subject="重复", greeting="", body="", link="http://x/", link_label=""),
    )
    assert real_inapp.send(again, handoff=lambda: None) == Receipt(provider_ref=f"inbox:{first_item['id']}")
    assert wallet.inbox() == [first_item]


class SlowEmail:
    """An email provider whose first hand-over is so slow that the worker's lease runs out meanwhile."""

    name = "email"
    capabilities = BUILT_IN["email"]

    def __init__(self) -> None:
        self.sent: list[Delivery] = []
        self.while_first_send_stalls: Callable[[], None] | None = None

    def send(self, delivery: Delivery, *, handoff: Callable[[], None]) -> Receipt:
        stall, self.while_first_send_stalls = self.while_first_send_stalls, None
        if stall is not None:
            stall()
        handoff()
        self.sent.append(delivery)
        return Receipt(provider_ref=f"slow:{len(self.sent)}")


def test_a_worker_whose_claim_was_taken_over_neither_sends_nor_records(
    wallet_with: WalletFactory, clock: ManualClock
) -> None:
    # Given worker A stalls before handing its message over, long enough for its lease to run out
    email = SlowEmail()
    wallet = wallet_with(email=email, inapp=RecordingChannel("inapp"))
    given_large_transfers(wallet, "c1")
    clock.set(INVITE_DUE)
    worker_b = Worker(wallet.runtime)

    def worker_b_takes_over() -> None:
        clock.advance(dt.timedelta(seconds=wallet.runtime.settings.worker_lease_seconds + 1))
        worker_b.send_due_messages()

    email.while_first_send_stalls = worker_b_takes_over

    # When A finally tries to hand the message over, after B sent it under a newer claim
    wallet.worker.run_until_idle()

    # Then the email went out once, by B, and A recorded nothing over B's outcome
    assert [d.idempotency_key for d in email.sent] == [email.sent[0].idempotency_key]
    [message] = wallet.messages()
    assert (message["status"], message["attempt_count"], message["last_error"]) == ("sent", 2, None)
    assert wallet.followup()["status"] == "invited"


def test_the_app_reports_a_message_opened_and_an_inbox_item_read(
    wallet_with: WalletFactory, clock: ManualClock
) -> None:
    # Given an invitation delivered to c1's in-app inbox (email refused for good)
    email = RecordingChannel("email", idempotent=False)
    email.fail_next = ["permanent"]
    wallet = wallet_with(email=email)
    given_large_transfers(wallet, "c1")
    make_customer(wallet.runtime, "c2")
    clock.set(INVITE_DUE)
    wallet.worker.run_until_idle()
    email_message, inapp_message = wallet.messages()
    [item] = wallet.inbox()

    # A message not accepted by its provider cannot have been opened
    refused = wallet.api.post(f"/api/v1/messages/{email_message['id']}/opened")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "message_not_sent")
    missing = wallet.api.post("/api/v1/messages/999999/opened")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "message_not_found")
    # Nor can another customer read c1's inbox item
    stranger = wallet.api.post(f"/api/v1/customers/c2/inbox/{item['id']}/read")
    assert (stranger.status_code, stranger.json()["error"]["code"]) == (404, "inbox_item_not_found")
    assert wallet.inbox()[0]["read"] is False

    # When the customer reads the item, and later the app also reports the message opened
    read_at = clock.advance(dt.timedelta(minutes=3))
    answer = wallet.api.post(f"/api/v1/customers/c1/inbox/{item['id']}/read")
    assert (answer.status_code, answer.json()) == (200, {"id": item["id"], "read": True})
    clock.advance(dt.timedelta(minutes=1))
    opened = wallet.api.post(f"/api/v1/messages/{inapp_message['id']}/opened")

    # Then the item is read, and the message was opened when it was read: the first report counts
    assert opened.status_code == 200
    assert dt.datetime.fromisoformat(opened.json()["opened_at"]) == read_at
    assert wallet.inbox()[0]["read"] is True
    message = wallet.messages()[1]
    assert (message["channel"], message["state"]) == ("inapp", "accepted")
    assert dt.datetime.fromisoformat(message["opened_at"]) == read_at
