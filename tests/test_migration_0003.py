"""Migration 0003 (console sessions, sign-in throttles) goes up and down on the test's database
kind, and leaves a schema that matches the models exactly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from followup.kernel.db import make_engine
from followup.migrations.runner import alembic_config, current, upgrade
from followup.models import metadata

NEW_TABLES = {"console_sessions", "sign_in_throttles"}


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
    admin.dispose()


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_0003_upgrades_downgrades_and_upgrades_again_to_the_models_schema(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    assert current(empty_engine) == "0003"
    assert set(inspect(empty_engine).get_table_names()) >= NEW_TABLES
    with empty_engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []

    downgrade(empty_engine, "0002")
    assert current(empty_engine) == "0002"
    tables = set(inspect(empty_engine).get_table_names())
    assert not NEW_TABLES & tables
    assert {"staff", "api_keys"} <= tables

    upgrade(empty_engine)
    assert current(empty_engine) == "0003"
    with empty_engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
