"""The runtime: built once per process from settings, handed to the app, the worker and the CLI."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

# Every table, so that relationships and foreign keys across domains resolve in any process: a
# worker alone imports no strategies code, yet `followups.strategy_id` points at `strategies`.
import followup.models  # noqa: F401
from followup.channels import capabilities
from followup.channels.base import Channel, ChannelContext
from followup.channels.registry import default_channels
from followup.config import Settings
from followup.customers.keys import open_keyring
from followup.kernel.crypto import (
    EnvKeyProvider,
    KeyProvider,
    LocalKeyProvider,
    MasterKeyProvider,
    generate_master_key_text,
    parse_master_key,
    parse_versioned_keys,
)
from followup.kernel.db import READ_ONLY, make_engine
from followup.kernel.errors import ConfigurationError
from followup.kernel.logging import get_logger
from followup.kernel.time import Clock, SystemClock

log = get_logger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    clock: Clock
    keys: KeyProvider
    channels: Mapping[str, Channel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._writer = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._reader = sessionmaker(bind=self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)

    def new_session(self, *, read_only: bool = False) -> Session:
        """A session not yet connected: nothing runs until its first statement. The caller ends it
        (`session` and `read_session` below do, and so do the HTTP dependencies)."""
        return self._reader() if read_only else self._writer()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A writing unit of work: commits when the block ends cleanly, rolls back otherwise."""
        with self._writer() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        with self._reader() as session:
            try:
                yield session
            finally:
                session.rollback()

    def close(self) -> None:
        for channel in self.channels.values():  # providers' HTTP clients, SMTP connections
            close = getattr(channel, "close", None)
            if callable(close):
                close()
        self.engine.dispose()


def sqlite_path(database_url: str) -> Path | None:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def load_key_provider(settings: Settings, environ: Mapping[str, str] = os.environ) -> MasterKeyProvider:
    """The master keys, by version (ADR 0025).

    FOLLOWUP_KEY_PROVIDER=env: FOLLOWUP_MASTER_KEY_V1, _V2, … from the environment. Otherwise the
    local provider: FOLLOWUP_MASTER_KEYS (`2:KEY,1:KEY`, the current first) and FOLLOWUP_MASTER_KEY
    (version 1); with neither, on SQLite, the key file beside the database (`VERSION:KEY` lines, the
    current first; a bare key is version 1), created with one key when missing.
    """
    if settings.key_provider == "env":
        if settings.master_key is not None or settings.master_keys is not None:
            raise ConfigurationError(
                "FOLLOWUP_KEY_PROVIDER=env reads FOLLOWUP_MASTER_KEY_V1, _V2, …; unset FOLLOWUP_MASTER_KEY and "
                "FOLLOWUP_MASTER_KEYS so that one place holds the keys"
            )
        return EnvKeyProvider(environ)
    if settings.master_keys is not None:
        return _versioned_settings_keys(settings)
    if settings.master_key is not None:
        return LocalKeyProvider.single(parse_master_key(settings.master_key.get_secret_value()))
    path = sqlite_path(settings.database_url)
    if path is None:
        raise ConfigurationError(
            "FOLLOWUP_MASTER_KEY is required when the database is not a SQLite file; generate one with "
            "`followup keys generate` and keep it in your secret store"
        )
    key_file = path.with_name(path.name + ".key")
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(generate_master_key_text() + "\n")
        log.warning(
            "master_key_file_created",
            path=str(key_file),
            advice="set FOLLOWUP_MASTER_KEY from a secret store for production; "
            "losing this file makes all personal data unreadable",
        )
    origin = f"the key file {key_file}"
    lines = [line for line in key_file.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    keys, current = parse_versioned_keys(lines, setting=origin)
    return LocalKeyProvider(keys, current, origin=origin)


def _versioned_settings_keys(settings: Settings) -> LocalKeyProvider:
    assert settings.master_keys is not None  # noqa: S101 - the caller checked
    keys, current = parse_versioned_keys(
        settings.master_keys.get_secret_value().split(","), setting="FOLLOWUP_MASTER_KEYS"
    )
    sources = dict.fromkeys(keys, "FOLLOWUP_MASTER_KEYS")
    if settings.master_key is not None:
        # The key an installation began with may stay where it was set, as version 1.
        first = parse_master_key(settings.master_key.get_secret_value())
        if keys.setdefault(1, first) != first:
            raise ConfigurationError(
                "FOLLOWUP_MASTER_KEY and version 1 of FOLLOWUP_MASTER_KEYS are different keys; keep one of them"
            )
        sources.setdefault(1, "FOLLOWUP_MASTER_KEY")
    return LocalKeyProvider(keys, current, origin="FOLLOWUP_MASTER_KEYS", sources=sources)


def open_keys(engine: Engine, provider: MasterKeyProvider, *, now: dt.datetime) -> KeyProvider:
    """The keyring, checked against the key store before the process does any work (ADR 0025)."""
    with Session(engine) as session:
        keys = open_keyring(session, provider, now=now)
        session.commit()
    return keys


def build_runtime(
    settings: Settings, *, clock: Clock | None = None, channels: Mapping[str, Channel] | None = None
) -> Runtime:
    path = sqlite_path(settings.database_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    provider = load_key_provider(settings)
    clock = clock or SystemClock()
    engine = make_engine(settings.database_url, key_store=settings.key_store)
    try:
        keys = open_keys(engine, provider, now=clock.now())
    except BaseException:
        engine.dispose()
        raise
    runtime = Runtime(settings=settings, engine=engine, clock=clock, keys=keys)
    if channels is None:
        context = ChannelContext(settings=settings, clock=runtime.clock, keys=runtime.keys, session=runtime.session)
        channels = default_channels(context)
    for name, channel in channels.items():  # what the policy and dispatch read by a channel's name
        capabilities.install(name, channel.capabilities)
    runtime.channels = channels
    return runtime
