"""Master key versions and rotation (ADR 0025): a new master key takes over while the server and
the worker keep running, every data key ends up under it, everything sealed before still opens,
blind-index look-ups and console sessions survive, and a wrong key stops a process at start-up with
one line naming the setting to fix."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import delete, func, select

from followup.app import create_app
from followup.config import Settings
from followup.customers import keys as key_versions
from followup.customers import service as customers
from followup.customers.models import KeyCheck
from followup.kernel.errors import ConfigurationError
from followup.kernel.time import ManualClock
from followup.runtime import Runtime, build_runtime, load_key_provider
from followup.staff import service as staff
from followup.worker import Worker
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.conftest import MASTER_KEY, SmtpSink, free_port
from tests.helpers import survey_path
from tests.test_console import sign_in

OLD = MASTER_KEY
NEW = base64.b64encode(bytes(range(100, 132))).decode()
WRONG = base64.b64encode(bytes(range(200, 232))).decode()
EMAIL = "Zhao.Lei.7731@Example-Wallet.test"
COMMENT = "转账以后我的账户被盗刷了。someone made an unauthorized transfer"
WRONG_V1 = (
    "FOLLOWUP_MASTER_KEY does not open the data keys in the key store (version 1): it is not the key they "
    "were wrapped under; set the key this database was set up with"
)
FOLLOWUP = Path(sys.prefix) / "bin" / "followup"


def with_keys(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update=changes)


def rotated_settings(settings: Settings, keys: str = f"2:{NEW},1:{OLD}") -> Settings:
    return with_keys(settings, master_key=None, master_keys=SecretStr(keys))


@pytest.fixture
def rotated(settings: Settings, clock: ManualClock, runtime: Runtime) -> Iterator[Runtime]:
    """A second process on the same database whose current master key is version 2 (NEW), with
    version 1 (OLD) still configured: the state every process is in while a rotation runs."""
    rt = build_runtime(rotated_settings(settings), clock=clock)
    yield rt
    rt.close()


def data_keys(runtime: Runtime) -> dict[int, int]:
    with runtime.read_session() as session:
        return key_versions.count_data_keys(session, keys=runtime.keys).data_keys


def rotate_everything(runtime: Runtime, *, limit: int = 500) -> int:
    return key_versions.rotate_all_data_keys(runtime.session, keys=runtime.keys, limit=limit)


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`followup` as an operator runs it: a real process configured by the environment alone."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("FOLLOWUP_")}
    result = subprocess.run(
        [str(FOLLOWUP), *args],
        env={**clean, "COLUMNS": "1000", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def set_up_survey(api: TestClient, **strategy: object) -> None:
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body(**strategy)).status_code == 201


def test_rotation_rewraps_every_data_key_and_what_was_sealed_before_still_opens(  # noqa: PLR0917 - fixtures
    api: TestClient, runtime: Runtime, settings: Settings, clock: ManualClock, smtp: SmtpSink, api_key: str
) -> None:
    # Given a customer who answered with a comment, and another, sealed under master key version 1
    customer = {"email": EMAIL, "locale": "zh-CN", "consents": {"feedback": {"email": True}}}
    assert api.put("/api/v1/customers/c1", json=customer).status_code == 200
    assert api.put("/api/v1/customers/c2", json={**customer, "email": "c2@example.com"}).status_code == 200
    set_up_survey(api, delay="PT0S")
    assert api.post("/api/v1/events", json={"events": [transfer("e1", "c1")]}).json()["accepted"] == 1
    Worker(runtime).run_until_idle()
    path = survey_path(smtp.wait_for(1)[0])
    assert api.post(path, data={"step": "rating", "nps": "2"}, follow_redirects=False).status_code == 303
    assert api.post(path, data={"step": "details", "csat": "1", "comment": COMMENT}).status_code == 200
    assert data_keys(runtime) == {1: 2}

    # When version 2 becomes current and the rotation runs, one key per transaction
    rotated = build_runtime(rotated_settings(settings), clock=clock)
    try:
        assert rotate_everything(rotated, limit=1) == 2
        assert data_keys(rotated) == {2: 2}
        # and again: nothing left to do
        assert rotate_everything(rotated) == 0
    finally:
        rotated.close()

    # Then a process holding version 2 alone reads everything: contacts, the comment, look-ups
    only_new = build_runtime(rotated_settings(settings, f"2:{NEW}"), clock=clock)
    try:
        with TestClient(create_app(only_new), headers={"Authorization": f"Bearer {api_key}"}) as client:
            assert client.get("/api/v1/customers/c1").json()["email"] == "z***@example-wallet.test"
            assert client.get("/api/v1/customers/c2").json()["email"] == "c***@example.com"
            answers = [r["answers"] for r in client.get("/api/v1/responses").json()["items"]]
            assert answers == [{"nps": 2, "csat": 1, "comment": COMMENT}]
        with only_new.read_session() as session:
            found = customers.find_by_email(session, EMAIL.lower(), keys=only_new.keys)
            assert found is not None
            assert found.external_id == "c1"
    finally:
        only_new.close()

    # and a process that still holds version 1 alone is refused at start-up, before it reads a key
    with pytest.raises(ConfigurationError) as refused:
        build_runtime(settings, clock=clock)
    assert refused.value.message == (
        "the key store holds data keys wrapped under master key version 2, which FOLLOWUP_MASTER_KEY does not "
        "hold; keep version 2 configured until `followup keys rotate` has moved every data key off it"
    )


def test_rotation_under_a_running_worker_loses_nothing(
    api: TestClient, runtime: Runtime, rotated: Runtime, smtp: SmtpSink, api_key: str
) -> None:
    # Given 40 customers whose data keys are under version 1, and a strategy that emails at once
    old_ids = [f"c{n}" for n in range(40)]
    for external_id in old_ids:
        make_customer(runtime, external_id)
    set_up_survey(api, delay="PT0S", channels=["email"])
    assert data_keys(runtime) == {1: 40}

    # and a worker running its loop on the new keys, and the API on them too
    worker = Worker(rotated)
    errors: list[BaseException] = []
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                if worker.run_until_idle(max_rounds=5).total == 0:
                    stop.wait(0.01)
            except Exception as exc:  # noqa: BLE001 - the test asserts that there were none
                errors.append(exc)
                stop.wait(0.01)

    # When the rotation runs four keys per transaction, a batch each time events have come in
    turns = threading.Semaphore(0)
    rotated_count: list[int] = []

    def one_batch_per_turn() -> bool:
        turns.acquire(timeout=30)
        return False

    def rotate() -> None:
        rotated_count.append(
            key_versions.rotate_all_data_keys(rotated.session, keys=rotated.keys, limit=4, stop=one_batch_per_turn)
        )

    worker_thread = threading.Thread(target=work, daemon=True)
    rotation = threading.Thread(target=rotate, daemon=True)
    worker_thread.start()
    rotation.start()
    new_ids = [f"n{n}" for n in range(10)]
    with TestClient(create_app(rotated), headers={"Authorization": f"Bearer {api_key}"}) as client:
        for turn in range(10):
            # a customer who arrives now gets a data key under version 2 at once
            assert client.put(f"/api/v1/customers/{new_ids[turn]}", json=_reachable(new_ids[turn])).status_code == 200
            chunk = [*old_ids[turn * 4 : turn * 4 + 4], new_ids[turn]]
            events = [transfer(f"e-{external_id}", external_id) for external_id in chunk]
            assert client.post("/api/v1/events", json={"events": events}).json()["accepted"] == 5
            turns.release()
        for _ in range(100):
            turns.release()
        rotation.join(timeout=30)
        messages = smtp.wait_for(50, timeout=30)
        stop.set()
        worker_thread.join(timeout=30)

        # Then nothing failed, every invitation went out, and every key is under version 2
        assert errors == []
        assert not rotation.is_alive()
        assert rotated_count == [40]
        assert sorted(m["To"] for m in messages) == sorted(f"{i}@example.com" for i in old_ids + new_ids)
        assert data_keys(rotated) == {2: 50}
        statuses = {f["status"] for f in client.get("/api/v1/followups", params={"limit": 100}).json()["items"]}
        assert statuses == {"invited"}
        assert client.get("/api/v1/customers/c7").json()["email"] == "c***@example.com"


def _reachable(external_id: str) -> dict[str, object]:
    return {
        "email": f"{external_id}@example.com",
        "locale": "zh-CN",
        "time_zone": "Asia/Shanghai",
        "attributes": {"tier": "gold"},
        "consents": {"feedback": {"email": True}},
    }


def test_a_rotation_stopped_after_one_batch_goes_on_where_it_stopped(
    runtime: Runtime, rotated: Runtime, settings: Settings
) -> None:
    # Given 12 customers under version 1, and a rotation stopped after its first batch of 5
    for n in range(12):
        make_customer(runtime, f"c{n}")
    with rotated.session() as session:
        first = key_versions.rotate_data_keys(session, keys=rotated.keys, limit=5)
    assert first.rewrapped == 5
    assert data_keys(rotated) == {1: 7, 2: 5}

    # When `followup keys rotate` runs, and runs again
    env = {"FOLLOWUP_DATABASE_URL": settings.database_url, "FOLLOWUP_MASTER_KEYS": f"2:{NEW},1:{OLD}"}
    finished = run_cli("keys", "rotate", "--batch-size", "3", **env)
    again = run_cli("keys", "rotate", **env)
    status = run_cli("keys", "status", **env)

    # Then it re-wrapped only the 7 left, the second run found nothing, and the status says so
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout) == {"rewrapped": 7, "current_version": 2, "not_current": 0}
    assert json.loads(again.stdout) == {"rewrapped": 0, "current_version": 2, "not_current": 0}
    assert json.loads(status.stdout) == {
        "current_version": 2,
        "configured_versions": [2, 1],
        "data_keys": {"2": 12},
        "not_current": 0,
    }
    with rotated.read_session() as session:
        assert customers.find_by_email(session, "c11@example.com", keys=rotated.keys) is not None


def test_a_wrong_master_key_stops_the_runtime_at_start_up(runtime: Runtime, settings: Settings) -> None:
    # Given a key store written under OLD as version 1 (the runtime fixture started on it)
    make_customer(runtime, "c1")

    # When a process starts with another key as version 1, alone or among versions
    with pytest.raises(ConfigurationError) as alone:
        build_runtime(with_keys(settings, master_key=SecretStr(WRONG)))
    with pytest.raises(ConfigurationError) as among:
        build_runtime(rotated_settings(settings, f"2:{NEW},1:{WRONG}"))

    # Then it is refused, naming the setting and the version
    assert alone.value.message == WRONG_V1
    assert among.value.message == WRONG_V1.replace("FOLLOWUP_MASTER_KEY ", "FOLLOWUP_MASTER_KEYS ")
    # and nothing was recorded for the new version the refused process named
    with runtime.read_session() as session:
        assert list(session.scalars(select(KeyCheck.version))) == [1]


def test_a_wrong_master_key_is_caught_on_the_first_start_after_the_upgrade_to_key_versions(
    runtime: Runtime, settings: Settings
) -> None:
    # Given a key store as the upgrade leaves it: data keys (version 1), no key checks yet
    make_customer(runtime, "c1")
    with runtime.session() as session:
        session.execute(delete(KeyCheck))

    # When a process starts with the wrong key, it is refused, having opened one data key to know
    with pytest.raises(ConfigurationError) as refused:
        build_runtime(with_keys(settings, master_key=SecretStr(WRONG)))
    assert refused.value.message == WRONG_V1
    with runtime.read_session() as session:
        assert session.scalar(select(func.count()).select_from(KeyCheck)) == 0

    # and with the right key it starts and records its check
    build_runtime(settings).close()
    with runtime.read_session() as session:
        assert list(session.scalars(select(KeyCheck.version))) == [1]


@pytest.mark.parametrize(
    "command", [("worker", "--once"), ("serve", "--port", "0"), ("keys", "rotate"), ("keys", "status")]
)
def test_the_commands_say_in_one_line_that_the_master_key_is_wrong(
    runtime: Runtime, settings: Settings, command: tuple[str, ...]
) -> None:
    make_customer(runtime, "c1")
    args = list(command)
    if command[0] == "serve":
        args[-1] = str(free_port())

    result = run_cli(*args, FOLLOWUP_DATABASE_URL=settings.database_url, FOLLOWUP_MASTER_KEY=WRONG)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == f"error: {WRONG_V1}"


def test_blind_index_look_ups_and_console_sessions_outlive_the_old_master_key(
    runtime: Runtime, settings: Settings, clock: ManualClock
) -> None:
    # Given a signed-in admin and a customer found by email, both under master key version 1
    with runtime.session() as session:
        _, password = staff.create_staff(session, email="admin@wallet.example", role="admin", now=clock.now())
    make_customer(runtime, "c1", email=EMAIL)
    browser = sign_in(TestClient(create_app(runtime), follow_redirects=False), "admin@wallet.example", password)
    assert browser.get("/console").status_code == 200

    # When version 2 takes over, the rotation runs, and version 1 is removed from the settings
    rotated = build_runtime(rotated_settings(settings), clock=clock)
    try:
        assert rotate_everything(rotated) == 1
    finally:
        rotated.close()
    only_new = build_runtime(rotated_settings(settings, f"2:{NEW}"), clock=clock)
    try:
        # Then the admin is still signed in on a server holding version 2 alone
        later = TestClient(create_app(only_new), follow_redirects=False)
        later.cookies.update(browser.cookies)
        page = later.get("/console")
        assert page.status_code == 200, page.headers.get("location")
        # and the email still finds its customer; every derived key is what it was
        with only_new.read_session() as session:
            found = customers.find_by_email(session, EMAIL, keys=only_new.keys)
            assert found is not None
            assert found.external_id == "c1"
        assert only_new.keys.derive_key("console-sessions") == runtime.keys.derive_key("console-sessions")
        assert only_new.keys.blind_index("email", "x@y.z") == runtime.keys.blind_index("email", "x@y.z")
    finally:
        only_new.close()


def test_the_environment_provider_holds_versions_and_rotates(
    runtime: Runtime, settings: Settings, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, api_key: str
) -> None:
    # Given a customer sealed under OLD, and the environment provider holding OLD as V1 and NEW as V2
    make_customer(runtime, "c1", email=EMAIL)
    monkeypatch.setenv("FOLLOWUP_MASTER_KEY_V1", OLD)
    monkeypatch.setenv("FOLLOWUP_MASTER_KEY_V2", NEW)
    from_env = with_keys(settings, master_key=None, key_provider="env")

    # When a process starts on it (the highest version is current) and rotates
    rt = build_runtime(from_env, clock=clock)
    try:
        assert (rt.keys.current_version, rt.keys.versions) == (2, frozenset({1, 2}))
        assert rotate_everything(rt) == 1
        assert data_keys(rt) == {2: 1}
        # Then what was sealed under version 1 reads through the new wrapping
        with TestClient(create_app(rt), headers={"Authorization": f"Bearer {api_key}"}) as client:
            assert client.get("/api/v1/customers/c1").json()["email"] == "z***@example-wallet.test"
    finally:
        rt.close()

    # and FOLLOWUP_MASTER_KEY_CURRENT picks the current version; a wrong V2 is named in one line
    monkeypatch.setenv("FOLLOWUP_MASTER_KEY_CURRENT", "1")
    assert load_key_provider(from_env).current_version == 1
    monkeypatch.delenv("FOLLOWUP_MASTER_KEY_CURRENT")
    monkeypatch.setenv("FOLLOWUP_MASTER_KEY_V2", WRONG)
    with pytest.raises(ConfigurationError) as refused:
        build_runtime(from_env, clock=clock)
    assert refused.value.message.startswith(
        "FOLLOWUP_MASTER_KEY_V2 does not open the data keys in the key store (version 2)"
    )
    # and the command line reads the same variables
    status = run_cli(
        "keys",
        "status",
        FOLLOWUP_DATABASE_URL=settings.database_url,
        FOLLOWUP_KEY_PROVIDER="env",
        FOLLOWUP_MASTER_KEY_V1=OLD,
        FOLLOWUP_MASTER_KEY_V2=NEW,
    )
    assert json.loads(status.stdout)["data_keys"] == {"2": 1}


def test_versioned_key_settings_are_read_or_refused_in_one_sentence(settings: Settings, tmp_path: Path) -> None:
    both = load_key_provider(with_keys(settings, master_keys=SecretStr(f"2:{NEW}")))
    assert (both.current_version, both.versions) == (2, frozenset({1, 2}))
    assert both.source(1) == "FOLLOWUP_MASTER_KEY"
    assert both.source(2) == "FOLLOWUP_MASTER_KEYS"

    refusals = {
        f"2:{NEW},2:{OLD}": "FOLLOWUP_MASTER_KEYS: master key version 2 is given twice",
        f"x:{NEW}": "FOLLOWUP_MASTER_KEYS: a master key version is a whole number from 1 to 9999",
        f"0:{NEW}": "FOLLOWUP_MASTER_KEYS: a master key version is a whole number from 1 to 9999",
        "2:short": "FOLLOWUP_MASTER_KEYS (version 2) is not valid base64",
        f"1:{NEW}": "FOLLOWUP_MASTER_KEY and version 1 of FOLLOWUP_MASTER_KEYS are different keys; keep one of them",
    }
    for text, message in refusals.items():
        with pytest.raises(ConfigurationError) as refused:
            load_key_provider(with_keys(settings, master_keys=SecretStr(text)))
        assert refused.value.message == message, text
    with pytest.raises(ConfigurationError) as mixed:
        load_key_provider(with_keys(settings, key_provider="env"))
    assert mixed.value.message.startswith("FOLLOWUP_KEY_PROVIDER=env reads FOLLOWUP_MASTER_KEY_V1")

    # A key file beside a SQLite database: VERSION:KEY lines, the current first; a bare key is version 1
    database = tmp_path / "wallet.db"
    (tmp_path / "wallet.db.key").write_text(f"# rotated 2026-12\n2:{NEW}\n{OLD}\n")
    from_file = load_key_provider(Settings(_env_file=None, database_url=f"sqlite:///{database}"))  # type: ignore[call-arg]
    assert (from_file.current_version, from_file.versions) == (2, frozenset({1, 2}))
    assert from_file.source(1) == f"the key file {tmp_path / 'wallet.db.key'}"


def test_keys_generate_prints_a_versioned_entry(tmp_path: Path) -> None:
    result = run_cli("keys", "generate", "--version", "2")
    version, _, key = result.stdout.strip().partition(":")
    assert version == "2"
    assert len(base64.b64decode(key, validate=True)) == 32


def test_the_clock_of_a_check_is_the_runtimes(runtime: Runtime, clock: ManualClock) -> None:
    with runtime.read_session() as session:
        created = session.scalar(select(KeyCheck.created_at).where(KeyCheck.version == 1))
    assert created == clock.now()
    assert isinstance(created, dt.datetime)
