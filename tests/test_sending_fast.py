"""Sending fast without losing the guarantees: one SMTP session per worker, reset between messages
and replaced when it breaks; several SMS in flight at once, never more than a provider's
`concurrency`; a batch's outcomes written together.

The far ends are real: an aiosmtpd server that records each session's commands, and the generic
SMS gateway of tests/sms_servers.py answering after a delay.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from pydantic import SecretStr

from followup.app import create_app
from followup.channels.email import SmtpChannel
from followup.config import GenericSmsSettings, Settings
from followup.kernel.time import ManualClock
from followup.runtime import Runtime, build_runtime
from followup.staff import service as staff
from followup.worker import Worker
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey
from tests.conftest import free_port, wipe
from tests.sms_servers import Answer, GenericGateway, Received


@dataclass
class SmtpSession:
    """One SMTP session as the server saw it: the commands in order, the messages it carried."""

    commands: list[str] = field(default_factory=list)
    messages: int = 0


class SessionRecorder:
    """aiosmtpd handler: keeps every session's commands; refuses the recipients in `refuse`."""

    def __init__(self) -> None:
        self.sessions: dict[int, SmtpSession] = {}
        self.refuse: set[str] = set()
        self._lock = threading.Lock()

    def _of(self, session: Any) -> SmtpSession:
        with self._lock:
            return self.sessions.setdefault(id(session), SmtpSession())

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self._of(session).commands.append("EHLO")
        session.host_name = hostname
        return responses

    async def handle_RSET(self, server: Any, session: Any, envelope: Any) -> str:
        self._of(session).commands.append("RSET")
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        self._of(session).commands.append("RCPT")
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        recorded = self._of(session)
        recorded.commands.append("DATA")
        recorded.messages += 1
        return "250 OK: queued"

    def delivered(self) -> int:
        with self._lock:
            return sum(session.messages for session in self.sessions.values())


class MailServer:
    """An SMTP server on a fixed loopback port that a test can stop and start again, as a mail
    server restarting (and so dropping every open session) would."""

    def __init__(self) -> None:
        self.recorder = SessionRecorder()
        self.port = free_port()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def mail() -> Iterator[MailServer]:
    server = MailServer()
    server.start()
    yield server
    server.stop()


@dataclass
class Wallet:
    runtime: Runtime
    api: TestClient
    clock: ManualClock

    def invite(self, *customers: str) -> None:
        """Customers with a large transfer now; the worker runs past the strategy's delay."""
        now = self.clock.now()
        events = [transfer(f"e-{customer}-{now.timestamp()}", customer, occurred_at=now) for customer in customers]
        assert self.api.post("/api/v1/events", json={"events": events}).json()["accepted"] == len(customers)
        self.clock.advance(dt.timedelta(minutes=31))
        Worker(self.runtime).run_until_idle()

    def states(self) -> list[str]:
        items = self.api.get("/api/v1/followups", params={"limit": 500}).json()["items"]
        return sorted(message["state"] for item in items for message in item["messages"])


def _wallet(settings: Settings, clock: ManualClock, **channels: Any) -> Iterator[Wallet]:
    runtime = build_runtime(settings, clock=clock, channels=channels or None)
    try:
        with runtime.session() as session:
            _, key = staff.create_api_key(session, name="tests", now=clock.now())
        with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {key}"}) as api:
            yield Wallet(runtime, api, clock)
    finally:
        runtime.close()
        wipe(runtime.engine)


def _email_wallet(settings: Settings, clock: ManualClock, channel: SmtpChannel) -> Iterator[Wallet]:
    for wallet in _wallet(settings, clock, email=channel):
        make_survey(wallet.runtime)
        make_strategy(wallet.runtime, channels=["email"])
        yield wallet


def _smtp(mail: MailServer, **options: Any) -> SmtpChannel:
    return SmtpChannel(f"smtp://127.0.0.1:{mail.port}", sender="feedback@wallet.example", timeout=5, **options)


def test_a_batch_of_emails_goes_over_one_session_reset_between_messages(
    settings: Settings, clock: ManualClock, mail: MailServer
) -> None:
    channel = _smtp(mail)
    for wallet in _email_wallet(settings, clock, channel):
        customers = [f"c{number}" for number in range(12)]
        for customer in customers:
            make_customer(wallet.runtime, customer)
        # When twelve invitations fall due
        wallet.invite(*customers)
        # Then all twelve went over one session, with a RSET before each message but the first
        assert mail.recorder.delivered() == 12
        [session] = mail.recorder.sessions.values()
        assert session.commands.count("EHLO") == 1
        assert session.commands.count("RSET") == 11
        assert session.commands[:3] == ["EHLO", "RCPT", "DATA"]
        assert session.commands[3:6] == ["RSET", "RCPT", "DATA"]
        assert channel.connections_opened == 1
        assert wallet.states() == ["accepted"] * 12


def test_a_session_the_server_dropped_is_replaced_and_nothing_fails(
    settings: Settings, clock: ManualClock, mail: MailServer
) -> None:
    channel = _smtp(mail)
    for wallet in _email_wallet(settings, clock, channel):
        for number in range(6):
            make_customer(wallet.runtime, f"c{number}")
        wallet.invite("c0", "c1", "c2")
        # When the mail server restarts, dropping the session the worker keeps open
        mail.stop()
        mail.start()
        wallet.invite("c3", "c4", "c5")
        # Then the next messages went over a new session, and every message was accepted
        assert mail.recorder.delivered() == 6
        assert channel.connections_opened == 2
        assert sorted(session.messages for session in mail.recorder.sessions.values()) == [3, 3]
        assert wallet.states() == ["accepted"] * 6


def test_a_session_carries_at_most_its_share_of_messages(
    settings: Settings, clock: ManualClock, mail: MailServer
) -> None:
    channel = _smtp(mail, max_per_connection=5)
    for wallet in _email_wallet(settings, clock, channel):
        customers = [f"c{number}" for number in range(12)]
        for customer in customers:
            make_customer(wallet.runtime, customer)
        wallet.invite(*customers)
        assert sorted(session.messages for session in mail.recorder.sessions.values()) == [2, 5, 5]


def test_a_refused_recipient_fails_alone_and_the_session_carries_on(
    settings: Settings, clock: ManualClock, mail: MailServer
) -> None:
    channel = _smtp(mail)
    for wallet in _email_wallet(settings, clock, channel):
        for number in range(4):
            make_customer(wallet.runtime, f"c{number}")
        mail.recorder.refuse.add("c1@example.com")
        wallet.invite("c0", "c1", "c2", "c3")
        # Then the other three went over the same session; the refused one failed for good
        [session] = mail.recorder.sessions.values()
        assert session.messages == 3
        assert wallet.states() == ["accepted", "accepted", "accepted", "failed"]


class SlowGateway(GenericGateway):
    """The generic gateway answering each send after `delay` seconds; keeps when each arrived."""

    def __init__(self, *, token: str, delay: float) -> None:
        self.delay = delay
        self.arrivals: list[float] = []
        super().__init__(token=token)

    def accept(self, request: Received) -> Answer:
        self.arrivals.append(time.monotonic())
        answer = super().accept(request)
        return Answer(answer.status, answer.body, delay=self.delay)

    def peak_in_flight(self) -> int:
        """The most sends it was answering at once."""
        return max(sum(1 for other in self.arrivals if other <= at < other + self.delay) for at in self.arrivals)


@pytest.fixture
def gateway() -> Iterator[SlowGateway]:
    server = SlowGateway(token="t", delay=0.3)
    yield server
    server.close()


@pytest.mark.parametrize("concurrency", [1, 3])
def test_sms_go_out_several_at_once_never_more_than_the_provider_allows(
    settings: Settings, clock: ManualClock, gateway: SlowGateway, concurrency: int
) -> None:
    provider = GenericSmsSettings(
        kind="generic", name="gw", url=gateway.url, token=SecretStr("t"), concurrency=concurrency
    )
    configured = settings.model_copy(update={"sms_providers": [provider], "sms_sign": "钱包"})
    for wallet in _wallet(configured, clock):
        make_survey(wallet.runtime)
        make_strategy(wallet.runtime, channels=["sms"])
        customers = [f"c{number}" for number in range(9)]
        for number, customer in enumerate(customers):
            make_customer(
                wallet.runtime, customer, phone=f"+86138123412{number:02d}", consents={"feedback": {"sms": True}}
            )
        # When nine SMS fall due, each answered by the gateway after 0.3 s
        wallet.invite(*customers)
        # Then each went out once, with as many in flight at once as the provider allows, no more
        assert sorted(str(sent["to"]) for sent in gateway.sent) == [f"+86138123412{n:02d}" for n in range(9)]
        assert gateway.peak_in_flight() == concurrency
        assert wallet.states() == ["accepted"] * 9
