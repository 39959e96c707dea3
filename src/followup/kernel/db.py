"""Engine, sessions and the column types every domain shares.

Nothing here connects at import time: `make_engine` is called once by the runtime.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, event
from sqlalchemy.engine import URL, Connection, Engine, create_engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import JSON, TypeDecorator

from followup.kernel.errors import ConfigurationError

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only gives AUTOINCREMENT-like rowid behaviour to INTEGER PRIMARY KEY; PostgreSQL gets bigint.
BigId = BigInteger().with_variant(Integer(), "sqlite")

READ_ONLY = "followup_read_only"

# The key store: customers' wrapped data keys and the erasure tombstones, kept apart from the rest
# of the data so that a backup of the database never holds them (ADR 0024). Tables in it name this
# schema; on SQLite it is a second file attached under this name to every connection, on PostgreSQL
# the schema the engine translates it to.
KEY_STORE_SCHEMA = "followup_keys"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that is always timezone-aware UTC on the way in and out.

    SQLite has no time zone type, so values are stored as naive UTC there; refusing naive input
    keeps a local time from ever being mistaken for UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


JSONType = JSON().with_variant(JSON(none_as_null=True), "postgresql")


def key_store_location(url: str, configured: str | None = None) -> str:
    """Where the key store lives for a database: a file path on SQLite, a schema on PostgreSQL.

    By default it sits beside the database: `followup.db` keeps its keys in `followup.keys.db`, and
    a PostgreSQL schema `wallet` (the first of the URL's search_path) in `wallet_keys`, else in
    `followup_keys`. An explicit value (FOLLOWUP_KEY_STORE) wins.
    """
    if configured:
        return configured
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:":
            return ":memory:"
        stem = database[: -len(".db")] if database.endswith(".db") else database
        return stem + ".keys.db"
    options = str(parsed.query.get("options", ""))
    match = re.search(r"search_path(?:=|%3D)([A-Za-z_][A-Za-z0-9_]*)", options)
    return f"{match.group(1)}_keys" if match else KEY_STORE_SCHEMA


_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10, key_store: str | None = None) -> Engine:
    """Build the process's engine with the pragmas and transaction mode each backend needs, and the
    key store reachable under the schema name `followup_keys`.

    Statement parameters are hidden from exception messages: they hold sealed personal data,
    blind indexes and token hashes, and an error's message ends up in logs.
    """
    location = key_store_location(url, key_store)
    if url.startswith("sqlite"):
        writer = _writer_connection_class()
        engine = create_engine(
            url,
            echo=echo,
            hide_parameters=True,
            connect_args={"check_same_thread": False, "timeout": WRITE_WAIT_SECONDS, "factory": writer},
        )
        _configure_sqlite(engine, writer, key_store=location)
        return engine
    if not _SCHEMA_NAME.fullmatch(location):
        raise ConfigurationError("FOLLOWUP_KEY_STORE must name a PostgreSQL schema: letters, digits and _")
    return create_engine(
        url,
        echo=echo,
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        execution_options={"schema_translate_map": {KEY_STORE_SCHEMA: location}},
    )


def key_store_schema(engine: Engine | Connection) -> str:
    """The schema the key store's tables live in, as the database names it."""
    translate = engine.get_execution_options().get("schema_translate_map") or {}
    return str(translate.get(KEY_STORE_SCHEMA, KEY_STORE_SCHEMA))


WRITE_WAIT_SECONDS = 30


class _WriterConnection(sqlite3.Connection):
    """A SQLite connection that hands the process's writer turn back when its transaction ends.

    SQLite lets one transaction write at a time. A writer that finds the database locked sleeps in
    steps that grow to 100 ms before it looks again, so under a few concurrent writers most of the
    time goes to sleeping and the slowest answers wait near a second. Writers of one process
    therefore queue on a lock of their own, taken just before BEGIN IMMEDIATE and given back right
    after COMMIT or ROLLBACK, and the next one starts the moment the last one ends. Other processes
    (the worker beside the server) still meet at SQLite's own lock.
    """

    turn: threading.Lock  # set on the class made for each engine

    holds_turn = False

    def take_turn(self) -> None:
        if not self.turn.acquire(timeout=WRITE_WAIT_SECONDS):
            raise sqlite3.OperationalError("database is locked")
        self.holds_turn = True

    def give_turn(self) -> None:
        if self.holds_turn:
            self.holds_turn = False
            self.turn.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.give_turn()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.give_turn()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.give_turn()


def _writer_connection_class() -> type[_WriterConnection]:
    """A connection class with a writer lock of its own: one per engine, shared by its connections."""
    return type("WriterConnection", (_WriterConnection,), {"turn": threading.Lock()})


def _configure_sqlite(engine: Engine, writer: type[_WriterConnection], *, key_store: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Take transaction control away from the sqlite3 module so that BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"ATTACH DATABASE ? AS {KEY_STORE_SCHEMA}", (key_store,))
        cursor.execute(f"PRAGMA {KEY_STORE_SCHEMA}.journal_mode=WAL")
        cursor.execute(f"PRAGMA {KEY_STORE_SCHEMA}.synchronous=NORMAL")
        # Deleted and overwritten content is zeroed on its page, not left in free space: an erased
        # customer's rows must not stay readable in the file (ADR 0024).
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute(f"PRAGMA {KEY_STORE_SCHEMA}.secure_delete=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # 32 MiB of page cache per connection instead of 2 MiB: index pages of a table with millions
        # of events stay in memory between batches (pages are taken as needed, not up front).
        cursor.execute("PRAGMA cache_size=-32768")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that reads and then writes
        # fails with SQLITE_BUSY instead of waiting when another writer committed in between.
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
            return
        dbapi_connection = conn.connection.dbapi_connection
        if not isinstance(dbapi_connection, writer):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        dbapi_connection.take_turn()
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            dbapi_connection.give_turn()
            raise


def is_sqlite(engine_or_conn: Engine | Connection) -> bool:
    return engine_or_conn.dialect.name == "sqlite"


def insert_ignoring_conflicts(session_bind_dialect: str, table: Any, *, index_elements: list[str]) -> Any:
    """An INSERT that skips rows whose unique key already exists (ON CONFLICT DO NOTHING)."""
    if session_bind_dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert  # noqa: PLC0415

        return pg_insert(table).on_conflict_do_nothing(index_elements=index_elements)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert  # noqa: PLC0415

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=index_elements)


def chunked(items: list[Any], size: int = 900) -> list[list[Any]]:
    """SQLite caps bound parameters per statement; IN lists are sent in chunks below that cap."""
    return [items[start : start + size] for start in range(0, len(items), size)]


_JSON_TEXT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # built once


class BulkStatements:
    """Driver-level statements for the event stream's hot path.

    SQLAlchemy Core binds each row through its type processors, which costs more than SQLite
    spends storing the row. Here the caller hands over plain values already in the database's
    shape (`db_time`, `db_json`) and the statement goes straight to the driver. Placeholders are
    written as `?`; on PostgreSQL they become the driver's `%s`. Only the hot path uses this; every
    other path keeps SQLAlchemy Core and the ORM.
    """

    # Bound values per SQLite statement; SQLite allows 32,766.
    MAX_PARAMS = 30_000

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.postgres = connection.dialect.name == "postgresql"
        self._times: dict[dt.datetime, str] = {}  # one batch repeats its times (now, a due time)

    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.postgres else text

    def db_time(self, value: dt.datetime) -> Any:
        """A UTC time as UTCDateTime stores it: aware on PostgreSQL, naive ISO text on SQLite."""
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        if self.postgres:
            return value
        stored = self._times.get(value)
        if stored is None:
            utc = value.astimezone(dt.UTC) if value.utcoffset() else value
            stored = self._times[value] = utc.isoformat(" ", "microseconds")[:26]
        return stored

    def json_slot(self) -> str:
        """The placeholder of a JSON column given as text."""
        return "CAST(? AS JSON)" if self.postgres else "?"

    @staticmethod
    def db_json(value: Any) -> str | None:
        """A JSON column's value as text, for a `json_slot` placeholder."""
        return None if value is None else _JSON_TEXT(value)

    @staticmethod
    def from_json(value: Any) -> Any:
        """A JSON column read at the driver: text on SQLite, already decoded on PostgreSQL."""
        return json.loads(value) if isinstance(value, str | bytes) else value

    def run(self, text: str, params: Sequence[Any]) -> Any:
        """One statement with one row of parameters; the driver's result (rows, rowcount)."""
        return self.connection.exec_driver_sql(self.sql(text), tuple(params))

    def fetch(self, text: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.connection.exec_driver_sql(self.sql(text), tuple(params))]

    def first(self, text: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        """One row read on the driver's own cursor, past SQLAlchemy's result set-up, which costs
        more than SQLite's read of a one-row table. The connection's transaction must have begun
        (any statement before it, or `Session.connection()`, begins it)."""
        cursor: Any = self.connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self.sql(text), tuple(params))
            row = cursor.fetchone()
        finally:
            cursor.close()
        return None if row is None else tuple(row)

    def fetch_in(self, text: str, values: Sequence[Any], *, chunk: int = 900) -> list[tuple[Any, ...]]:
        """Run `text`, whose one `IN ({})` takes the values, in chunks under the parameter cap."""
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(values), chunk):
            part = values[start : start + chunk]
            rows.extend(self.fetch(text.format(", ".join("?" * len(part))), part))
        return rows

    def run_many(self, text: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """One statement, many parameter rows (the driver's executemany)."""
        if rows:
            self.connection.exec_driver_sql(self.sql(text), list(rows))

    def insert_values(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
        *,
        slots: Sequence[str] | None = None,
        on_conflict: str = "",
        returning: str = "",
    ) -> list[tuple[Any, ...]]:
        """Insert many rows: on SQLite as INSERT … VALUES (…), (…), … in as few statements as the
        parameter cap allows; on PostgreSQL as one pipelined executemany, which psycopg sends without
        waiting for each row's answer (2.2 to 2.5 times the rate of VALUES lists, measured).

        `slots` gives each column's placeholder (default `?`); `on_conflict` is e.g.
        "(event_id) DO NOTHING"; with `returning` the inserted rows' values come back.
        """
        if not rows:
            return []
        group = "(" + ", ".join(slots or ["?"] * len(columns)) + ")"
        # Table, columns and clauses are the repositories' constants; values only ever go as parameters.
        head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "  # noqa: S608
        tail = (f" ON CONFLICT {on_conflict}" if on_conflict else "") + (f" RETURNING {returning}" if returning else "")
        if self.postgres:
            return self._pipelined(head + group + tail, rows, returning=bool(returning))
        per_statement = max(1, self.MAX_PARAMS // len(columns))
        out: list[tuple[Any, ...]] = []
        for start in range(0, len(rows), per_statement):
            part = rows[start : start + per_statement]
            result = self.connection.exec_driver_sql(
                head + ", ".join([group] * len(part)) + tail, tuple(value for row in part for value in row)
            )
            if returning:
                out.extend(tuple(row) for row in result)
        return out

    def copy_rows(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        """Load many rows into a table with nothing to return or to skip: PostgreSQL's COPY (about
        an order of magnitude above a pipelined INSERT for a temporary table of 50,000 rows);
        on SQLite the same as `insert_values`."""
        if not self.postgres:
            self.insert_values(table, columns, rows)
            return
        driver: Any = self.connection.connection.driver_connection  # psycopg's own connection
        with driver.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _pipelined(self, text: str, rows: Sequence[tuple[Any, ...]], *, returning: bool) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        driver: Any = self.connection.connection.driver_connection  # psycopg's own connection
        with driver.cursor() as cursor:
            cursor.executemany(self.sql(text), rows, returning=returning)
            while returning:
                out.extend(tuple(row) for row in cursor.fetchall())
                if not cursor.nextset():
                    break
        return out


# ── telling an operator what is wrong with FOLLOWUP_DATABASE_URL ─────────────────────────────────
# A start-up failure is printed as one sentence naming the setting to fix, never the URL itself:
# the URL may carry a password.

_URL_FORMS = "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:5432/DB"
_SUPPORTED_DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg"}


def check_database_url(url: str) -> None:
    """Refuse a URL this build cannot open (unparseable, another database, another driver)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(f"FOLLOWUP_DATABASE_URL is not a database URL; write it as {_URL_FORMS}") from exc
    backend = parsed.get_backend_name()
    if backend not in _SUPPORTED_DRIVERS:
        raise ConfigurationError(
            f"FOLLOWUP_DATABASE_URL names a {backend} database, which followup does not support; use {_URL_FORMS}"
        )
    # Only a supported backend's dialect is loaded to learn its default driver.
    driver = parsed.get_driver_name()
    if driver != _SUPPORTED_DRIVERS[backend]:
        scheme = f"{backend}+{_SUPPORTED_DRIVERS[backend]}://" if backend == "postgresql" else "sqlite:///"
        raise ConfigurationError(
            f"FOLLOWUP_DATABASE_URL asks for the {driver} driver, which followup does not ship; "
            f"start the URL with {scheme}"
        )


def describe_database(url: str) -> str:
    """What a start-up line may say about the database: its kind and where it is, no user or password."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite {parsed.database or ':memory:'}"
    return f"{parsed.get_backend_name()} {_server(parsed)}/{parsed.database or ''}"


def explain_connection_failure(url: str, exc: BaseException) -> str:
    """One sentence for a database that cannot be opened: what went wrong and which setting to fix.

    The driver's own message is matched for the common causes (it has no codes before a session
    exists); anything else is quoted in one line, with the URL's password blanked out.
    """
    parsed = make_url(url)
    detail = str(getattr(exc, "orig", None) or exc)
    if parsed.password:
        detail = detail.replace(str(parsed.password), "***")
    lowered = detail.lower()
    if parsed.get_backend_name() == "sqlite":
        advice = "point FOLLOWUP_DATABASE_URL at a file in a directory this user can create and write"
        if isinstance(exc, OSError) and exc.filename:
            # Creating the database's directory or its key file failed.
            return f"cannot create {exc.filename} for the SQLite database ({exc.strerror}); {advice}"
        return f"cannot open the SQLite database {parsed.database or ':memory:'} ({_first_line(detail)}); {advice}"
    server = _server(parsed)
    database = parsed.database or ""
    if "failed to resolve host" in lowered or "could not translate host name" in lowered:
        return f"cannot find the database host {parsed.host}; check the host in FOLLOWUP_DATABASE_URL"
    if "connection refused" in lowered:
        return (
            f"cannot connect to PostgreSQL at {server} (connection refused); check the host and port in "
            "FOLLOWUP_DATABASE_URL and that the server is running"
        )
    if "timeout" in lowered or "timed out" in lowered:
        return (
            f"cannot connect to PostgreSQL at {server} (timed out); check the host and port in "
            "FOLLOWUP_DATABASE_URL and that no firewall is in the way"
        )
    if f'database "{database}" does not exist' in detail:
        return (
            f'PostgreSQL at {server} has no database "{database}"; create it, or fix the database name in '
            "FOLLOWUP_DATABASE_URL"
        )
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return (
            f'PostgreSQL at {server} refused the password of user "{parsed.username}"; check the user and '
            "password in FOLLOWUP_DATABASE_URL"
        )
    if "role" in lowered and "does not exist" in lowered:
        return f'PostgreSQL at {server} has no user "{parsed.username}"; check the user in FOLLOWUP_DATABASE_URL'
    if "pg_hba.conf" in lowered:
        return (
            f'PostgreSQL at {server} does not let this host sign in as "{parsed.username}" (pg_hba.conf); '
            "check FOLLOWUP_DATABASE_URL or the server's access rules"
        )
    return f"cannot use the database at {server}/{database} ({_first_line(detail)}); check FOLLOWUP_DATABASE_URL"


def _server(parsed: URL) -> str:
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


def _first_line(text: str) -> str:
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("(Background on this error"):
            return line.removeprefix("connection failed: ").removesuffix(".")
    return "no detail given"
