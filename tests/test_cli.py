"""The `followup` command as an operator runs it: a real process, a fresh SQLite file of its own,
nothing but the environment to configure it. Errors are one clear line on stderr, never a
traceback; what a script reads (a key, a password, counts) is alone on stdout."""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from followup.app import create_app
from followup.config import Settings
from followup.runtime import build_runtime
from followup.staff import service as staff
from tests.builders.events import transfer
from tests.conftest import MASTER_KEY

FOLLOWUP = Path(sys.prefix) / "bin" / "followup"


class Cli:
    """Runs `followup` against its own database file in a scratch directory (no .env there)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.database = directory / "followup.db"
        self.url = f"sqlite:///{self.database}"
        self.key_file = directory / "followup.db.key"
        self.env = {name: value for name, value in os.environ.items() if not name.startswith("FOLLOWUP_")}
        self.env["FOLLOWUP_DATABASE_URL"] = self.url
        self.env["COLUMNS"] = "1000"  # rich wraps stderr to the terminal width, long paths included

    def __call__(self, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(FOLLOWUP), *args],
            cwd=self.directory,
            env={**self.env, **env},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert "Traceback" not in result.stdout + result.stderr, result.stderr
        return result

    def rows(self, query: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.database) as conn:
            return conn.execute(query).fetchall()


def one_line(text: str) -> str:
    """The sentence, whatever the line breaks."""
    return " ".join(text.split())


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture
def upgraded(cli: Cli) -> Cli:
    result = cli("db", "upgrade")
    assert result.returncode == 0, result.stderr
    return cli


def test_db_upgrade_creates_the_schema_and_a_key_file_beside_the_database(cli: Cli) -> None:
    assert not cli.database.exists()

    result = cli("db", "upgrade")

    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"database at revision \w+\n", result.stdout)
    assert "master_key_file_created" in result.stderr
    assert str(cli.key_file) in one_line(result.stderr)
    assert stat.S_IMODE(cli.key_file.stat().st_mode) == 0o600
    assert len(base64.b64decode(cli.key_file.read_text().strip(), validate=True)) == 32
    assert ("api_keys",) in cli.rows("SELECT name FROM sqlite_master WHERE type = 'table'")

    # Running again keeps the same key (a new one would make all sealed data unreadable) and is quiet.
    key = cli.key_file.read_text()
    again = cli("db", "upgrade")
    assert again.returncode == 0
    assert cli.key_file.read_text() == key
    assert "master_key_file_created" not in again.stderr
    assert list(cli.directory.glob("*.key")) == [cli.key_file]


def test_with_a_master_key_no_key_file_is_written(cli: Cli) -> None:
    result = cli("db", "upgrade", FOLLOWUP_MASTER_KEY=MASTER_KEY)

    assert result.returncode == 0, result.stderr
    assert not cli.key_file.exists()
    assert "master_key_file_created" not in result.stderr


def test_apikey_create_prints_only_the_key_and_stores_only_its_hash(upgraded: Cli) -> None:
    result = upgraded("apikey", "create", "--name", "x")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    key = lines[0]
    assert re.fullmatch(r"fu_[A-Za-z0-9_-]{43}", key)
    assert result.stdout == key + "\n"
    assert upgraded.rows("SELECT name FROM api_keys") == [("x",)]
    assert key.encode() not in upgraded.database.read_bytes()

    # The printed key opens the API of this very database; another key does not.
    runtime = build_runtime(Settings(_env_file=None, database_url=upgraded.url, master_key=None))  # type: ignore[call-arg]
    try:
        with TestClient(create_app(runtime)) as client:
            assert client.get("/api/v1/cases", headers={"Authorization": f"Bearer {key}"}).status_code == 200
            wrong = client.get("/api/v1/cases", headers={"Authorization": f"Bearer {key[:-1]}x"})
            assert wrong.json()["error"]["code"] == "invalid_api_key"
    finally:
        runtime.close()


def test_staff_create_admin_prints_a_password_that_signs_in(upgraded: Cli) -> None:
    result = upgraded("staff", "create-admin", "--email", "a@b.c")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    password = lines[0]
    assert len(password) >= 12
    assert upgraded.rows("SELECT email, role FROM staff") == [("a@b.c", "admin")]
    assert password.encode() not in upgraded.database.read_bytes()
    runtime = build_runtime(Settings(_env_file=None, database_url=upgraded.url, master_key=None))  # type: ignore[call-arg]
    try:
        with runtime.session() as session:
            member = staff.access_staff_by_email(session, "A@B.C")
            assert member.role == "admin"
            assert staff.password_checker().verify(member.password_hash, password)
    finally:
        runtime.close()

    # A second admin with the same address is refused in one sentence, and nothing is printed.
    again = upgraded("staff", "create-admin", "--email", "a@b.c")
    assert again.returncode == 2
    assert again.stdout == ""
    assert one_line(again.stderr) == "error: A staff account for a@b.c already exists."
    assert upgraded.rows("SELECT count(*) FROM staff") == [(1,)]


def test_events_import_counts_accepted_duplicates_and_rejected(upgraded: Cli) -> None:
    lines = [
        json.dumps(transfer("e1", "c1")),
        json.dumps(transfer("e2", "c2")),
        "{not json",
        json.dumps(transfer("e1", "c1")),
        "",
        json.dumps(transfer("e3", "c1")),
    ]
    file = upgraded.directory / "events.ndjson"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = upgraded("events", "import", str(file))

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"accepted": 3, "duplicates": 1, "rejected": 1}
    assert "rejected line 3: not valid JSON" in one_line(result.stderr)
    assert upgraded.rows("SELECT event_id FROM events ORDER BY event_id") == [("e1",), ("e2",), ("e3",)]
    assert upgraded.rows("SELECT external_id, event_count FROM customers ORDER BY external_id") == [
        ("c1", 2),
        ("c2", 1),
    ]

    # Importing the same file again changes nothing: every event is a duplicate.
    again = upgraded("events", "import", str(file))
    assert json.loads(again.stdout) == {"accepted": 0, "duplicates": 4, "rejected": 1}
    assert upgraded.rows("SELECT count(*) FROM events") == [(3,)]


def test_events_import_names_the_line_of_a_bad_event_across_batches(upgraded: Cli) -> None:
    bad = {**transfer("e4", "c1"), "occurred_at": "2026-11-23T10:00:00"}
    lines = [json.dumps(transfer(f"e{i}", "c1")) for i in range(1, 4)] + [json.dumps(bad), json.dumps(transfer("e5"))]
    file = upgraded.directory / "events.ndjson"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = upgraded("events", "import", str(file), "--batch-size", "2")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"accepted": 4, "duplicates": 0, "rejected": 1}
    assert (
        "rejected line 4: occurred_at: occurred_at must be an RFC 3339 time with an offset, "
        "e.g. 2026-11-23T10:15:00+08:00" in one_line(result.stderr)
    )
    assert upgraded.rows("SELECT count(*) FROM events") == [(4,)]


def test_events_import_reads_stdin(upgraded: Cli) -> None:
    stdin = json.dumps(transfer("e1", "c1")) + "\n" + json.dumps(transfer("e2", "c1")) + "\n"

    result = upgraded("events", "import", "-", stdin=stdin)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"accepted": 2, "duplicates": 0, "rejected": 0}


def test_events_import_of_nothing_but_bad_lines_fails_and_stores_nothing(upgraded: Cli) -> None:
    file = upgraded.directory / "events.ndjson"
    file.write_text("{not json\n[1, 2]\n", encoding="utf-8")

    result = upgraded("events", "import", str(file))

    assert result.returncode == 1
    assert json.loads(result.stdout) == {"accepted": 0, "duplicates": 0, "rejected": 2}
    assert upgraded.rows("SELECT count(*) FROM events") == [(0,)]
    assert upgraded.rows("SELECT count(*) FROM customers") == [(0,)]


def test_events_import_of_a_missing_file_is_a_clear_error(upgraded: Cli) -> None:
    missing = upgraded.directory / "no-such-file.ndjson"

    result = upgraded("events", "import", str(missing))

    assert result.returncode == 2
    assert result.stdout == ""
    assert one_line(result.stderr) == f"error: no such file: {missing}"


def test_worker_once_on_an_empty_database_does_nothing_and_exits_0(upgraded: Cli) -> None:
    result = upgraded("worker", "--once")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "steps=0 messages=0 jobs=0\n"


@pytest.mark.parametrize(
    "args",
    [("apikey", "create", "--name", "x"), ("staff", "create-admin", "--email", "a@b.c"), ("worker", "--once")],
)
def test_commands_before_db_upgrade_say_what_to_do(cli: Cli, args: tuple[str, ...]) -> None:
    result = cli(*args)

    assert result.returncode == 2
    assert result.stdout == ""
    assert one_line(result.stderr).endswith("error: the database has no schema yet; run `followup db upgrade` first")


def test_postgresql_without_a_master_key_is_refused_before_connecting(cli: Cli) -> None:
    # Nothing listens on port 9: the refusal must come from the settings, not a failed connection.
    url = "postgresql+psycopg://followup@127.0.0.1:9/followup"

    for args in (("db", "upgrade"), ("worker", "--once"), ("apikey", "create", "--name", "x")):
        result = cli(*args, FOLLOWUP_DATABASE_URL=url)

        assert result.returncode == 2
        assert result.stdout == ""
        assert one_line(result.stderr) == (
            "error: FOLLOWUP_MASTER_KEY is required when the database is not a SQLite file; generate one with "
            "`followup keys generate` and keep it in your secret store"
        )
    assert list(cli.directory.iterdir()) == []


def test_a_master_key_that_is_not_32_bytes_of_base64_is_refused(cli: Cli) -> None:
    not_base64 = cli("db", "upgrade", FOLLOWUP_MASTER_KEY="not base64!")
    too_short = cli("db", "upgrade", FOLLOWUP_MASTER_KEY=base64.b64encode(b"short").decode())

    assert (not_base64.returncode, too_short.returncode) == (2, 2)
    assert one_line(not_base64.stderr) == "error: FOLLOWUP_MASTER_KEY is not valid base64"
    assert one_line(too_short.stderr).startswith("error: FOLLOWUP_MASTER_KEY must decode to 32 bytes")
    assert not cli.key_file.exists()


def test_keys_generate_prints_a_usable_master_key(cli: Cli) -> None:
    result = cli("keys", "generate")

    assert result.returncode == 0
    key = result.stdout.strip()
    assert len(base64.b64decode(key, validate=True)) == 32
    assert cli("db", "upgrade", FOLLOWUP_MASTER_KEY=key).returncode == 0
