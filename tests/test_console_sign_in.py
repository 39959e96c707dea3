"""Console sign-in under attack, and sessions that really end: throttling with backoff, one argon2
verification per attempt whether the account exists or not, and sign-out, a password change or
disabling an account ending the session behind a copied cookie."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher, extract_parameters
from fastapi.testclient import TestClient
from sqlalchemy import text
from structlog.testing import capture_logs

from followup.app import create_app
from followup.config import Settings
from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.staff import service as staff
from followup.web.console.auth import SESSION_COOKIE, console_password_checker
from tests.conftest import MASTER_KEY
from tests.test_console import csrf_of, make_staff, sign_in

EMAIL = "ops@wallet.example"
FOLLOWUP = Path(sys.prefix) / "bin" / "followup"


def attempt(client: TestClient, email: str, password: str) -> Any:
    """One sign-in through the form, as a browser sends it."""
    form = client.get("/console/login")
    return client.post("/console/login", data={"email": email, "password": password, "csrf": csrf_of(form.text)})


def client_from(runtime: Runtime, address: str) -> TestClient:
    return TestClient(create_app(runtime), follow_redirects=False, client=(address, 50000))


@pytest.fixture
def console(runtime: Runtime) -> TestClient:
    return client_from(runtime, "203.0.113.7")


def rows(runtime: Runtime, query: str) -> list[tuple[Any, ...]]:
    with runtime.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(query))]


# Throttling


def test_five_wrong_passwords_lock_the_account_and_even_the_right_one_is_refused(
    runtime: Runtime, console: TestClient, clock: ManualClock
) -> None:
    password = make_staff(runtime)

    # Given five wrong passwords: each is a plain refusal
    for _ in range(5):
        assert attempt(console, EMAIL, "guess").status_code == 401

    # When the right password comes during the lock
    locked = attempt(console, EMAIL, password)

    # Then it is refused with 429, a page that says when to retry, and no session
    assert locked.status_code == 429
    assert locked.headers["Retry-After"] == "30"
    assert "Too many failed sign-ins. Try again after 02:00:30 UTC." in locked.text
    assert locked.headers["content-type"].startswith("text/html")
    assert SESSION_COOKIE not in locked.cookies
    assert console.get("/console").status_code == 303

    # And once the lock has passed, the right password signs in at once
    clock.advance(dt.timedelta(seconds=30))
    assert attempt(console, EMAIL, password).status_code == 303
    assert console.get("/console").status_code == 200


def test_two_hundred_wrong_passwords_then_the_right_one_does_not_sign_in(runtime: Runtime, console: TestClient) -> None:
    password = make_staff(runtime)

    answers = [attempt(console, EMAIL, f"guess-{n}").status_code for n in range(200)]
    right = attempt(console, EMAIL, password)

    assert answers[:5] == [401] * 5
    assert set(answers[5:]) == {429}
    assert right.status_code == 429
    assert SESSION_COOKIE not in right.cookies
    # Attempts during the lock are not password checks and do not count: only the first five did.
    assert rows(runtime, "SELECT scope, failures FROM sign_in_throttles ORDER BY scope") == [
        ("account", 5),
        ("address", 5),
    ]


def test_the_lock_doubles_with_each_failure_after_it_and_waiting_does_not_extend_it(
    runtime: Runtime, console: TestClient, clock: ManualClock
) -> None:
    make_staff(runtime)
    for _ in range(5):
        attempt(console, EMAIL, "guess")
    assert attempt(console, EMAIL, "guess").headers["Retry-After"] == "30"
    clock.advance(dt.timedelta(seconds=10))
    assert attempt(console, EMAIL, "guess").headers["Retry-After"] == "20"

    clock.advance(dt.timedelta(seconds=20))
    assert attempt(console, EMAIL, "guess").status_code == 401  # the sixth failure
    assert attempt(console, EMAIL, "guess").headers["Retry-After"] == "60"
    clock.advance(dt.timedelta(seconds=60))
    assert attempt(console, EMAIL, "guess").status_code == 401  # the seventh
    assert attempt(console, EMAIL, "guess").headers["Retry-After"] == "120"

    # The lock never grows past its cap (15 minutes by default)
    for _ in range(10):
        clock.advance(dt.timedelta(minutes=15))
        assert attempt(console, EMAIL, "guess").status_code == 401
    assert attempt(console, EMAIL, "guess").headers["Retry-After"] == "900"


def test_a_success_resets_the_accounts_count(runtime: Runtime, console: TestClient) -> None:
    password = make_staff(runtime)
    for _ in range(4):
        assert attempt(console, EMAIL, "guess").status_code == 401
    assert attempt(console, EMAIL, password).status_code == 303

    # Four more wrong passwords are again below the limit: no lock
    for _ in range(4):
        assert attempt(console, EMAIL, "guess").status_code == 401
    assert attempt(console, EMAIL, password).status_code == 303
    assert rows(runtime, "SELECT scope FROM sign_in_throttles") == [("address",)]


def test_an_unknown_email_is_throttled_exactly_like_a_real_one(runtime: Runtime, console: TestClient) -> None:
    # A lock that only real accounts got would tell which accounts exist.
    for _ in range(5):
        assert attempt(console, "nobody@wallet.example", "guess").status_code == 401
    assert attempt(console, "nobody@wallet.example", "guess").status_code == 429


def test_many_accounts_tried_from_one_address_lock_that_address_only(runtime: Runtime) -> None:
    password = make_staff(runtime)
    guesser = client_from(runtime, "198.51.100.9")
    colleague = client_from(runtime, "192.0.2.44")

    # Given twenty wrong passwords for twenty different emails from one address
    for n in range(20):
        assert attempt(guesser, f"staff{n}@wallet.example", "guess").status_code == 401

    # Then that address may not sign in, not even with a real account's password
    assert attempt(guesser, EMAIL, password).status_code == 429
    # While the account itself, from another address, is not locked
    assert attempt(colleague, EMAIL, password).status_code == 303


def test_failed_sign_ins_are_logged_without_password_or_email(runtime: Runtime, console: TestClient) -> None:
    make_staff(runtime)
    member_id = rows(runtime, "SELECT id FROM staff")[0][0]

    with capture_logs() as logs:
        attempt(console, EMAIL, "Secret-Guess-1")
        attempt(console, "nobody@wallet.example", "Secret-Guess-2")
        for _ in range(5):
            attempt(console, EMAIL, "Secret-Guess-3")

    failures = [entry for entry in logs if entry["event"] == "console_sign_in_failed"]
    assert [f["reason"] for f in failures] == [
        "wrong_password",
        "unknown_account",
        "wrong_password",
        "wrong_password",
        "wrong_password",
        "wrong_password",
        "throttled",
    ]
    assert failures[0]["staff_id"] == member_id
    assert failures[1]["staff_id"] is None
    assert re.fullmatch(r"[0-9a-f]{12}", failures[1]["account"])
    assert failures[0]["account"] != failures[1]["account"]
    assert failures[0]["address"] == failures[1]["address"]
    assert failures[-1]["retry_at"] == "2026-11-23T02:00:30+00:00"
    logged = repr(logs)
    for secret in ("Secret-Guess", "ops@wallet.example", "nobody@", "wallet.example", "203.0.113.7"):
        assert secret not in logged


def test_the_counts_keep_no_email_or_address_in_clear(runtime: Runtime, console: TestClient) -> None:
    make_staff(runtime)
    attempt(console, EMAIL, "guess")
    stored = repr(rows(runtime, "SELECT * FROM sign_in_throttles"))
    assert "wallet.example" not in stored
    assert "203.0.113.7" not in stored
    assert len(rows(runtime, "SELECT key_hash FROM sign_in_throttles WHERE length(key_hash) = 64")) == 2


# One argon2 verification per attempt, whoever signs in


class RecordingHasher(PasswordHasher):
    """argon2's own hasher, noting each hash it makes and each hash it verifies against."""

    def __init__(self) -> None:
        super().__init__()
        self.hashed = 0
        self.verified: list[str] = []

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.hashed += 1
        return super().hash(password, salt=salt)

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified.append(str(hash))
        return super().verify(hash, password)


def test_unknown_disabled_and_known_accounts_cost_one_verification_with_the_same_parameters(
    runtime: Runtime, console: TestClient, clock: ManualClock
) -> None:
    hasher = RecordingHasher()
    checker = staff.PasswordChecker(hasher)
    assert hasher.hashed == 1, "the dummy hash is made once, when the checker is built"
    with runtime.session() as session:
        member, _ = staff.create_staff(session, email=EMAIL, role="admin", now=clock.now(), passwords=checker)
        gone, _ = staff.create_staff(session, email="gone@wallet.example", role="agent", now=clock.now())
        staff.disable_staff(session, gone, now=clock.now())
        real_hash = member.password_hash
    hasher.hashed = 0
    console.app.dependency_overrides[console_password_checker] = lambda: checker  # type: ignore[attr-defined]

    seen = []
    for email in ("nobody@wallet.example", "gone@wallet.example", EMAIL, "other@wallet.example"):
        hasher.verified.clear()
        assert attempt(console, email, "guess").status_code == 401
        seen.append(list(hasher.verified))

    assert seen == [[checker.dummy_hash], [checker.dummy_hash], [real_hash], [checker.dummy_hash]]
    assert hasher.hashed == 0, "no sign-in computes a hash"
    assert extract_parameters(checker.dummy_hash) == extract_parameters(real_hash)


def test_the_apps_checker_is_built_once_at_start_up(runtime: Runtime) -> None:
    staff.password_checker.cache_clear()
    client = TestClient(create_app(runtime), follow_redirects=False)
    assert staff.password_checker.cache_info().misses == 1
    make_staff(runtime)
    for email in ("nobody@wallet.example", EMAIL):
        attempt(client, email, "guess")
    assert staff.password_checker.cache_info().misses == 1


# Sessions end


def signed_in_copy(runtime: Runtime, client: TestClient) -> TestClient:
    """A second browser holding a copy of `client`'s session cookie."""
    thief = TestClient(create_app(runtime), follow_redirects=False)
    thief.cookies.set(SESSION_COOKIE, client.cookies[SESSION_COOKIE], path="/console")
    assert thief.get("/console").status_code == 200
    return thief


def test_signing_out_ends_the_session_for_a_copied_cookie_too(runtime: Runtime, console: TestClient) -> None:
    password = make_staff(runtime)
    sign_in(console, EMAIL, password)
    copy = signed_in_copy(runtime, console)
    elsewhere = sign_in(TestClient(create_app(runtime), follow_redirects=False), EMAIL, password)

    done = console.post("/console/logout", data={"csrf": csrf_of(console.get("/console").text)})

    assert done.status_code == 303
    assert copy.get("/console").status_code == 303
    assert console.get("/console").status_code == 303
    # Only that session ended: the same person signed in on another computer stays signed in
    assert elsewhere.get("/console").status_code == 200
    assert rows(runtime, "SELECT count(*) FROM console_sessions") == [(1,)]


def test_the_database_keeps_only_a_hash_of_the_session_token(runtime: Runtime, console: TestClient) -> None:
    sign_in(console, EMAIL, make_staff(runtime))
    token = console.cookies[SESSION_COOKIE]
    stored = repr(rows(runtime, "SELECT * FROM console_sessions"))
    assert token not in stored
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)


def test_a_tampered_or_expired_session_is_refused(runtime: Runtime, console: TestClient, clock: ManualClock) -> None:
    sign_in(console, EMAIL, make_staff(runtime))
    good = console.cookies[SESSION_COOKIE]

    console.cookies.clear()
    console.cookies.set(SESSION_COOKIE, good[:-1] + ("A" if good[-1] != "A" else "B"), path="/console")
    assert console.get("/console").status_code == 303

    console.cookies.clear()
    console.cookies.set(SESSION_COOKIE, good, path="/console")
    assert console.get("/console").status_code == 200
    clock.advance(dt.timedelta(hours=8))
    assert console.get("/console").status_code == 303


def run_cli(runtime: Runtime, *args: str) -> subprocess.CompletedProcess[str]:
    """`followup` as an operator runs it, in its own process, against the test database."""
    settings: Settings = runtime.settings
    env = {
        "PATH": os.environ.get("PATH", ""),
        "FOLLOWUP_DATABASE_URL": settings.database_url,
        "FOLLOWUP_MASTER_KEY": MASTER_KEY,
    }
    return subprocess.run([str(FOLLOWUP), *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_a_password_change_ends_every_session_of_the_account(runtime: Runtime, console: TestClient) -> None:
    old_password = make_staff(runtime)
    other = make_staff(runtime, "analyst@wallet.example", "analyst")
    sign_in(console, EMAIL, old_password)
    copy = signed_in_copy(runtime, console)
    colleague = sign_in(TestClient(create_app(runtime), follow_redirects=False), "analyst@wallet.example", other)

    result = run_cli(runtime, "staff", "set-password", "--email", "OPS@wallet.example")

    assert result.returncode == 0, result.stderr
    new_password = result.stdout.strip()
    assert len(new_password) >= 12
    assert console.get("/console").status_code == 303
    assert copy.get("/console").status_code == 303
    assert colleague.get("/console").status_code == 200, "other accounts keep their sessions"
    fresh = TestClient(create_app(runtime), follow_redirects=False)
    assert attempt(fresh, EMAIL, old_password).status_code == 401
    assert attempt(fresh, EMAIL, new_password).status_code == 303


def test_disabling_an_account_ends_its_sessions_and_its_sign_in(runtime: Runtime, console: TestClient) -> None:
    password = make_staff(runtime)
    sign_in(console, EMAIL, password)
    copy = signed_in_copy(runtime, console)

    result = run_cli(runtime, "staff", "disable", "--email", EMAIL)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "disabled ops@wallet.example; its console sessions have ended\n"
    assert copy.get("/console").status_code == 303
    assert console.get("/console").status_code == 303
    assert rows(runtime, "SELECT count(*) FROM console_sessions") == [(0,)]
    assert attempt(TestClient(create_app(runtime), follow_redirects=False), EMAIL, password).status_code == 401


def test_staff_commands_name_an_unknown_account_in_one_line(runtime: Runtime) -> None:
    for command in ("set-password", "disable"):
        result = run_cli(runtime, "staff", command, "--email", "nobody@wallet.example")
        assert result.returncode == 2
        assert result.stdout == ""
        assert "There is no staff account for nobody@wallet.example." in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("email", "password"), [("a" * 300 + "@wallet.example", "x"), ("ops@wallet.example", "p" * 1001)]
)
def test_a_sign_in_form_over_its_bounds_gets_a_page_not_json(
    runtime: Runtime, console: TestClient, email: str, password: str
) -> None:
    answer = attempt(console, email, password)

    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("text/html")
    assert "Request refused" in answer.text
    assert "at most" in answer.text  # says which bound was passed
    assert password not in answer.text
    assert rows(runtime, "SELECT count(*) FROM console_sessions") == [(0,)]


def test_signing_out_everywhere_ends_every_session_of_the_account_only(runtime: Runtime, console: TestClient) -> None:
    password = make_staff(runtime)
    other_password = make_staff(runtime, email="li.na@wallet.example")
    sign_in(console, EMAIL, password)
    laptop = sign_in(TestClient(create_app(runtime), follow_redirects=False), EMAIL, password)
    colleague = sign_in(TestClient(create_app(runtime), follow_redirects=False), "li.na@wallet.example", other_password)

    done = console.post("/console/logout-everywhere", data={"csrf": csrf_of(console.get("/console").text)})

    assert (done.status_code, done.headers["location"]) == (303, "/console/login")
    assert console.get("/console").status_code == 303
    assert laptop.get("/console").status_code == 303
    # A colleague's session is theirs, and stays
    assert colleague.get("/console").status_code == 200
    assert rows(runtime, "SELECT count(*) FROM console_sessions") == [(1,)]
    # Without the form's token nothing ends
    sign_in(console, EMAIL, password)
    refused = console.post("/console/logout-everywhere", data={"csrf": "forged"})
    assert refused.status_code == 403
    assert console.get("/console").status_code == 200
