"""What every `followup` command shares: one-line failures, the settings, and a runtime opened
(and its database checked) before any work starts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import DBAPIError, OperationalError

from followup.config import Settings
from followup.kernel.db import check_database_url, explain_connection_failure
from followup.kernel.errors import FollowupError
from followup.kernel.logging import configure_logging
from followup.runtime import Runtime, build_runtime

err = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    # One line whatever the terminal's width (scripts grep it), and the message taken literally:
    # a driver's "[Errno 2]" is text, not markup.
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise fail(f"setting {setting_path(first['loc'])}: {first['msg']}") from exc


_PROVIDER_KINDS = frozenset({"generic", "twilio", "aliyun"})


def setting_path(loc: tuple[int | str, ...]) -> str:
    """Where in the settings a problem is, as the operator wrote it: FOLLOWUP_SMS_PROVIDERS[1].token
    (the kind pydantic adds to the path of a provider's field is left out). Never the value."""
    head, *rest = loc
    path = f"FOLLOWUP_{str(head).upper()}"
    for part in rest:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in _PROVIDER_KINDS:
            path += f".{part}"
    return path


@contextmanager
def cli_runtime() -> Iterator[Runtime]:
    settings = load_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    runtime = open_runtime(settings)
    try:
        yield runtime
    except FollowupError as exc:
        raise fail(exc.message) from exc
    except OperationalError as exc:
        # The database went away in the middle of the command.
        raise fail(explain_connection_failure(settings.database_url, exc)) from exc
    finally:
        runtime.close()


def open_runtime(settings: Settings) -> Runtime:
    """Build the runtime and open one connection to the database before any work starts.

    A database that cannot be used (a server that does not answer, a wrong name or password, a
    driver this build lacks, a SQLite directory that cannot be created) stops the command with one
    line naming FOLLOWUP_DATABASE_URL, instead of a driver's traceback halfway through the work; so
    does a master key that does not open the key store's data keys, naming the key's setting.
    """
    try:
        check_database_url(settings.database_url)
        # Building opens the database to check the master keys against the key store (ADR 0025).
        runtime = build_runtime(settings)
    except (FollowupError, ValueError) as exc:
        raise fail(getattr(exc, "message", str(exc))) from exc
    except (DBAPIError, OSError) as exc:
        raise fail(explain_connection_failure(settings.database_url, exc)) from exc
    try:
        with runtime.engine.connect():
            pass
    except (DBAPIError, OSError) as exc:
        runtime.close()
        raise fail(explain_connection_failure(settings.database_url, exc)) from exc
    return runtime


def check_schema(runtime: Runtime) -> None:
    from followup.migrations.runner import current  # noqa: PLC0415

    if current(runtime.engine) is None:
        raise fail("the database has no schema yet; run `followup db upgrade` first")
