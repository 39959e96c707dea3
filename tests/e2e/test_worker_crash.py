"""A worker process killed at the two dangerous points of an SMTP send, then restarted.

The worker runs for real (`followup worker` in its own process, on the real clock) and the real
SMTP server kills it with SIGKILL at the exact step of the conversation:

- during RCPT TO: the message is claimed, nothing is handed over yet → the restarted worker sends it;
- after the server holds the whole message, before it answers 250: the message is handed over but
  not recorded → its fate is unknown, so it is marked `unknown` and never sent again.

Either way exactly one email arrives. And an SMS gateway that takes an idempotency key, holding the
worker's request when the worker dies: the restarted worker asks again with the same key, and one
SMS reaches the phone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from followup.app import create_app
from followup.config import Settings
from followup.kernel.time import SystemClock
from followup.runtime import Runtime, build_runtime
from followup.staff import service as staff
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey
from tests.conftest import MASTER_KEY, SmtpSink, wipe
from tests.helpers import survey_path
from tests.sms_servers import Answer, GenericGateway, Received

FOLLOWUP = Path(sys.executable).with_name("followup")
LEASE_SECONDS = 1
UNKNOWN_ERROR = "worker stopped after handing the message over; delivery not confirmed"


@pytest.fixture
def real_time_runtime(settings: Settings) -> Iterator[Runtime]:
    """A runtime on the system clock, configured like the worker process: quiet hours off, 1 s lease."""
    fields = settings.model_dump()
    fields.update(quiet_hours_start="00:00", quiet_hours_end="00:00", worker_lease_seconds=LEASE_SECONDS)
    runtime = build_runtime(Settings(_env_file=None, **fields), clock=SystemClock())  # type: ignore[call-arg]
    yield runtime
    wipe(runtime.engine)
    runtime.close()


@pytest.fixture
def wallet(real_time_runtime: Runtime) -> Iterator[TestClient]:
    """The wallet's backend on the REST API, over the real-clock runtime."""
    with real_time_runtime.session() as session:
        _, key = staff.create_api_key(session, name="tests", now=real_time_runtime.clock.now())
    with TestClient(create_app(real_time_runtime), headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


@pytest.fixture
def worker_env(database_url: str, smtp: SmtpSink, tmp_path: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("FOLLOWUP_")}
    env.update(
        FOLLOWUP_DATABASE_URL=database_url,
        FOLLOWUP_MASTER_KEY=MASTER_KEY,
        FOLLOWUP_SMTP_URL=f"smtp://127.0.0.1:{smtp.port}",
        FOLLOWUP_SMTP_FROM="feedback@wallet.example",
        FOLLOWUP_PUBLIC_URL="http://testserver",
        FOLLOWUP_WORKER_LEASE_SECONDS=str(LEASE_SECONDS),
        FOLLOWUP_WORKER_POLL_SECONDS="0.1",
        FOLLOWUP_QUIET_HOURS_START="00:00",
        FOLLOWUP_QUIET_HOURS_END="00:00",
        FOLLOWUP_LOG_LEVEL="WARNING",
    )
    return env


class DoomedWorker:
    """`followup worker` in its own process, SIGKILLed the first time the SMTP server calls `kill`.

    `kill` runs inside the SMTP server and returns only once the process is dead, so the server's
    next reply can never reach the worker.
    """

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.log_path = cwd / "worker.log"
        self.killed = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._lock, self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [str(FOLLOWUP), "worker"], env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
            )

    def kill(self, _what_the_server_got: Any) -> None:
        with self._lock:
            if self._process is None or self.killed.is_set():
                return  # only the first worker dies; the restarted one goes through
            os.kill(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)
            self.killed.set()

    def wait_until_killed(self, timeout: float = 30.0) -> int:
        if not self.killed.wait(timeout):
            raise AssertionError(f"the worker never reached the kill point; its log:\n{self.log()}")
        assert self._process is not None
        return self._process.wait(timeout=10)

    def stop(self) -> None:
        """Teardown: end this test's own worker process if it is somehow still running."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                self._process.kill()
                self._process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def doomed_worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[DoomedWorker]:
    worker = DoomedWorker(worker_env, tmp_path)
    yield worker
    worker.stop()


WorkerRun = Callable[[], str]


def run_worker_once(env: dict[str, str], cwd: Path) -> str:
    """`followup worker --once` as an operator restarts it: all due work, then exit. Gives its summary line."""
    done = subprocess.run(
        [str(FOLLOWUP), "worker", "--once"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def worker_once(worker_env: dict[str, str], tmp_path: Path) -> WorkerRun:
    return lambda: run_worker_once(worker_env, tmp_path)


def given_an_invitation_due_now(wallet: TestClient, runtime: Runtime) -> None:
    make_customer(runtime, "c1", email="li.si@example.com")
    make_survey(runtime)
    make_strategy(runtime, delay="PT0S")
    event = transfer("e1", "c1", occurred_at=runtime.clock.now())
    assert wallet.post("/api/v1/events", json={"events": [event]}).json()["accepted"] == 1


def messages_of(wallet: TestClient) -> list[dict[str, Any]]:
    followups = wallet.get("/api/v1/followups", params={"customer_id": "c1"}).json()["items"]
    assert len(followups) == 1
    return list(followups[0]["messages"])


def test_worker_killed_after_claiming_and_before_sending_is_sent_once_after_restart(
    real_time_runtime: Runtime,
    wallet: TestClient,
    smtp: SmtpSink,
    doomed_worker: DoomedWorker,
    worker_once: WorkerRun,
) -> None:
    # Given an invitation due now
    given_an_invitation_due_now(wallet, real_time_runtime)

    # When a worker claims it and is killed while the mail server is at RCPT TO
    smtp.on_rcpt = doomed_worker.kill
    doomed_worker.start()
    assert doomed_worker.wait_until_killed() == -signal.SIGKILL

    # Then nothing was delivered, and the message is still only claimed, never handed over
    assert smtp.messages == []
    [claimed] = messages_of(wallet)
    assert (claimed["channel"], claimed["status"], claimed["attempt_count"]) == ("email", "sending", 1)

    # When a worker starts again after the dead worker's lease ran out
    time.sleep(LEASE_SECONDS + 0.5)
    assert worker_once() == "steps=0 messages=1 jobs=0"

    # Then exactly one email arrived, with the survey link, and the message is recorded as sent
    emails = smtp.wait_for(1)
    assert len(emails) == 1
    assert emails[0]["To"] == "li.si@example.com"
    assert survey_path(emails[0]).startswith("/s/")
    [sent] = messages_of(wallet)
    assert (sent["status"], sent["attempt_count"], sent["last_error"]) == ("sent", 2, None)

    # And a further worker run sends nothing more
    assert worker_once() == "steps=0 messages=0 jobs=0"
    assert len(smtp.wait_for(2, timeout=0.5)) == 1
    assert [m["status"] for m in messages_of(wallet)] == ["sent"]


def test_worker_killed_after_sending_and_before_recording_marks_the_message_unknown_and_never_resends(
    real_time_runtime: Runtime,
    wallet: TestClient,
    smtp: SmtpSink,
    doomed_worker: DoomedWorker,
    worker_once: WorkerRun,
) -> None:
    # Given an invitation due now
    given_an_invitation_due_now(wallet, real_time_runtime)

    # When the mail server has the whole message and the worker is killed before it hears 250
    smtp.on_data = doomed_worker.kill
    doomed_worker.start()
    assert doomed_worker.wait_until_killed() == -signal.SIGKILL

    # Then the email arrived once, and the message is recorded as handed over (in flight) only
    assert len(smtp.messages) == 1
    assert smtp.messages[0]["To"] == "li.si@example.com"
    [in_flight] = messages_of(wallet)
    assert (in_flight["status"], in_flight["attempt_count"], in_flight["sent_at"]) == ("in_flight", 1, None)

    # When a worker starts again after the dead worker's lease ran out
    time.sleep(LEASE_SECONDS + 0.5)
    assert worker_once() == "steps=0 messages=0 jobs=0"

    # Then the message is marked unknown instead of being sent again
    [unknown] = messages_of(wallet)
    assert (unknown["status"], unknown["attempt_count"], unknown["sent_at"], unknown["last_error"]) == (
        "unknown",
        1,
        None,
        UNKNOWN_ERROR,
    )
    assert len(smtp.wait_for(2, timeout=0.5)) == 1

    # And further worker runs neither resend it nor contact the customer on another channel
    for _ in range(2):
        assert worker_once() == "steps=0 messages=0 jobs=0"
    assert len(smtp.wait_for(2, timeout=0.5)) == 1
    assert [(m["channel"], m["status"]) for m in messages_of(wallet)] == [("email", "unknown")]
    assert wallet.get("/api/v1/customers/c1/inbox").json() == []


class KillingGateway(GenericGateway):
    """The generic gateway, which calls `on_send` with a send's request before it takes it: as if
    the worker died while the gateway held its request and had not answered."""

    def __init__(self, *, token: str) -> None:
        self.on_send: Callable[[Received], None] | None = None
        super().__init__(token=token)

    def accept(self, request: Received) -> Answer:
        if self.on_send is not None:
            self.on_send(request)
        return super().accept(request)


def test_worker_killed_while_an_idempotent_gateway_holds_the_sms_sends_it_once(
    settings: Settings, worker_env: dict[str, str], tmp_path: Path
) -> None:
    gateway = KillingGateway(token="t-gw")
    provider = {"name": "gw", "kind": "generic", "url": gateway.url, "token": "t-gw"}
    fields = settings.model_dump()
    fields.update(quiet_hours_start="00:00", quiet_hours_end="00:00", worker_lease_seconds=LEASE_SECONDS)
    fields.update(sms_providers=[provider], sms_sign="钱包")
    runtime = build_runtime(Settings(_env_file=None, **fields), clock=SystemClock())  # type: ignore[call-arg]
    env = {**worker_env, "FOLLOWUP_SMS_PROVIDERS": json.dumps([provider]), "FOLLOWUP_SMS_SIGN": "钱包"}
    doomed = DoomedWorker(env, tmp_path)
    try:
        # Given an SMS invitation due now
        make_customer(runtime, "c1", phone="+8613812341234", consents={"feedback": {"sms": True}})
        make_survey(runtime)
        make_strategy(runtime, delay="PT0S", channels=["sms"])
        with runtime.session() as session:
            _, key = staff.create_api_key(session, name="tests", now=runtime.clock.now())
        with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {key}"}) as wallet:
            event = transfer("e1", "c1", occurred_at=runtime.clock.now())
            assert wallet.post("/api/v1/events", json={"events": [event]}).json()["accepted"] == 1

            # When the worker is killed while the gateway holds its send, before any answer
            gateway.on_send = doomed.kill
            doomed.start()
            assert doomed.wait_until_killed() == -signal.SIGKILL
            gateway.on_send = None

            # And a worker starts again after the dead worker's lease ran out
            time.sleep(LEASE_SECONDS + 0.5)
            assert run_worker_once(env, tmp_path).startswith("steps=0 messages=1 ")

            # Then the gateway was asked twice with one Idempotency-Key, and one SMS reached the phone
            keys = [request.headers["idempotency-key"] for request in gateway.received]
            assert len(keys) == 2
            assert len(set(keys)) == 1
            assert [sent["to"] for sent in gateway.sent] == ["+8613812341234"]
            [message] = messages_of(wallet)
            assert (message["channel"], message["status"], message["attempt_count"]) == ("sms", "sent", 2)
            assert [attempt["outcome"] for attempt in message["attempts"]] == ["lost", "accepted"]
    finally:
        doomed.stop()
        gateway.close()
        wipe(runtime.engine)
        runtime.close()
