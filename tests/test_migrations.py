"""Migrations go up and down on the test's database kind, keep the rows they touch, and leave a
schema that matches the models exactly."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, String, column, inspect, select, table, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from followup.kernel.actors import SYSTEM
from followup.kernel.db import KEY_STORE_SCHEMA, JSONType, UTCDateTime, key_store_schema, make_engine
from followup.migrations.runner import current, downgrade, upgrade
from followup.models import metadata
from followup.privacy import service as privacy
from followup.privacy.models import AuditEntry

NEW_TABLES = {"console_sessions", "sign_in_throttles"}
HEAD = "0024"


def schema_differences(conn: Connection) -> list[Any]:
    """What the migrated schema lacks or has beyond the models: the database's own tables, and the
    key store's under the name the engine gives its schema."""
    keys = key_store_schema(conn)
    main = MetaData()
    store = MetaData()
    for model_table in metadata.sorted_tables:
        if model_table.schema == KEY_STORE_SCHEMA:
            model_table.to_metadata(store, schema=keys)
        else:
            model_table.to_metadata(main)
    found = compare_metadata(MigrationContext.configure(conn), main)
    in_store = MigrationContext.configure(
        conn,
        opts={"include_schemas": True, "include_name": lambda name, kind, _: kind != "schema" or name == keys},
    )
    return found + compare_metadata(in_store, store)


@pytest.fixture
def empty_engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database of its own: a SQLite file, or a fresh PostgreSQL schema."""
    base = os.environ.get("FOLLOWUP_TEST_DATABASE_URL")
    if not base:
        engine = make_engine(f"sqlite:///{tmp_path / 'migrations.db'}")
        yield engine
        engine.dispose()
        return
    schema = f"followup_migration_{os.getpid()}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    engine = make_engine(f"{base}{separator}options=-csearch_path%3D{schema}")
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}_keys" CASCADE'))
    admin.dispose()


def test_0003_upgrades_downgrades_and_upgrades_again_to_the_models_schema(empty_engine: Engine) -> None:
    upgrade(empty_engine, "0003")
    assert current(empty_engine) == "0003"
    assert set(inspect(empty_engine).get_table_names()) >= NEW_TABLES

    downgrade(empty_engine, "0002")
    assert current(empty_engine) == "0002"
    tables = set(inspect(empty_engine).get_table_names())
    assert not NEW_TABLES & tables
    assert {"staff", "api_keys"} <= tables

    upgrade(empty_engine)
    assert current(empty_engine) == HEAD
    with empty_engine.connect() as conn:
        assert schema_differences(conn) == []


_ROWS = [
    "INSERT INTO customers (id, external_id, locale, time_zone, attributes, event_count, created_at, updated_at) "
    "VALUES (1, 'c1', 'en', 'UTC', '{}', 2, :at, :at)",
    "INSERT INTO surveys (id, key, title, current_version, created_at, updated_at) VALUES (1, 's', '{}', 1, :at, :at)",
    "INSERT INTO strategies (id, key, kind, status, survey_id, definition, version, created_at, updated_at) "
    "VALUES (1, 'k', 'event', 'active', 1, '{}', 1, :at, :at)",
    "INSERT INTO events (id, event_id, type, customer_id, occurred_at, received_at, attributes) "
    "VALUES (7, 'e7', 'transfer.succeeded', 1, :at, :at, '{}')",
    "INSERT INTO followups (id, strategy_id, customer_id, event_id, status, plan, planned_at) "
    "VALUES (1, 1, 1, 7, 'planned', '{}', :at), (2, 1, 1, NULL, 'expired', '{}', :at)",
]


def test_0004_gives_every_followup_a_run_key_and_guards_it(empty_engine: Engine) -> None:
    # Given follow-ups written under 0003: one of an event, one whose event was deleted
    upgrade(empty_engine, "0003")
    with empty_engine.begin() as conn:
        for statement in _ROWS:
            conn.execute(text(statement), {"at": "2026-11-01 00:00:00+00:00"})

    # When 0004 runs
    upgrade(empty_engine)

    # Then each has its run key, and no two collide
    with empty_engine.connect() as conn:
        keys = conn.execute(text("SELECT id, run_key FROM followups ORDER BY id")).all()
        assert [tuple(row) for row in keys] == [(1, "event:7"), (2, "followup:2")]
        assert schema_differences(conn) == []
    # And a second follow-up of the same strategy, customer and run is refused by the database
    with pytest.raises(IntegrityError), empty_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO followups (strategy_id, customer_id, event_id, run_key, status, plan, planned_at) "
                "VALUES (1, 1, 7, 'event:7', 'planned', '{}', :at)"
            ),
            {"at": "2026-11-01 00:00:00+00:00"},
        )

    # And it goes down to 0003 and up again with the rows kept
    downgrade(empty_engine, "0003")
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM followups")).scalar_one() == 2


def test_0011_moves_emails_and_phones_into_contact_points_and_back(empty_engine: Engine) -> None:
    # Given customers written under 0010: one with an email and a phone, one with neither
    upgrade(empty_engine, "0010")
    at = {"at": "2026-11-01 00:00:00+00:00"}
    with empty_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO customers (id, external_id, locale, time_zone, attributes, email_sealed, email_index,"
                " phone_sealed, phone_index, event_count, created_at, updated_at) VALUES"
                " (1, 'c-1', 'en', 'UTC', '{}', :email, 'e-index', :phone, 'p-index', 0, :at, :at),"
                " (2, 'c-2', 'en', 'UTC', '{}', NULL, NULL, NULL, NULL, 0, :at, :at)"
            ),
            {**at, "email": b"sealed-email", "phone": b"sealed-phone"},
        )

    # When 0011 runs
    upgrade(empty_engine)

    # Then the sealed bytes and their indexes are contact points, valid, and the reach bits say so
    with empty_engine.connect() as conn:
        points = conn.execute(
            text("SELECT customer_id, kind, label, value_sealed, value_index, status FROM contact_points ORDER BY kind")
        ).all()
        assert [tuple(row) for row in points] == [
            (1, "email", "", b"sealed-email", "e-index", "valid"),
            (1, "phone", "", b"sealed-phone", "p-index", "valid"),
        ]
        reach = conn.execute(text("SELECT id, reach FROM customers ORDER BY id")).all()
        assert [tuple(row) for row in reach] == [(1, 3), (2, 0)]
        assert schema_differences(conn) == []

    # And going down puts them back in the customer's columns
    downgrade(empty_engine, "0010")
    with empty_engine.connect() as conn:
        row = conn.execute(
            text("SELECT email_sealed, email_index, phone_sealed, phone_index FROM customers WHERE id = 1")
        )
        assert tuple(row.one()) == (b"sealed-email", "e-index", b"sealed-phone", "p-index")


def test_0020_chains_the_lines_already_written_and_takes_typed_words_out_of_them(empty_engine: Engine) -> None:
    # Given audit lines written under 0019, one of them a closing with the agent's words in clear

    upgrade(empty_engine, "0019")
    audit = table(
        "audit_log",
        column("at", UTCDateTime()),
        column("actor", String()),
        column("subject_type", String()),
        column("subject_id", String()),
        column("event", String()),
        column("old", JSONType),
        column("new", JSONType),
    )
    at = dt.datetime(2026, 11, 1, 8, 30, 0, 250000, tzinfo=dt.UTC)
    rows = [
        ("consent.granted", None, {"purpose": "feedback", "channel": "email", "granted": True}),
        (
            "case.closed",
            {"status": "resolved"},
            {"status": "closed", "resolution": "refunded Wang Fang", "customer_id": "c1"},
        ),
        ("case.reopened", None, {"status": "reopened", "why": "Wang Fang rang back"}),
        ("reward.granted", {"balance": 0}, {"balance": 10, "points": 10, "reason": "回访"}),
    ]
    with empty_engine.begin() as conn:
        conn.execute(
            audit.insert(),
            [
                {
                    "at": at,
                    "actor": "staff:1",
                    "subject_type": "case",
                    "subject_id": "1",
                    "event": e,
                    "old": o,
                    "new": n,
                }
                for e, o, n in rows
            ],
        )

    # When 0020 runs
    upgrade(empty_engine)

    # Then the lines are chained in id order, verify intact, and hold no typed words
    with Session(empty_engine) as session:
        verdict = privacy.verify_audit_chain(session, page=3)
        assert (verdict.rows, verdict.broken) == (4, None)
        news = [line.new for line in session.scalars(select(AuditEntry).order_by(AuditEntry.seq))]
    assert news[1] == {"status": "closed", "resolution": "sealed", "customer_id": "c1"}
    assert news[2] == {"status": "reopened", "why": "sealed"}
    assert news[3] == {"balance": 10, "points": 10, "reason": "回访"}
    with empty_engine.connect() as conn:
        assert schema_differences(conn) == []

    # And a line written now continues the chain, the trigger moving the head
    with Session(empty_engine) as session:
        privacy.record_audit(session, actor=SYSTEM, subject_type="customer", subject_id="c1", event="x", now=at)
        session.commit()
        verdict = privacy.verify_audit_chain(session)
        assert (verdict.rows, verdict.broken) == (5, None)

    # And it goes down to 0019 and up again
    downgrade(empty_engine, "0019")
    assert "audit_chain_head" not in inspect(empty_engine).get_table_names()
    upgrade(empty_engine)
    with Session(empty_engine) as session:
        assert privacy.verify_audit_chain(session).broken is None


def test_0021_renames_consent_sources_and_keeps_old_rows_without_a_notice_hash(empty_engine: Engine) -> None:
    # Given consent ledger rows written under 0019, one for each source name of the time
    upgrade(empty_engine, "0019")
    old_sources = ["api", "unsubscribe_link", "complaint", "sms", "agent_call"]
    with empty_engine.begin() as conn:
        conn.execute(text(_ROWS[0]), {"at": "2026-11-01 00:00:00+00:00"})
        for source in old_sources:
            conn.execute(
                text(
                    "INSERT INTO consent_ledger (customer_id, purpose, channel, granted, source, notice_version,"
                    " actor, recorded_at) VALUES (1, 'feedback', 'email', FALSE, :source, '2026-11-01', 'x', :at)"
                ),
                {"source": source, "at": "2026-11-01 00:00:00+00:00"},
            )

    # When 0021 runs
    upgrade(empty_engine)

    # Then each source has the name the API documents, and no row claims a hash it never had
    with empty_engine.connect() as conn:
        rows = conn.execute(text("SELECT source, notice_hash FROM consent_ledger ORDER BY id")).all()
        assert [tuple(row) for row in rows] == [
            ("api", None),
            ("unsubscribe", None),
            ("unsubscribe", None),
            ("sms_keyword", None),
            ("agent_call", None),
        ]
        assert schema_differences(conn) == []

    # And going down gives the old names back (a complaint is an unsubscribe link's row from then on)
    downgrade(empty_engine, "0019")
    with empty_engine.connect() as conn:
        sources = conn.execute(text("SELECT source FROM consent_ledger ORDER BY id")).scalars().all()
        assert sources == ["api", "unsubscribe_link", "unsubscribe_link", "sms", "agent_call"]
    assert "privacy_notices" not in inspect(empty_engine).get_table_names()
