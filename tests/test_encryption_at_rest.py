"""Encrypted at rest: the raw database bytes contain no customer email, phone or comment.

The whole loop runs first — contacts set through the API, an email sent and answered with a
free-text comment, an in-app message delivered — so every table that could hold personal data
has had its chance to. Then the bytes on disk (SQLite: the database file and its WAL) or every
row as PostgreSQL renders it are searched. A canary stored in clear on purpose must be found,
so the search is known to see the data it claims to see.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from followup.kernel.db import KEY_STORE_SCHEMA, key_store_schema
from followup.kernel.time import ManualClock
from followup.models import metadata
from followup.runtime import Runtime
from followup.worker import Worker
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.conftest import SmtpSink
from tests.helpers import every_stored_value, file_bytes, survey_path

EMAIL_1 = "Zhao.Lei.7731@Example-Wallet.test"
PHONE_1 = "+8613912345678"
EMAIL_2 = "Wang.Fang.5520@Example-Wallet.test"
PHONE_2 = "+8615800112233"
COMMENT_ZH = "转账以后我的账户被盗刷了"
COMMENT_EN = "someone made an unauthorized transfer at Lakeside Mall"
COMMENT = f"{COMMENT_ZH}。{COMMENT_EN}"
# Stored in clear on purpose (event attributes are not personal data here): the search must find it.
CANARY = "canary-merchant-Qx7Lw"


def secrets_in_every_form() -> dict[str, bytes]:
    """Each secret the way it could land on disk: as given, case-folded, national, JSON-escaped."""
    forms: dict[str, str] = {}
    for email in (EMAIL_1, EMAIL_2):
        forms.update({email: email, email.lower(): email.lower(), email.upper(): email.upper()})
        local = email.split("@")[0]
        forms[local.lower()] = local.lower()
    for phone in (PHONE_1, PHONE_2):
        national = phone.removeprefix("+86")
        spaced = f"{national[:3]} {national[3:7]} {national[7:]}"
        dashed = spaced.replace(" ", "-")
        forms.update({phone: phone, national: national, spaced: spaced, dashed: dashed})
    forms.update({COMMENT: COMMENT, COMMENT_ZH: COMMENT_ZH, COMMENT_EN: COMMENT_EN})
    forms[json.dumps(COMMENT_ZH)[1:-1]] = json.dumps(COMMENT_ZH)[1:-1]  # \u8f6c\u8d26… as ASCII JSON holds it
    return {name: value.encode() for name, value in forms.items()}


def find_secrets(haystack: bytes) -> list[str]:
    found = [name for name, needle in secrets_in_every_form().items() if needle in haystack]
    # PostgreSQL renders bytea as hex: plaintext sealed in a bytea column would show up that way.
    lowered = haystack.lower()
    found += [f"{name} (hex)" for name, needle in secrets_in_every_form().items() if needle.hex().encode() in lowered]
    return found


@pytest.fixture
def loop_ran(api: TestClient, runtime: Runtime, smtp: SmtpSink, clock: ManualClock) -> None:
    """Two customers with contacts; one answers an email with a comment, one gets an inbox item."""
    first = {
        "email": EMAIL_1,
        "phone": PHONE_1,
        "locale": "zh-CN",
        "time_zone": "Asia/Shanghai",
        "attributes": {"tier": "gold"},
        "consents": {"feedback": {"email": True, "sms": False, "inapp": True}},
    }
    second = {**first, "email": EMAIL_2, "phone": PHONE_2, "locale": "en", "consents": {"feedback": {"inapp": True}}}
    assert api.put("/api/v1/customers/c1", json=first).status_code == 200
    assert api.put("/api/v1/customers/c2", json=second).status_code == 200
    assert api.post("/api/v1/surveys", json=survey_body()).status_code == 201
    assert api.post("/api/v1/strategies", json=strategy_body()).status_code == 201
    events = [transfer(f"e-{c}", c, attributes={"merchant": CANARY}) for c in ("c1", "c2")]
    assert api.post("/api/v1/events", json={"events": events}).json()["accepted"] == 2
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()

    messages = smtp.wait_for(1)
    assert [m["To"] for m in messages] == [EMAIL_1.lower()], "the address is opened only to send"
    path = survey_path(messages[0])
    assert api.post(path, data={"step": "rating", "nps": "2"}, follow_redirects=False).status_code == 303
    assert api.post(path, data={"step": "details", "csat": "1", "comment": COMMENT}).status_code == 200


def test_the_api_still_shows_contacts_masked_and_the_comment_in_clear(api: TestClient, loop_ran: None) -> None:
    first = api.get("/api/v1/customers/c1").json()
    second = api.get("/api/v1/customers/c2").json()
    assert (first["email"], first["phone"]) == ("z***@example-wallet.test", "139****5678")
    assert (second["email"], second["phone"]) == ("w***@example-wallet.test", "158****2233")

    responses = api.get("/api/v1/responses").json()["items"]
    assert [r["answers"] for r in responses] == [{"nps": 2, "csat": 1, "comment": COMMENT}]

    inbox = api.get("/api/v1/customers/c2/inbox").json()
    assert len(inbox) == 1
    assert "/s/" in inbox[0]["link"]
    cases = api.get("/api/v1/cases").json()["items"]
    assert sorted(case["kind"] for case in cases) == ["detractor", "security"]
    assert not any(COMMENT_ZH in case["summary"] or COMMENT_EN in case["summary"] for case in cases)


def test_no_table_holds_a_contact_or_the_comment_in_clear(runtime: Runtime, loop_ran: None) -> None:
    dump = every_stored_value(runtime)

    assert CANARY.encode() in dump
    assert find_secrets(dump) == []


def test_the_raw_database_bytes_hold_no_contact_or_comment(runtime: Runtime, loop_ran: None) -> None:
    if runtime.engine.dialect.name == "sqlite":
        raw = runtime.engine.raw_connection()
        try:
            busy, _, _ = raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            raw.close()
        assert busy == 0, "the checkpoint could not finish"
        database = Path(str(runtime.engine.url.database))
        wal = database.with_name(database.name + "-wal")
        on_disk = file_bytes(database, wal)
    else:
        # Every column of every table as PostgreSQL itself renders it (bytea as \x… hex).
        rendered = []
        keys = key_store_schema(runtime.engine)
        with runtime.read_session() as session:
            for table in metadata.sorted_tables:
                name = f"{keys}.{table.name}" if table.schema == KEY_STORE_SCHEMA else table.name
                query = text(f"SELECT row_to_json(t)::text FROM {name} t")  # noqa: S608 - our own table names
                rendered += list(session.execute(query).scalars())
        on_disk = "\n".join(rendered).encode()

    assert CANARY.encode() in on_disk, "the search does not see the data"
    assert find_secrets(on_disk) == []
