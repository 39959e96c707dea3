"""The audit log that can't be bent: every line chained to the one before it, `followup audit
verify` walking the chain and naming the first line altered, removed or inserted, appends from many
threads kept in one order, and no note's or resolution's words anywhere in the database's bytes."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from pathlib import Path

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from sqlalchemy import make_url, select, text
from typer.testing import CliRunner

from followup.cases.models import CaseEvent
from followup.cli.main import app as cli_app
from followup.kernel.actors import Actor
from followup.kernel.db import make_engine
from followup.kernel.time import ManualClock
from followup.migrations.runner import upgrade
from followup.privacy import service as privacy
from followup.privacy.chain import line_hash
from followup.privacy.models import AuditEntry
from followup.runtime import Runtime
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey
from tests.conftest import MASTER_KEY, SmtpSink
from tests.helpers import file_bytes
from tests.test_case_work import _detractor_case

NOTE = "Spoke to Wang Fang on 138 0013 8000 about the refund"
ROOT_CAUSE = "merchant Jade Teahouse held the refund"
ACTION = "pushed refund R-88123 by hand"
CLOSING = "closed after the call with Wang Fang"


def verify(runtime: Runtime) -> Result:
    """`followup audit verify` run in-process against the test's database, as an operator runs it."""
    env = {"FOLLOWUP_DATABASE_URL": runtime.settings.database_url, "FOLLOWUP_MASTER_KEY": MASTER_KEY}
    return CliRunner().invoke(cli_app, ["audit", "verify"], env=env)


def lines(runtime: Runtime) -> list[AuditEntry]:
    with runtime.read_session() as session:
        found = list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        session.expunge_all()  # read as they are now, and kept past the read's end
        return found


def append(runtime: Runtime, count: int, *, actor: str = "t") -> None:
    with runtime.session() as session:
        for n in range(count):
            privacy.record_audit(
                session,
                actor=Actor(kind="system", id=actor),
                subject_type="customer",
                subject_id=f"c{n}",
                event="consent.granted",
                now=runtime.clock.now(),
                old={"granted": None},
                new={"granted": True, "名字": "不是个人数据", "n": n},
            )


def raw(runtime: Runtime, sql: str, **params: object) -> None:
    with runtime.engine.begin() as conn:
        conn.execute(text(sql), params)


@pytest.fixture
def world(runtime: Runtime) -> Runtime:
    runtime.settings.fatigue_max_followups = 10
    make_survey(runtime)
    make_strategy(runtime, recontact_days=0, reward={"points": 25})
    return runtime


def test_a_day_of_work_through_the_api_leaves_an_intact_chain_with_who_what_old_and_new(
    world: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock
) -> None:
    # Given a customer who answers NPS 2 (a reward and a detractor case), whose consent then
    # changes, whose case is noted, resolved and closed, and a staff member whose role changes
    case = _detractor_case(world, api, smtp, clock)
    api.put("/api/v1/customers/c1", json={"consents": {"feedback": {"sms": False}}}).raise_for_status()
    url = f"/api/v1/cases/{case['id']}"
    api.post(f"{url}/notes", json={"text": NOTE}).raise_for_status()
    api.post(f"{url}/resolve", json={"code": "refunded", "root_cause": ROOT_CAUSE, "action": ACTION}).raise_for_status()
    api.post(f"{url}/close", json={"resolution": CLOSING}).raise_for_status()
    member = api.post("/api/v1/staff", json={"email": "li@wallet.example", "role": "agent"}).json()
    api.patch(f"/api/v1/staff/{member['id']}", json={"role": "analyst"}).raise_for_status()

    # When the chain is verified
    result = verify(world)

    # Then it is intact, every line in its place, and each change is there with who, old and new
    written = lines(world)
    assert (result.exit_code, result.stdout.strip()) == (
        0,
        f"audit log intact: {len(written)} rows, head {written[-1].hash}",
    )
    assert [line.seq for line in written] == list(range(1, len(written) + 1))
    assert [line.prev_id for line in written[1:]] == [line.id for line in written[:-1]]
    events = {line.event: line for line in written}
    assert {
        "reward.granted",
        "consent.withdrawn",
        "case.opened",
        "case.noted",
        "case.resolved",
        "case.closed",
        "staff.invited",
        "staff.role_changed",
    } <= set(events)
    assert events["consent.withdrawn"].old == {"purpose": "feedback", "channel": "sms", "granted": None}
    assert events["case.closed"].old == {"status": "resolved"}
    assert events["case.closed"].new == {"status": "closed", "resolution": "sealed", "customer_id": "c1"}
    assert events["case.resolved"].new == {"status": "resolved", "code": "refunded", "resolution": "sealed"}
    with world.read_session() as session:
        note_id = session.scalar(select(CaseEvent.id).where(CaseEvent.kind == "note"))
    assert events["case.noted"].new == {"status": "open", "note_id": note_id, "text": "sealed"}
    assert events["staff.role_changed"].new == {"old": "agent", "role": "analyst"}
    assert events["staff.role_changed"].actor.startswith("api_key:")
    # and the staff who may read the case still read the note and the resolution
    timeline = api.get(url).json()["timeline"]
    texts = {event["kind"]: event["text"] for event in timeline}
    assert texts["note"] == NOTE.replace("138 0013 8000", "*******8000"), "the phone number scrubbed"
    assert texts["resolved"] == f"Root cause: {ROOT_CAUSE}\nWhat was done: {ACTION}"
    assert texts["closed"] == CLOSING


def test_no_note_or_resolution_words_are_kept_in_clear_anywhere_in_the_database(
    world: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock
) -> None:
    # Given a case noted, resolved, reopened with a reason, and closed with words of the agent's
    case = _detractor_case(world, api, smtp, clock)
    url = f"/api/v1/cases/{case['id']}"
    api.post(f"{url}/notes", json={"text": NOTE}).raise_for_status()
    api.post(f"{url}/resolve", json={"code": "refunded", "root_cause": ROOT_CAUSE, "action": ACTION}).raise_for_status()
    api.post(f"{url}/reopen", json={"reason": "Wang Fang called back upset"}).raise_for_status()
    api.post(f"{url}/close", json={"resolution": CLOSING}).raise_for_status()

    # When the database's bytes are read
    stored = _database_bytes(world)

    # Then none of those words is in them (they are sealed under the customer's key)
    for words in (NOTE, ROOT_CAUSE, ACTION, CLOSING, "Wang Fang", "Jade Teahouse", "R-88123"):
        assert words.encode() not in stored, words
    assert b"Detractor: NPS 2" in stored  # the reading works: the case's own summary is there
    assert api.get(url).json()["timeline"][-2]["text"] == "Wang Fang called back upset"


def _database_bytes(runtime: Runtime) -> bytes:
    """Everything the database holds, as it holds it: the SQLite file and its write-ahead log, or
    every PostgreSQL table's rows as text."""
    if runtime.engine.dialect.name == "sqlite":
        # The log's pages are copied back into the file first: other engines of the test process
        # may keep connections open, so closing ours does not make SQLite checkpoint.
        raw = runtime.engine.raw_connection()
        try:
            busy, _, _ = raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            raw.close()
        assert busy == 0, "the checkpoint could not finish"
        runtime.engine.dispose()
        path = Path(str(make_url(runtime.settings.database_url).database))
        return file_bytes(path, path.with_name(path.name + "-wal"))
    with runtime.engine.connect() as conn:
        tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")).scalars()
        return "".join(
            conn.execute(text(f"SELECT coalesce(string_agg(t::text, ''), '') FROM \"{name}\" t")).scalar_one()  # noqa: S608 - names from the catalogue
            for name in list(tables)
        ).encode()


def test_a_database_not_upgraded_yet_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    # Given a SQLite database left at 0019, before the chain
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, "0019")
    engine.dispose()
    # When verified, then the operator is told to upgrade, in one line, exit 2
    result = CliRunner().invoke(
        cli_app, ["audit", "verify"], env={"FOLLOWUP_DATABASE_URL": url, "FOLLOWUP_MASTER_KEY": MASTER_KEY}
    )
    assert result.exit_code == 2
    assert " ".join(result.output.split()) == (
        "error: the audit log is not chained yet; run `followup db upgrade` first"
    )


def test_an_empty_log_is_intact(runtime: Runtime) -> None:
    result = verify(runtime)
    assert result.exit_code == 0
    assert result.stdout.startswith("audit log intact: 0 rows, head ")


def test_an_altered_row_is_named(runtime: Runtime) -> None:
    # Given five lines, the third given another `new`
    append(runtime, 5)
    third = lines(runtime)[2]
    raw(runtime, "UPDATE audit_log SET new = :new WHERE id = :id", new='{"granted": false}', id=third.id)
    # When verified, then the third is named as altered
    result = verify(runtime)
    assert (result.exit_code, result.stdout.strip()) == (
        1,
        f"audit log broken at row {third.id}: altered (its fields no longer give its hash)",
    )


def test_an_altered_row_whose_hash_was_computed_again_is_named_through_the_next_row(runtime: Runtime) -> None:
    # Given five lines, the second altered by someone who knows how the hash is taken
    append(runtime, 5)
    second = lines(runtime)[1]
    forged = line_hash(
        seq=second.seq,
        prev_id=second.prev_id,
        at=second.at,
        actor="staff:someone-else",
        subject_type=second.subject_type,
        subject_id=second.subject_id,
        event=second.event,
        old=second.old,
        new=second.new,
        prev_hash=second.prev_hash,
    )
    raw(runtime, "UPDATE audit_log SET actor = 'staff:someone-else', hash = :h WHERE id = :id", h=forged, id=second.id)
    # Then the third line, which holds the second's first hash, gives it away
    result = verify(runtime)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"audit log broken at row {second.id}: altered")


def test_a_row_removed_in_the_middle_is_named(runtime: Runtime) -> None:
    append(runtime, 5)
    written = lines(runtime)
    raw(runtime, "DELETE FROM audit_log WHERE id = :id", id=written[2].id)
    result = verify(runtime)
    assert (result.exit_code, result.stdout.strip()) == (
        1,
        f"audit log broken at row {written[2].id}: removed (row {written[3].id} names it as the row before it)",
    )


def test_the_last_row_removed_is_named_by_the_head(runtime: Runtime) -> None:
    append(runtime, 5)
    last = lines(runtime)[-1]
    raw(runtime, "DELETE FROM audit_log WHERE id = :id", id=last.id)
    result = verify(runtime)
    assert (result.exit_code, result.stdout.strip()) == (
        1,
        f"audit log broken at row {last.id}: removed (the head ends at sequence 5, the rows at 4)",
    )


def test_a_row_inserted_in_the_middle_is_named(runtime: Runtime) -> None:
    # Given five lines, and a forged line put third, with a hash that fits its fields and the rows
    # after it moved one place on
    append(runtime, 5)
    written = lines(runtime)
    before = written[1]
    raw(runtime, "UPDATE audit_log SET seq = -seq WHERE seq > 2")
    raw(runtime, "UPDATE audit_log SET seq = 1 - seq WHERE seq < 0")
    at = runtime.clock.now()
    fields = {
        "seq": 3,
        "prev_id": before.id,
        "at": at,
        "actor": "staff:mallory",
        "subject_type": "customer",
        "subject_id": "c9",
        "event": "reward.granted",
        "old": None,
        "new": {"points": 5000},
        "prev_hash": before.hash,
    }
    raw(
        runtime,
        "INSERT INTO audit_log (at, actor, subject_type, subject_id, event, old, new, seq, prev_id, prev_hash, hash)"
        " VALUES (:at, :actor, :subject_type, :subject_id, :event, NULL, :new, :seq, :prev_id, :prev_hash, :hash)",
        **{**fields, "new": '{"points": 5000}', "hash": line_hash(**fields)},
    )
    forged = next(line for line in lines(runtime) if line.actor == "staff:mallory")
    # When verified, then the forged line is named, found out by the line after it
    result = verify(runtime)
    assert (result.exit_code, result.stdout.strip()) == (
        1,
        f"audit log broken at row {forged.id}: inserted (row {written[2].id} follows the row before it)",
    )


def test_a_row_added_at_the_end_by_hand_is_named(runtime: Runtime) -> None:
    append(runtime, 3)
    raw(
        runtime,
        "INSERT INTO audit_log (at, actor, subject_type, subject_id, event, old, new, seq, prev_hash, hash)"
        " VALUES (:at, 'staff:mallory', 'customer', 'c9', 'reward.granted', NULL, NULL, 4, :zero, :zero)",
        at=runtime.clock.now(),
        zero="0" * 64,
    )
    forged = lines(runtime)[-1]
    result = verify(runtime)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"audit log broken at row {forged.id}: inserted")


def test_appends_from_many_threads_keep_one_chain(runtime: Runtime) -> None:
    # Given eight threads, each appending 25 lines in 5 transactions of 5, all at once
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def work(name: str) -> None:
        try:
            start.wait()
            for _ in range(5):
                append(runtime, 5, actor=name)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(f"t{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    # Then every line is in, in one order with no gap, and the chain verifies
    assert failures == []
    written = lines(runtime)
    assert [line.seq for line in written] == list(range(1, 201))
    assert {line.actor for line in written} == {f"system:t{n}" for n in range(8)}
    result = verify(runtime)
    assert (result.exit_code, result.stdout.split(",")[0]) == (0, "audit log intact: 200 rows")


def test_the_walk_reads_in_pages_across_their_edges(runtime: Runtime) -> None:
    append(runtime, 7)
    with runtime.read_session() as session:
        verdict = privacy.verify_audit_chain(session, page=3)
    assert (verdict.rows, verdict.broken) == (7, None)
    removed = lines(runtime)[3]  # the first line of the second page
    raw(runtime, "DELETE FROM audit_log WHERE id = :id", id=removed.id)
    with runtime.read_session() as session:
        broken = privacy.verify_audit_chain(session, page=3).broken
    assert broken is not None
    assert (broken.row_id, broken.how) == (removed.id, "removed")


def test_a_wiped_head_starts_again_from_the_last_line(runtime: Runtime) -> None:
    append(runtime, 2)
    raw(runtime, "DELETE FROM audit_chain_head")
    append(runtime, 1)
    assert [line.seq for line in lines(runtime)] == [1, 2, 3]
    assert verify(runtime).exit_code == 0


def test_times_hash_the_same_however_the_database_gives_them_back(runtime: Runtime) -> None:
    # A time with microseconds, in another zone: SQLite gives it back naive, PostgreSQL aware
    runtime.clock = ManualClock(dt.datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=8))))
    append(runtime, 2)
    assert lines(runtime)[0].at == dt.datetime(2026, 11, 23, 2, 0, 0, 123456, tzinfo=dt.UTC)
    assert verify(runtime).exit_code == 0


def test_changes_to_personal_data_keys_and_settings_are_audited_without_their_values(
    runtime: Runtime, api: TestClient
) -> None:
    # Given changes to a customer's data, a survey, a webhook and an API key
    make_survey(runtime)
    api.put("/api/v1/customers/c1", json={"email": "li@example.com", "attributes": {"tier": "gold"}}).raise_for_status()
    api.put(
        "/api/v1/customers/c1",
        json={
            "phone": "+8613800138000",
            "email": None,
            "locale": "en",
            "attributes": {"tier": "vip", "city": "Hangzhou"},
        },
    ).raise_for_status()
    api.put("/api/v1/customers/c1/devices/d1", json={"platform": "android", "token": "a" * 64}).raise_for_status()
    api.delete("/api/v1/customers/c1/devices/d1").raise_for_status()
    hook = api.post(
        "/api/v1/webhooks", json={"url": "https://93.184.216.34/in?token=s3cret", "events": ["case.opened"]}
    ).json()
    api.patch(f"/api/v1/webhooks/{hook['id']}", json={"enabled": False}).raise_for_status()
    api.delete(f"/api/v1/webhooks/{hook['id']}").raise_for_status()
    env = {"FOLLOWUP_DATABASE_URL": runtime.settings.database_url, "FOLLOWUP_MASTER_KEY": MASTER_KEY}
    made = CliRunner().invoke(cli_app, ["apikey", "create", "--name", "risk-desk", "--scope", "read"], env=env)
    assert made.exit_code == 0, made.output
    assert CliRunner().invoke(cli_app, ["apikey", "revoke", "risk-desk"], env=env).exit_code == 0

    # Then each is in the chain, with old and new, and no address, token or attribute value
    written = [(line.event, line.old, line.new) for line in lines(runtime)]
    assert written == [
        ("survey.created", None, {"version": 1}),
        ("customer.created", {"email": "absent"}, {"email": "added"}),
        ("customer.contacts_changed", {"email": "present", "phone": "absent"}, {"email": "removed", "phone": "added"}),
        (
            "customer.updated",
            {"attributes.city": "absent", "attributes.tier": "changed", "locale": "zh-CN"},
            {"attributes.city": "changed", "attributes.tier": "changed", "locale": "en"},
        ),
        ("customer.contacts_changed", None, {"device": "set"}),
        ("customer.contacts_changed", None, {"device": "removed"}),
        ("webhook.created", None, _hook(enabled=True)),
        ("webhook.updated", _hook(enabled=True), _hook(enabled=False)),
        ("webhook.deleted", _hook(enabled=False), None),
        ("api_key.created", None, {"prefix": made.stdout.strip()[:10], "scopes": ["read"], "staff": None}),
        ("api_key.revoked", {"active": 1}, {"active": 0}),
    ]
    stored = str(written)
    for value in ("li@example.com", "13800138000", "gold", "Hangzhou", "s3cret", made.stdout.strip()):
        assert value not in stored
    assert verify(runtime).exit_code == 0


def _hook(*, enabled: bool) -> dict[str, object]:

    return {
        "url": "https://93.184.216.34",
        "url_digest": hashlib.sha256(b"https://93.184.216.34/in?token=s3cret").hexdigest()[:16],
        "events": ["case.opened"],
        "enabled": enabled,
        "description": hashlib.sha256(b"").hexdigest()[:16],
    }


def test_reopening_reasons_typed_before_0020_are_sealed_by_db_upgrade(
    world: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock
) -> None:
    # Given a case reopened under the old code: its reason in clear on the timeline
    case = _detractor_case(world, api, smtp, clock)
    with world.session() as session:
        session.add(
            CaseEvent(
                case_id=case["id"], at=clock.now(), actor="staff:1", kind="reopened", detail={"why": "Wang Fang rang"}
            )
        )
    # When `followup db upgrade` runs (twice)
    env = {"FOLLOWUP_DATABASE_URL": world.settings.database_url, "FOLLOWUP_MASTER_KEY": MASTER_KEY}
    first = CliRunner().invoke(cli_app, ["db", "upgrade"], env=env)
    second = CliRunner().invoke(cli_app, ["db", "upgrade"], env=env)
    # Then the reason is sealed once, and staff still read it
    assert "sealed 1 reopening reason typed before 0020" in first.output
    assert "sealed" not in second.output
    timeline = api.get(f"/api/v1/cases/{case['id']}").json()["timeline"]
    assert (timeline[-1]["detail"], timeline[-1]["text"]) == ({"why": "sealed"}, "Wang Fang rang")
    assert b"Wang Fang" not in _database_bytes(world)
