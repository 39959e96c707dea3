"""The `followup` command as an operator runs it: a real process, a fresh SQLite file of its own,
nothing but the environment to configure it. Errors are one clear line on stderr, never a
traceback; what a script reads (a key, a password, counts) is alone on stdout."""

from __future__ import annotations

import base64
import codecs
import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL, make_url

import followup
from followup.app import create_app
from followup.config import Settings
from followup.kernel.db import describe_database
from followup.runtime import build_runtime
from followup.staff import service as staff
from tests.builders.events import transfer
from tests.conftest import MASTER_KEY, free_port

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


# ── a database that cannot be used: one line naming FOLLOWUP_DATABASE_URL ────────────────────────

PASSWORD = "Never-Print-Me-7f3a"
URL_FORMS = "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:5432/DB"


def only_line(stderr: str) -> str:
    """The whole of stderr, asserted to be exactly one line (however narrow the terminal)."""
    assert stderr.endswith("\n"), stderr
    assert stderr.count("\n") == 1, stderr
    return stderr.rstrip("\n")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            f"postgresql+psycopg://followup:{PASSWORD}@127.0.0.1:9/followup",
            "error: cannot connect to PostgreSQL at 127.0.0.1:9 (connection refused); check the host and port in "
            "FOLLOWUP_DATABASE_URL and that the server is running",
        ),
        (
            f"postgresql+psycopg://followup:{PASSWORD}@no-such-host.invalid:5432/followup",
            "error: cannot find the database host no-such-host.invalid; check the host in FOLLOWUP_DATABASE_URL",
        ),
        (
            f"mysql://followup:{PASSWORD}@127.0.0.1/followup",
            f"error: FOLLOWUP_DATABASE_URL names a mysql database, which followup does not support; use {URL_FORMS}",
        ),
        (
            f"postgresql+psycopg2://followup:{PASSWORD}@127.0.0.1/followup",
            "error: FOLLOWUP_DATABASE_URL asks for the psycopg2 driver, which followup does not ship; "
            "start the URL with postgresql+psycopg://",
        ),
        (
            f"followup:{PASSWORD}@db.internal",
            f"error: FOLLOWUP_DATABASE_URL is not a database URL; write it as {URL_FORMS}",
        ),
    ],
)
@pytest.mark.parametrize("command", [("db", "upgrade"), ("serve", "--port", "9"), ("worker", "--once")])
def test_a_database_that_cannot_be_used_is_one_line_naming_the_setting(
    cli: Cli, url: str, message: str, command: tuple[str, ...]
) -> None:
    # Given a URL that cannot work, a master key (so the URL is what fails) and a narrow terminal
    result = cli(*command, FOLLOWUP_DATABASE_URL=url, FOLLOWUP_MASTER_KEY=MASTER_KEY, COLUMNS="40")

    # Then the command stops with one line on stderr that says what to fix, and never the password
    assert result.returncode == 2
    assert result.stdout == ""
    assert only_line(result.stderr) == message
    assert PASSWORD not in result.stderr
    assert list(cli.directory.iterdir()) == []


def test_a_sqlite_directory_that_cannot_be_created_is_one_line(cli: Cli) -> None:
    # Given a database path below a regular file, where no directory can be made (even for root)
    (cli.directory / "not-a-directory").write_text("")
    url = f"sqlite:///{cli.directory}/not-a-directory/var/followup.db"

    result = cli("db", "upgrade", FOLLOWUP_DATABASE_URL=url, COLUMNS="40")

    assert result.returncode == 2
    assert result.stdout == ""
    assert only_line(result.stderr) == (
        f"error: cannot create {cli.directory}/not-a-directory/var for the SQLite database (Not a directory); "
        "point FOLLOWUP_DATABASE_URL at a file in a directory this user can create and write"
    )


def _postgres_url_or_skip() -> URL:
    base = os.environ.get("FOLLOWUP_TEST_DATABASE_URL")
    if not base:
        pytest.skip("needs a PostgreSQL server: set FOLLOWUP_TEST_DATABASE_URL")
    return make_url(base)


def test_a_postgresql_database_that_does_not_exist_is_one_line(cli: Cli) -> None:
    server = _postgres_url_or_skip()
    url = server.set(database="followup_no_such_database", password=server.password or PASSWORD)

    rendered = url.render_as_string(hide_password=False)
    result = cli("db", "upgrade", FOLLOWUP_DATABASE_URL=rendered, FOLLOWUP_MASTER_KEY=MASTER_KEY, COLUMNS="40")

    assert result.returncode == 2
    assert only_line(result.stderr) == (
        f'error: PostgreSQL at {server.host}:{server.port or 5432} has no database "followup_no_such_database"; '
        "create it, or fix the database name in FOLLOWUP_DATABASE_URL"
    )
    assert str(url.password) not in result.stderr


def test_a_postgresql_user_that_does_not_exist_is_one_line(cli: Cli) -> None:
    server = _postgres_url_or_skip()
    url = server.set(username="followup_no_such_user", password=PASSWORD)

    rendered = url.render_as_string(hide_password=False)
    result = cli("worker", "--once", FOLLOWUP_DATABASE_URL=rendered, FOLLOWUP_MASTER_KEY=MASTER_KEY)

    assert result.returncode == 2
    assert only_line(result.stderr) == (
        f'error: PostgreSQL at {server.host}:{server.port or 5432} has no user "followup_no_such_user"; '
        "check the user in FOLLOWUP_DATABASE_URL"
    )
    assert PASSWORD not in result.stderr


# ── serve says where it serves ───────────────────────────────────────────────────────────────────


TOKEN = "Qw3rTy7UiOp0AsDfGh1JkLzXcVbNm9Qw3rTy7UiOp0A"


def test_serve_logs_one_start_up_line_with_address_database_and_public_url(upgraded: Cli) -> None:
    port = free_port()
    process = subprocess.Popen(
        [str(FOLLOWUP), "serve", "--port", str(port)],
        cwd=upgraded.directory,
        env={**upgraded.env, "FOLLOWUP_PUBLIC_URL": "https://feedback.wallet.example/"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # When it answers on its port
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "followup serve did not start"
                time.sleep(0.1)
        # And a customer opens a survey link
        assert httpx.get(f"http://127.0.0.1:{port}/s/{TOKEN}?score=9").status_code == 404
        # And a browser loads the pages' style sheet and the console's script, whole
        web = Path(followup.__file__).parent / "web"
        for path, file in (
            ("/static/pages.css", web / "static" / "pages.css"),
            ("/console/static/vendor/htmx.min.js", web / "console" / "static" / "vendor" / "htmx.min.js"),
        ):
            asset = httpx.get(f"http://127.0.0.1:{port}{path}")
            assert asset.status_code == 200
            assert asset.content == file.read_bytes()
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=30)

    # Then it has said, in one line, where it serves, on which database, and the public URL of links
    assert stdout == ""
    (line,) = [line for line in stderr.splitlines() if " serving " in line]
    assert f"address=http://127.0.0.1:{port}" in line
    assert f"database='sqlite {upgraded.database}'" in line
    assert "public_url=https://feedback.wallet.example" in line
    # And besides it only access lines, naming each route but never the token in the link
    others = [entry for entry in stderr.splitlines() if entry.strip() and entry != line]
    assert others, "an access line for each request"
    assert all(" request " in entry and "status=" in entry for entry in others), others
    assert any("route=/s/{token}" in entry and "status=404" in entry for entry in others), others
    assert TOKEN not in stderr


# ── events import: encodings ─────────────────────────────────────────────────────────────────────

CHINESE = {"to": "朋友", "note": "房租"}


def _event_lines() -> list[str]:
    """An ASCII-only first line, then a line with Chinese text."""
    return [json.dumps(transfer("e1", "c1")), json.dumps(transfer("e2", "c1", attributes=CHINESE), ensure_ascii=False)]


def test_events_import_refuses_a_gbk_file_whole_and_names_line_encoding_and_option(upgraded: Cli) -> None:
    # Given a GBK file whose first line is valid in any encoding and whose second is not UTF-8
    file = upgraded.directory / "events-gbk.ndjson"
    file.write_bytes(("\n".join(_event_lines()) + "\n").encode("gbk"))

    result = upgraded("events", "import", str(file), COLUMNS="40")

    # Then nothing is imported, not even line 1, and one line says why and what to do
    assert result.returncode == 2
    assert result.stdout == ""
    assert only_line(result.stderr) == (
        "error: line 2 is not valid UTF-8 (byte 0xc5); nothing was imported. "
        "If the file is in another encoding, name it with --encoding, e.g. --encoding gbk"
    )
    assert upgraded.rows("SELECT count(*) FROM events") == [(0,)]
    assert upgraded.rows("SELECT count(*) FROM customers") == [(0,)]

    # When the encoding is named, every line is imported with its text intact
    named = upgraded("events", "import", str(file), "--encoding", "gbk")
    assert named.returncode == 0, named.stderr
    assert json.loads(named.stdout) == {"accepted": 2, "duplicates": 0, "rejected": 0}
    stored = upgraded.rows("SELECT attributes FROM events WHERE event_id = 'e2'")
    assert json.loads(str(stored[0][0])) == CHINESE


def test_events_import_of_gbk_on_stdin_is_refused_whole_too(upgraded: Cli) -> None:
    stdin = ("\n".join(_event_lines()) + "\n").encode("gbk")
    result = subprocess.run(
        [str(FOLLOWUP), "events", "import", "-"],
        cwd=upgraded.directory,
        env=upgraded.env,
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.decode().startswith("error: line 2 is not valid UTF-8 (byte 0xc5); nothing was imported.")
    assert upgraded.rows("SELECT count(*) FROM events") == [(0,)]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be"])
def test_events_import_reads_a_byte_order_mark(upgraded: Cli, encoding: str) -> None:
    # Given a file that starts with a byte-order mark (utf-16-be gets its mark written by hand)
    text = "\n".join(_event_lines()) + "\n"
    data = codecs.BOM_UTF16_BE + text.encode(encoding) if encoding == "utf-16-be" else text.encode(encoding)
    file = upgraded.directory / "events-bom.ndjson"
    file.write_bytes(data)

    result = upgraded("events", "import", str(file))

    # Then line 1 is an event like any other, not "not valid JSON"
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"accepted": 2, "duplicates": 0, "rejected": 0}
    assert "rejected" not in result.stderr
    assert upgraded.rows("SELECT event_id FROM events ORDER BY event_id") == [("e1",), ("e2",)]


def test_events_import_with_an_unknown_encoding_is_one_line(upgraded: Cli) -> None:
    file = upgraded.directory / "events.ndjson"
    file.write_text(json.dumps(transfer("e1", "c1")) + "\n", encoding="utf-8")

    result = upgraded("events", "import", str(file), "--encoding", "klingon")

    assert result.returncode == 2
    assert only_line(result.stderr) == (
        "error: --encoding klingon is not an encoding Python knows; e.g. utf-8, gbk, gb18030, big5"
    )
    assert upgraded.rows("SELECT count(*) FROM events") == [(0,)]


def test_an_interrupted_import_says_what_was_stored_and_exits_130(upgraded: Cli) -> None:
    # Given a file long enough to be interrupted after its first batches
    file = upgraded.directory / "events.ndjson"
    file.write_text("".join(json.dumps(transfer(f"e{i}", f"c{i % 50}")) + "\n" for i in range(30_000)))
    process = subprocess.Popen(
        [str(FOLLOWUP), "events", "import", str(file), "--batch-size", "50"],
        cwd=upgraded.directory,
        env=upgraded.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # When Ctrl-C arrives once the first batch is stored
    deadline = time.monotonic() + 60
    while upgraded.rows("SELECT count(*) FROM events") == [(0,)]:
        assert time.monotonic() < deadline, "no batch was stored"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)

    # Then it exits 130 and says, in one line, how many events stay stored, which the database confirms
    assert process.returncode == 130, stderr
    assert stdout == ""
    stored = upgraded.rows("SELECT count(*) FROM events")[0][0]
    assert 0 < int(str(stored)) < 30_000
    assert f"error: interrupted; the {int(str(stored)):,} events stored before stay stored." in one_line(stderr)
    assert "Traceback" not in stderr
    # And importing again finishes the job
    again = upgraded("events", "import", str(file))
    assert json.loads(again.stdout) == {"accepted": 30_000 - int(str(stored)), "duplicates": stored, "rejected": 0}


@pytest.mark.parametrize(
    ("url", "described"),
    [
        (f"postgresql+psycopg://followup:{PASSWORD}@db.internal:5433/followup", "postgresql db.internal:5433/followup"),
        ("sqlite:///./var/followup.db", "sqlite ./var/followup.db"),
    ],
)
def test_the_start_up_line_names_the_database_without_user_or_password(url: str, described: str) -> None:
    assert describe_database(url) == described
    assert PASSWORD not in describe_database(url)
    assert "followup@" not in describe_database(url)
