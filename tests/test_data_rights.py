"""A customer's data rights through the API: export everything, erase on request, and erasure that
holds against a database restored from an older backup (ADR 0024).

The customer goes through the whole loop first — contacts and consents, an event, an email
follow-up answered with a comment, a reward, a detractor case with a reply, an SMS reply — so
every kind of record exists before it is exported and erased.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sqlite3
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from followup.app import create_app
from followup.config import Settings
from followup.kernel.db import KEY_STORE_SCHEMA, key_store_location
from followup.kernel.time import ManualClock
from followup.models import metadata
from followup.runtime import Runtime, build_runtime
from followup.worker import Worker
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.conftest import SmtpSink
from tests.helpers import every_stored_value, file_bytes, survey_path

EMAIL = "Li.Na.4471@Example-Wallet.test"
PHONE = "+8613811112222"
OTHER_EMAIL = "Chen.Jie.9080@Example-Wallet.test"
COMMENT = "扫码付款以后一直没到账，客服也联系不上 — the QR payment never arrived"
ATTRIBUTE = "merchant-Lakeside-Qz81"  # an event attribute of the erased customer
OTHER_ATTRIBUTE = "merchant-Hilltop-Wm52"  # the other customer's: must survive
REASON = "I closed my wallet account"
REPLY = "We found the payment and refunded it to your balance."


def secrets() -> list[str]:
    national = PHONE.removeprefix("+86")
    return [EMAIL, EMAIL.lower(), PHONE, national, COMMENT, COMMENT[:10], ATTRIBUTE, REASON, REPLY]


@pytest.fixture
def loop_ran(api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock) -> None:
    first = {
        "email": EMAIL,
        "phone": PHONE,
        "locale": "zh-CN",
        "attributes": {"tier": "gold", "nickname": "Nana"},
        "consents": {"feedback": {"email": True, "sms": True, "inapp": True}},
    }
    second = {"email": OTHER_EMAIL, "locale": "en", "consents": {"feedback": {"email": True}}}
    assert api.put("/api/v1/customers/c1", json=first).status_code == 200
    assert api.put("/api/v1/customers/c2", json=second).status_code == 200
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body(channels=["email"])).status_code == 201
    events = [
        transfer("e-1", "c1", attributes={"merchant": ATTRIBUTE}),
        transfer("e-2", "c2", attributes={"merchant": OTHER_ATTRIBUTE}),
    ]
    assert api.post("/api/v1/events", json={"events": events}).json()["accepted"] == 2
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()

    messages = {m["To"]: m for m in smtp.wait_for(2)}
    for address, nps in ((EMAIL.lower(), "2"), (OTHER_EMAIL.lower(), "9")):
        path = survey_path(messages[address])
        assert api.post(path, data={"step": "rating", "nps": nps}, follow_redirects=False).status_code == 303
        if address == EMAIL.lower():
            assert api.post(path, data={"step": "details", "csat": "1", "comment": COMMENT}).status_code == 200
    Worker(runtime).run_until_idle()
    case = next(c for c in api.get("/api/v1/cases", params={"customer_id": "c1"}).json()["items"])
    replied = api.post(f"/api/v1/cases/{case['id']}/reply", json={"text": REPLY})
    assert replied.status_code in (200, 201), replied.text
    Worker(runtime).run_until_idle()


def read_zip(body: bytes) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        document = json.loads(archive.read("customer.json"))
        tables = {
            name.removesuffix(".csv"): list(csv.DictReader(io.StringIO(archive.read(name).decode("utf-8-sig"))))
            for name in archive.namelist()
            if name.endswith(".csv")
        }
    return document, tables


def test_an_export_holds_every_kind_of_record_of_the_customer(api: TestClient, loop_ran: None) -> None:
    response = api.get("/api/v1/customers/c1/export")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert "attachment" in response.headers["content-disposition"]
    document, tables = read_zip(response.content)

    assert document["customer_id"] == "c1"
    assert set(document["data"]) == set(tables)
    profile = tables["profile"][0]
    assert profile["customer_id"] == "c1"
    assert "Nana" in profile["attributes"]
    assert {(p["kind"], p["value"]) for p in tables["contact_points"]} == {
        ("email", EMAIL.lower()),
        ("phone", PHONE),
    }
    assert {c["channel"] for c in tables["consents"] if c["purpose"] == "feedback"} == {"email", "sms", "inapp"}
    assert tables["consent_history"], "the ledger of the consents given"
    assert [e["event_id"] for e in tables["events"]] == ["e-1"]
    assert ATTRIBUTE in tables["events"][0]["attributes"]
    assert [f["status"] for f in tables["followups"]] == ["responded"]
    assert any(m["channel"] == "email" and m["subject"] for m in tables["messages"])
    assert COMMENT in tables["responses"][0]["answers"]
    assert tables["responses"][0]["nps"] == "2"
    assert [r["delta"] for r in tables["rewards"]] == ["10"]
    assert tables["reward_balance"][0]["balance"] == "10"
    assert tables["cases"][0]["kind"] == "detractor"
    assert REPLY in tables["cases"][0]["replies_to_you"]
    # The other customer's data is nowhere in it.
    assert OTHER_EMAIL.lower() not in response.content.decode("latin-1").lower()
    assert OTHER_ATTRIBUTE not in json.dumps(document, ensure_ascii=False)


def test_an_export_of_an_unknown_customer_is_404(api: TestClient) -> None:
    response = api.get("/api/v1/customers/nobody/export")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "customer_not_found"


def _totals(runtime: Runtime) -> tuple[Any, ...]:
    with runtime.read_session() as session:
        ledger = session.execute(text("SELECT COUNT(*), SUM(delta) FROM reward_ledger")).one()
        scores = session.execute(text("SELECT COUNT(*), SUM(nps), SUM(csat) FROM responses")).one()
    return tuple(ledger) + tuple(scores)


def raw_bytes(runtime: Runtime) -> bytes:
    """SQLite: the files themselves, after a checkpoint; PostgreSQL: every row."""
    if runtime.engine.dialect.name != "sqlite":
        return every_stored_value(runtime)
    raw = runtime.engine.raw_connection()
    try:
        for schema in ("main", KEY_STORE_SCHEMA):
            busy, _, _ = raw.cursor().execute(f"PRAGMA {schema}.wal_checkpoint(TRUNCATE)").fetchone()
            assert busy == 0
    finally:
        raw.close()
    database = Path(str(runtime.engine.url.database))
    return file_bytes(*sorted(database.parent.iterdir()))


def found(haystack: bytes) -> list[str]:
    return [s for s in secrets() if s.encode() in haystack]


def test_erasure_is_a_request_the_worker_carries_out_and_history_survives_it(
    api: TestClient, runtime: Runtime, loop_ran: None, clock: ManualClock
) -> None:
    metrics_before = api.get("/api/v1/metrics/summary").json()
    totals_before = _totals(runtime)
    assert found(raw_bytes(runtime)), "the search sees the data before the erasure"

    # The request: 202 with its id and due time; asking again returns the same one.
    first = api.post("/api/v1/customers/c1/erasure", json={"reason": REASON})
    assert first.status_code == 202
    accepted = first.json()
    assert set(accepted) == {"request_id", "due_at"}
    again = api.post("/api/v1/customers/c1/erasure")
    assert (again.status_code, again.json()["request_id"]) == (202, accepted["request_id"])

    queue = api.get("/api/v1/privacy/requests", params={"kind": "erasure"}).json()
    assert queue["total"] == 1
    (row,) = queue["items"]
    assert (row["request_id"], row["customer_id"], row["status"], row["overdue"]) == (
        accepted["request_id"],
        "c1",
        "pending",
        False,
    )
    requested = dt.datetime.fromisoformat(row["requested_at"])
    assert dt.datetime.fromisoformat(row["deadline_at"]) - requested == dt.timedelta(days=15)
    assert dt.datetime.fromisoformat(row["due_at"]) == requested  # FOLLOWUP_ERASURE_GRACE is PT0S

    Worker(runtime).run_until_idle()

    done = api.get(f"/api/v1/privacy/requests/{accepted['request_id']}").json()
    assert done["status"] == "done"
    assert done["customer_id"].startswith("erased-")
    assert api.get("/api/v1/customers/c1").status_code == 404
    assert api.get("/api/v1/customers/c2").json()["email"] is not None, "the other customer is untouched"

    # History that counts is unchanged; nothing personal is left, in any table or in the files.
    assert api.get("/api/v1/metrics/summary").json() == metrics_before
    assert _totals(runtime) == totals_before
    assert OTHER_ATTRIBUTE.encode() in every_stored_value(runtime), "the search sees what was not erased"
    assert found(every_stored_value(runtime)) == []
    assert found(raw_bytes(runtime)) == []

    # The export of the erased id is its tombstone alone.
    document, tables = read_zip(api.get("/api/v1/customers/c1/export").content)
    assert document["erased"] is True
    assert "data" not in document
    assert tables == {}

    # A later event for the id makes a new, empty customer.
    assert api.post("/api/v1/events", json={"events": [transfer("e-3", "c1", amount=10)]}).json()["accepted"] == 1
    reborn = api.get("/api/v1/customers/c1").json()
    assert (reborn["email"], reborn["phone"], reborn["attributes"]) == (None, None, {})
    _, tables = read_zip(api.get("/api/v1/customers/c1/export").content)
    assert [e["event_id"] for e in tables["events"]] == ["e-3"]
    assert tables["responses"] == []


def test_a_new_email_is_not_matched_to_the_erased_customer(api: TestClient, runtime: Runtime, loop_ran: None) -> None:
    api.post("/api/v1/customers/c1/erasure")
    Worker(runtime).run_until_idle()
    assert api.put("/api/v1/customers/c9", json={"email": EMAIL}).status_code == 200
    assert api.get("/api/v1/customers/c9").json()["email"] is not None


def test_an_operator_holds_a_request_and_its_deadline_still_counts(
    api: TestClient, runtime: Runtime, loop_ran: None, clock: ManualClock
) -> None:
    request_id = api.post("/api/v1/customers/c1/erasure").json()["request_id"]
    held = api.post(f"/api/v1/privacy/requests/{request_id}/hold", json={"reason": "legal hold: open dispute"})
    assert (held.status_code, held.json()["status"]) == (200, "held")
    Worker(runtime).run_until_idle()
    assert api.get("/api/v1/customers/c1").status_code == 200, "a held request waits"

    clock.advance(dt.timedelta(days=16))
    overdue = api.get("/api/v1/privacy/requests", params={"overdue": "true"}).json()
    assert [(r["request_id"], r["overdue"]) for r in overdue["items"]] == [(request_id, True)]

    assert api.post(f"/api/v1/privacy/requests/{request_id}/release").json()["status"] == "pending"
    Worker(runtime).run_until_idle()
    assert api.get("/api/v1/customers/c1").status_code == 404
    refused = api.post(f"/api/v1/privacy/requests/{request_id}/hold", json={"reason": "too late"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "request_done")


@pytest.mark.parametrize(
    "case",
    [
        ("POST", "/api/v1/customers/nobody/erasure", None, 404, "customer_not_found"),
        ("POST", "/api/v1/customers/c1/erasure", {"reason": "x" * 501}, 422, "invalid_field"),
        ("POST", "/api/v1/customers/c1/erasure", {"why": "x"}, 422, "unknown_field"),
        ("GET", "/api/v1/privacy/requests/pr_0000000000000000", None, 404, "request_not_found"),
        ("GET", "/api/v1/privacy/requests/nonsense", None, 422, "invalid_field"),
        ("POST", "/api/v1/privacy/requests/pr_0000000000000000/hold", {"reason": "x"}, 404, "request_not_found"),
        ("GET", "/api/v1/privacy/requests?status=lost", None, 422, "invalid_field"),
    ],
)
def test_bad_requests_get_a_clear_error(api: TestClient, case: tuple[str, str, Any, int, str]) -> None:
    method, path, body, status, code = case
    assert api.put("/api/v1/customers/c1", json={"locale": "en"}).status_code == 200
    response = api.request(method, path, json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text


def test_a_hold_needs_its_reason(api: TestClient) -> None:
    assert api.put("/api/v1/customers/c1", json={"locale": "en"}).status_code == 200
    request_id = api.post("/api/v1/customers/c1/erasure").json()["request_id"]
    response = api.post(f"/api/v1/privacy/requests/{request_id}/hold")
    assert (response.status_code, response.json()["error"]["code"]) == (422, "reason_required")


def _snapshot(runtime: Runtime) -> dict[str, list[dict[str, Any]]]:
    """The database's tables (never the key store's), as a backup holds them."""
    with runtime.read_session() as session:
        return {
            table.name: [dict(row._mapping) for row in session.execute(table.select())]
            for table in metadata.sorted_tables
            if table.schema != KEY_STORE_SCHEMA
        }


def _restore(runtime: Runtime, backup: dict[str, list[dict[str, Any]]]) -> None:
    with runtime.engine.begin() as conn:
        tables = [t for t in metadata.sorted_tables if t.schema != KEY_STORE_SCHEMA]
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(t.name for t in tables)} CASCADE"))
        else:
            for table in reversed(tables):
                conn.execute(table.delete())
        for table in tables:
            if backup[table.name]:
                conn.execute(table.insert(), backup[table.name])
        if conn.dialect.name == "postgresql":
            for table in tables:
                if "id" in table.c and table.c.id.autoincrement is True:
                    sequence = f"pg_get_serial_sequence('{table.name}', 'id')"
                    conn.execute(text(f"SELECT setval({sequence}, COALESCE(MAX(id), 1)) FROM {table.name}"))  # noqa: S608


def _sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's own online backup: consistent while other connections write, and never opening the
    file outside SQLite (which would drop this process's locks on it)."""
    origin, copy = sqlite3.connect(source), sqlite3.connect(target)
    try:
        origin.backup(copy)
    finally:
        origin.close()
        copy.close()


@pytest.mark.usefixtures("loop_ran")
def test_a_database_restored_from_a_backup_before_the_erasure_forgets_the_customer_again(
    api: TestClient, runtime: Runtime, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    sqlite = runtime.engine.dialect.name == "sqlite"
    database = Path(str(runtime.engine.url.database))
    # The restored installation: on SQLite files of its own (the backup of the database beside a
    # copy of the key store as it is after the erasure), on PostgreSQL the same schemas.
    restored_db = tmp_path / "restored" / "followup.db"
    restored_db.parent.mkdir()
    if sqlite:
        _sqlite_copy(database, restored_db)  # the backup, taken before the erasure
    else:
        backup = _snapshot(runtime)

    api.post("/api/v1/customers/c1/erasure")
    Worker(runtime).run_until_idle()
    assert api.get("/api/v1/customers/c1").status_code == 404

    if sqlite:
        _sqlite_copy(
            Path(key_store_location(settings.database_url)), Path(key_store_location(f"sqlite:///{restored_db}"))
        )
        restored_settings = settings.model_copy(update={"database_url": f"sqlite:///{restored_db}"})
    else:
        _restore(runtime, backup)
        restored_settings = settings
    restored = build_runtime(restored_settings, clock=clock)
    try:
        with restored.read_session() as session:
            name = session.execute(text("SELECT external_id FROM customers WHERE external_id = 'c1'")).scalar()
        assert name == "c1", "the restored database holds the erased customer again"
        with TestClient(create_app(restored), headers=dict(api.headers)) as client:
            # The server, as it starts, erases again whom the key store's tombstones name.
            assert client.get("/api/v1/customers/c1").status_code == 404
            assert client.get("/api/v1/customers/c2").status_code == 200
        assert found(raw_bytes(restored)) == []
        assert OTHER_ATTRIBUTE.encode() in every_stored_value(restored)
    finally:
        restored.close()


# What erasure does to each table that names a customer: the reason each is as it is (ADR 0024).
# A table added later with a `customer_id` fails the test below until it is written down here, and
# its domain's `erasure` module handles it.
ERASURE_OF_TABLE = {
    "customers": "kept as the pseudonym erased-…, identity and attributes cleared",
    "customer_keys": "deleted: the data key, so every sealed value is unreadable",
    "tombstones": "written: the blind index of the erased external id",
    "contact_points": "deleted, blind indexes with them",
    "customer_activity": "kept: aggregate counts under the pseudonym",
    "customer_activity_days": "kept: aggregate counts under the pseudonym",
    "consents": "deleted",
    "consent_ledger": "kept as proof, actors that named the customer cleared",
    "unsubscribe_links": "deleted",
    "events": "kept, attributes cleared",
    "followups": "kept; open ones suppressed",
    "contact_ledger": "kept: the fatigue budget's record, ids and times only",
    "messages": "kept, content and error text cleared; queued ones suppressed",
    "inbound_messages": "kept, text cleared",
    "inbox_items": "deleted",
    "short_links": "deleted",
    "invitations": "kept, expired",
    "responses": "kept: scores for the metrics, texts cleared",
    "interview_bookings": "kept, location cleared",
    "reward_accounts": "kept: balances under the pseudonym",
    "reward_ledger": "kept: append-only, sums unchanged",
    "cases": "kept, re-survey token cleared",
    "call_tasks": "kept; open ones cancelled, agents' notes cleared",
    "privacy_requests": "kept: the record of the request, its reason cleared",
}


def test_every_table_that_names_a_customer_has_its_erasure_written_down() -> None:
    naming = {table.name for table in metadata.sorted_tables if "customer_id" in table.c} | {"customers"}
    assert naming == set(ERASURE_OF_TABLE)
