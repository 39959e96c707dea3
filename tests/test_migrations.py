"""Migrations go up and down on the test's database kind, keep the rows they touch, and leave a
schema that matches the models exactly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from followup.kernel.db import KEY_STORE_SCHEMA, key_store_schema, make_engine
from followup.migrations.runner import current, downgrade, upgrade
from followup.models import metadata

NEW_TABLES = {"console_sessions", "sign_in_throttles"}
HEAD = "0024"


def schema_differences(conn: Connection) -> list[Any]:
    """What the migrated schema lacks or has beyond the models: the database's own tables, and the
    key store's under the name the engine gives its schema."""
    keys = key_store_schema(conn)
    main = MetaData()
    store = MetaData()
    for table in metadata.sorted_tables:
        if table.schema == KEY_STORE_SCHEMA:
            table.to_metadata(store, schema=keys)
        else:
            table.to_metadata(main)
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
