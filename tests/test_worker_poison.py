"""One bad message must never poison the worker.

A survey title with a line break (stored before titles were checked), a channel with a bug,
content that no longer parses, a worker that dies on the same message again and again: each
fails that one message, once, and its follow-up moves on to the next channel, while the rest of
the batch is sent and the worker loop never logs `worker_tick_failed`.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from followup.channels.base import Delivery, Receipt
from followup.channels.capabilities import BUILT_IN
from followup.channels.email import SmtpChannel
from followup.channels.testing import RecordingChannel
from followup.config import Settings
from followup.customers import service as customers
from followup.dispatch.models import Message
from followup.kernel.time import ManualClock
from followup.surveys.models import Survey, SurveyVersion
from tests import test_dispatch
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey
from tests.conftest import SmtpSink
from tests.test_dispatch import INVITE_DUE, Wallet, WalletFactory, given_large_transfers

wallet_with = test_dispatch.wallet_with  # the fixture that builds an engine with the test's channels
POISON = {"zh-CN": "支付体验\nBcc: attacker@evil.example", "en": "Your payment\r\nBcc: attacker@evil.example"}


def poison_survey(wallet: Wallet, key: str, **columns: Any) -> None:
    """Write straight into the survey's versions, as data stored before validation existed."""
    with wallet.runtime.session() as session:
        survey_id = select(Survey.id).where(Survey.key == key).scalar_subquery()
        session.execute(update(SurveyVersion).where(SurveyVersion.survey_id == survey_id).values(**columns))


def message_rows(wallet: Wallet, customer_id: str) -> list[tuple[Any, ...]]:
    return [
        (m["channel"], m["status"], m["reason"], m["attempt_count"], m["last_error"])
        for m in wallet.messages(customer_id)
    ]


@contextmanager
def worker_loop(wallet: Wallet) -> Iterator[list[dict[str, Any]]]:
    """`followup worker`'s own loop (run_forever) in a thread, its log captured; stopped on exit."""
    with capture_logs() as logs:
        thread = threading.Thread(target=wallet.worker.run_forever, daemon=True)
        thread.start()
        try:
            yield logs
        finally:
            wallet.worker.stopping.set()
            thread.join(timeout=20)
    assert not thread.is_alive()


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the worker did not get there in time"
        time.sleep(0.05)


def test_a_title_with_a_line_break_fails_its_email_once_and_the_followup_moves_to_inapp(
    wallet_with: WalletFactory, clock: ManualClock, smtp: SmtpSink, settings: Settings
) -> None:
    # Given the real SMTP channel, and c1's survey title poisoned in the database with "\nBcc:"
    wallet = wallet_with(
        email=SmtpChannel(settings.smtp_url, sender=settings.smtp_from, timeout=5), worker_poll_seconds=0.05
    )
    given_large_transfers(wallet, "c1")
    poison_survey(wallet, "payment-csat", title=POISON)
    # ... and c2, due in the same batch, on a strategy whose survey is clean
    make_customer(wallet.runtime, "c2")
    make_survey(wallet.runtime, "topup-csat", title={"zh-CN": "充值体验", "en": "Your top-up"})
    make_strategy(wallet.runtime, "after-topup", survey="topup-csat", trigger={"event_types": ["topup.succeeded"]})
    topup = transfer("e-c2", "c2", type="topup.succeeded")
    assert wallet.api.post("/api/v1/events", json={"events": [topup]}).json()["accepted"] == 1

    # When the invitations fall due and the worker's loop runs
    clock.set(INVITE_DUE)
    with worker_loop(wallet) as logs:
        wait_until(lambda: len(wallet.messages("c1")) == 2 and wallet.messages("c1")[1]["status"] == "sent")
        wait_until(lambda: wallet.messages("c2")[0]["status"] == "sent")

    # Then c1's email failed for good after exactly one attempt, naming the header, not its value
    assert message_rows(wallet, "c1") == [
        ("email", "failed", "send_failed", 1, "the Subject header contains the control character U+000A"),
        ("inapp", "sent", None, 1, None),
    ]
    # ... the follow-up cascaded to the in-app inbox, exactly as after a provider's refusal
    followup = wallet.followup("c1")
    assert (followup["status"], followup["channel"]) == ("invited", "inapp")
    assert ("cascaded", "send_failed", "email failed; trying inapp") in [
        (h["action"], h["reason"], h["detail"]) for h in followup["history"]
    ]
    assert len(wallet.inbox("c1")) == 1
    # ... c2's email went out, and it is the only email the server received: no Bcc smuggled in
    [received] = smtp.messages
    assert received["To"] == "c2@example.com"
    assert "充值体验" in str(received["Subject"])
    assert received["Bcc"] is None
    assert message_rows(wallet, "c2")[0][:4] == ("email", "sent", None, 1)
    # ... and the loop never failed, and logged no address
    events = [entry["event"] for entry in logs]
    assert "worker_tick_failed" not in events
    assert "attacker@evil.example" not in repr(logs)
    assert "c1@example.com" not in repr(logs)

    # And nothing is tried again for c1's email later
    clock.advance(dt.timedelta(hours=2))
    wallet.worker.run_until_idle()
    assert message_rows(wallet, "c1")[0][:4] == ("email", "failed", "send_failed", 1)
    assert len(smtp.messages) == 1


def test_a_channel_that_raises_fails_that_message_and_the_rest_of_the_batch_is_sent(
    wallet_with: WalletFactory, clock: ManualClock
) -> None:
    # Given an email channel with a bug that raises on the first send only, and two customers due
    email = RecordingChannel("email", idempotent=False)
    email.fail_next = ["crash"]
    wallet = wallet_with(email=email, worker_poll_seconds=0.05)
    given_large_transfers(wallet, "c1", "c2")

    # When the worker's loop sends the batch
    clock.set(INVITE_DUE)
    with worker_loop(wallet) as logs:
        wait_until(lambda: len(wallet.messages("c1")) == 2 and wallet.messages("c1")[1]["status"] == "sent")
        wait_until(lambda: wallet.messages("c2")[0]["status"] == "sent")

    # Then c1's email failed once, as an internal error, with no personal data in the record
    assert message_rows(wallet, "c1") == [
        ("email", "failed", "internal_error", 1, "internal_error: ScriptedCrash"),
        ("inapp", "sent", None, 1, None),
    ]
    # ... the follow-up cascaded to in-app
    followup = wallet.followup("c1")
    assert (followup["status"], followup["channel"]) == ("invited", "inapp")
    assert ("cascaded", "internal_error", "email failed; trying inapp") in [
        (h["action"], h["reason"], h["detail"]) for h in followup["history"]
    ]
    # ... c2's email, later in the same batch, was sent
    assert [delivery.address for delivery in email.sent] == ["c2@example.com"]
    assert message_rows(wallet, "c2") == [("email", "sent", None, 1, None)]
    # ... and the crash was logged once, by type and place, never with the address
    [crash] = [entry for entry in logs if entry["event"] == "send_crashed"]
    assert (crash["error"], crash["channel"], crash["log_level"]) == ("ScriptedCrash", "email", "error")
    assert crash["where"].startswith("testing.py:")
    assert "worker_tick_failed" not in [entry["event"] for entry in logs]
    assert "c1@example.com" not in repr(logs)

    # And the failed email is never tried again
    clock.advance(dt.timedelta(days=1))
    wallet.worker.run_until_idle()
    assert message_rows(wallet, "c1")[0][:4] == ("email", "failed", "internal_error", 1)
    assert len(email.sent) == 1


def test_content_that_no_longer_parses_fails_its_message_and_cascades(
    wallet_with: WalletFactory, clock: ManualClock
) -> None:
    # Given c1's queued invitation whose sealed content is no longer a message
    email = RecordingChannel("email", idempotent=False)
    wallet = wallet_with(email=email)
    given_large_transfers(wallet, "c1", "c2")
    clock.set(INVITE_DUE)
    wallet.worker.run_timers()
    [queued] = wallet.messages("c1")
    with wallet.runtime.session() as session:
        customer_id = customers.access_customer(session, "c1").id
        garbage = customers.seal_for_customer(
            session, customer_id, b"{not json", keys=wallet.runtime.keys, now=clock.now(), purpose="message-content"
        )
        session.execute(update(Message).where(Message.id == queued["id"]).values(content_sealed=garbage))

    # When the worker sends
    wallet.worker.run_until_idle()

    # Then that message failed as an internal error, c1 got the in-app invitation, c2 the email
    assert message_rows(wallet, "c1") == [
        ("email", "failed", "internal_error", 1, "internal_error: ValidationError"),
        ("inapp", "sent", None, 1, None),
    ]
    assert [delivery.address for delivery in email.sent] == ["c2@example.com"]


class HandsOverThenRaises:
    """An email provider with a bug that raises after the message was handed over."""

    name = "email"
    capabilities = BUILT_IN["email"]

    def send(self, delivery: Delivery, *, handoff: Callable[[], None]) -> Receipt:
        handoff()
        raise RuntimeError(f"bug after sending to {delivery.address}")


def test_a_crash_after_the_hand_over_is_unknown_not_failed_and_never_resent(
    wallet_with: WalletFactory, clock: ManualClock
) -> None:
    # Given a channel that may have delivered before it raised
    wallet = wallet_with(email=HandsOverThenRaises(), inapp=RecordingChannel("inapp"))
    given_large_transfers(wallet, "c1")

    # When the worker sends, and later runs again
    clock.set(INVITE_DUE)
    wallet.worker.run_until_idle()
    clock.advance(dt.timedelta(hours=1))
    wallet.worker.run_until_idle()

    # Then the message's fate is unknown: not failed, not cascaded, not tried again
    assert message_rows(wallet, "c1") == [("email", "unknown", None, 1, "internal_error: RuntimeError")]
    assert (wallet.followup("c1")["status"], wallet.followup("c1")["channel"]) == ("invited", "email")


class WorkerDied(BaseException):
    """Stands for SIGKILL or a hang until the lease runs out: nothing catches it."""


class DiesEveryTime:
    name = "email"
    capabilities = BUILT_IN["email"]

    def __init__(self) -> None:
        self.tries = 0

    def send(self, delivery: Delivery, *, handoff: Callable[[], None]) -> Receipt:
        self.tries += 1
        raise WorkerDied


def test_a_message_abandoned_more_often_than_the_attempt_limit_fails_and_cascades(
    wallet_with: WalletFactory, clock: ManualClock
) -> None:
    # Given at most 2 attempts per message, and a worker that dies on c1's email every time
    email = DiesEveryTime()
    wallet = wallet_with(email=email, send_max_attempts=2)
    given_large_transfers(wallet, "c1")
    lease = dt.timedelta(seconds=wallet.runtime.settings.worker_lease_seconds + 1)
    clock.set(INVITE_DUE)
    for attempt in (1, 2):
        with pytest.raises(WorkerDied):
            wallet.worker.run_until_idle()
        assert message_rows(wallet, "c1") == [("email", "sending", None, attempt, None)]
        clock.advance(lease)

    # When the lease runs out after the last attempt and a worker runs
    wallet.worker.run_until_idle()

    # Then the email failed without a third attempt, and the follow-up moved on to in-app
    assert email.tries == 2
    assert message_rows(wallet, "c1") == [
        (
            "email",
            "failed",
            "send_failed",
            2,
            "no outcome recorded in 2 attempts: the worker's lease ran out each time",
        ),
        ("inapp", "sent", None, 1, None),
    ]
    assert (wallet.followup("c1")["status"], wallet.followup("c1")["channel"]) == ("invited", "inapp")
    # And each abandoned try is on record as lost, with no answer and no latency
    lost = wallet.messages("c1")[0]["attempts"]
    assert [(t["number"], t["outcome"], t["latency_ms"]) for t in lost] == [(1, "lost", None), (2, "lost", None)]
    assert wallet.messages("c1")[0]["state"] == "failed"


def test_a_followup_whose_message_cannot_be_rendered_fails_alone(
    wallet_with: WalletFactory, clock: ManualClock
) -> None:
    # Given two follow-ups due together, one on a survey whose stored questions no longer render
    email = RecordingChannel("email", idempotent=False)
    wallet = wallet_with(email=email)
    given_large_transfers(wallet, "c1")
    poison_survey(wallet, "payment-csat", questions=[])
    make_customer(wallet.runtime, "c2")
    make_survey(wallet.runtime, "topup-csat")
    make_strategy(wallet.runtime, "after-topup", survey="topup-csat", trigger={"event_types": ["topup.succeeded"]})
    topup = transfer("e-c2", "c2", type="topup.succeeded")
    assert wallet.api.post("/api/v1/events", json={"events": [topup]}).json()["accepted"] == 1

    # When the invitations fall due
    clock.set(INVITE_DUE)
    with capture_logs() as logs:
        wallet.worker.run_until_idle()

    # Then c1's follow-up failed as an internal error, with no message, and c2's email went out
    followup = wallet.followup("c1")
    assert (followup["status"], followup["reason"], followup["next_step"]) == ("failed", "internal_error", None)
    assert [h["action"] for h in followup["history"]] == ["planned", "failed"]
    assert wallet.messages("c1") == []
    assert [delivery.address for delivery in email.sent] == ["c2@example.com"]
    assert [(entry["event"], entry["error"]) for entry in logs if entry["event"] == "followup_step_crashed"] == [
        ("followup_step_crashed", "StopIteration")
    ]


class DatabaseGoneAway:
    """A send during which the database stops answering (here raised by the provider's stand-in)."""

    name = "email"
    capabilities = BUILT_IN["email"]

    def send(self, delivery: Delivery, *, handoff: Callable[[], None]) -> Receipt:
        raise OperationalError("SELECT 1", {}, ConnectionError("server closed the connection"))


def test_a_database_outage_during_a_send_is_not_blamed_on_the_message(
    wallet_with: WalletFactory, clock: ManualClock
) -> None:
    # Given a send during which the database connection breaks
    wallet = wallet_with(email=DatabaseGoneAway(), inapp=RecordingChannel("inapp"))
    given_large_transfers(wallet, "c1")
    clock.set(INVITE_DUE)

    # When the worker runs, the tick fails as the loop's own problem
    with pytest.raises(OperationalError):
        wallet.worker.run_until_idle()

    # Then the message is neither failed nor cascaded: it waits for its lease to run out
    assert message_rows(wallet, "c1") == [("email", "sending", None, 1, None)]
    assert wallet.followup("c1")["channel"] == "email"
