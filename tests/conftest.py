"""Test fixtures: a real database (SQLite file, or PostgreSQL when FOLLOWUP_TEST_DATABASE_URL is
set), a real SMTP server on loopback, the app in-process or served on a real port.

Each test starts from empty tables: the database is migrated once per session and wiped after
every test. Wiping rather than rolling back lets tests use several connections, threads and
processes, as the real engine does.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import socket
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
import uvicorn
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import Engine

from followup.app import create_app
from followup.config import Settings
from followup.kernel.db import KEY_STORE_SCHEMA, key_store_location, key_store_schema, make_engine
from followup.kernel.time import ManualClock
from followup.migrations.runner import upgrade
from followup.models import metadata
from followup.runtime import Runtime, build_runtime
from followup.staff import service as staff

MASTER_KEY = base64.b64encode(bytes(range(32))).decode()
# 10:00 in Shanghai, 02:00 UTC: outside quiet hours for Asia/Shanghai.
START = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_schema(url: str, schema: str, *, drop_only: bool = False) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            if not drop_only:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001 - turn any connection failure into one clear message
        pytest.exit(f"FOLLOWUP_TEST_DATABASE_URL={url} is not reachable: {exc}", returncode=3)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database for this test session.

    On PostgreSQL each session gets its own schema (search_path in the URL), so two suites can
    run against one server at once and every process a test starts sees the same tables.
    """
    base = os.environ.get("FOLLOWUP_TEST_DATABASE_URL")
    schema = f"followup_test_{os.getpid()}"
    if base:
        _postgres_schema(base, schema)
        separator = "&" if "?" in base else "?"
        url = f"{base}{separator}options=-csearch_path%3D{schema}"
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'followup-test.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    if base:
        _postgres_schema(base, schema, drop_only=True)
        _postgres_schema(base, key_store_location(url), drop_only=True)


def wipe(engine: Engine) -> None:
    keys = key_store_schema(engine)
    tables = [
        f"{keys}.{table.name}" if table.schema == KEY_STORE_SCHEMA else table.name for table in metadata.sorted_tables
    ]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in reversed(tables):
                conn.execute(text(f"DELETE FROM {name}"))  # noqa: S608 - table names from our own metadata


class SmtpSink:
    """A real SMTP server on 127.0.0.1 that keeps what it receives.

    `on_rcpt` and `on_data` let a test act at a precise point of the SMTP conversation (for
    example, kill the sending worker), the way a real network fault would.
    """

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.on_rcpt: Any = None
        self.on_data: Any = None
        self.port = free_port()
        self._lock = threading.Lock()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.on_rcpt is not None:
            self.on_rcpt(address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=default_policy)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
        if self.on_data is not None:
            self.on_data(message)
        return "250 OK: queued"

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
        self.on_rcpt = None
        self.on_data = None

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        with self._lock:
            return list(self.messages)


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    yield sink
    controller.stop()


@pytest.fixture
def smtp(smtp_server: SmtpSink) -> Iterator[SmtpSink]:
    smtp_server.clear()
    yield smtp_server
    smtp_server.clear()


@pytest.fixture
def settings(database_url: str, smtp_server: SmtpSink) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        master_key=SecretStr(MASTER_KEY),
        smtp_url=f"smtp://127.0.0.1:{smtp_server.port}",
        smtp_from="feedback@wallet.example",
        public_url="http://testserver",
        retry_base_seconds=60,
        # The console tests sign admins in with a password alone; test_two_factor.py turns it on.
        console_admin_two_factor=False,
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def runtime(settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    rt = build_runtime(settings, clock=clock)
    yield rt
    wipe(rt.engine)
    rt.close()


@pytest.fixture
def api_key(runtime: Runtime) -> str:
    with runtime.session() as session:
        _, key = staff.create_api_key(session, name="tests", now=runtime.clock.now())
    return key


@pytest.fixture
def api(runtime: Runtime, api_key: str) -> Iterator[TestClient]:
    """The app in-process, authenticated as the wallet's backend."""
    with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {api_key}"}) as client:
        yield client


class LiveServer:
    def __init__(self, runtime: Runtime) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(runtime), host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(runtime: Runtime) -> Iterator[LiveServer]:
    """`followup serve` for real: uvicorn on a free loopback port, in a thread."""
    server = LiveServer(runtime)
    server.start()
    yield server
    server.stop()
