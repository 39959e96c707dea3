"""The `followup` command."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from followup.config import Settings
from followup.kernel.errors import FollowupError
from followup.kernel.logging import configure_logging
from followup.runtime import Runtime, build_runtime

app = typer.Typer(
    help="followup: a follow-up engine for digital wallets.", no_args_is_help=True, pretty_exceptions_enable=False
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys for the wallet's systems.", no_args_is_help=True)
staff_app = typer.Typer(help="Console staff accounts.", no_args_is_help=True)
events_app = typer.Typer(help="Wallet events.", no_args_is_help=True)
keys_app = typer.Typer(help="Encryption keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(apikey_app, name="apikey")
app.add_typer(staff_app, name="staff")
app.add_typer(events_app, name="events")
app.add_typer(keys_app, name="keys")

err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _fail(f"setting FOLLOWUP_{str(first['loc'][0]).upper()}: {first['msg']}") from exc


@contextmanager
def _runtime() -> Iterator[Runtime]:
    settings = _settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    try:
        runtime = build_runtime(settings)
    except (FollowupError, ValueError) as exc:
        raise _fail(getattr(exc, "message", str(exc))) from exc
    try:
        yield runtime
    except FollowupError as exc:
        raise _fail(exc.message) from exc
    finally:
        runtime.close()


def _check_schema(runtime: Runtime) -> None:
    from followup.migrations.runner import current  # noqa: PLC0415

    if current(runtime.engine) is None:
        raise _fail("the database has no schema yet; run `followup db upgrade` first")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the schema to the newest version."""
    from followup.migrations.runner import current, upgrade  # noqa: PLC0415

    with _runtime() as runtime:
        upgrade(runtime.engine)
        typer.echo(f"database at revision {current(runtime.engine)}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """Serve the API, the survey pages and the console."""
    import uvicorn  # noqa: PLC0415

    from followup.app import create_app  # noqa: PLC0415

    with _runtime() as runtime:
        _check_schema(runtime)
        uvicorn.run(create_app(runtime), host=host, port=port, log_level="warning", access_log=False)


@app.command()
def worker(once: Annotated[bool, typer.Option("--once", help="do all due work, then exit")] = False) -> None:
    """Run due follow-up steps, send due messages and outbox jobs."""
    from followup.worker import Worker  # noqa: PLC0415

    with _runtime() as runtime:
        _check_schema(runtime)
        loop = Worker(runtime)
        if once:
            done = loop.run_until_idle()
            typer.echo(f"steps={done.steps} messages={done.messages} jobs={done.jobs}")
            return

        def _stop(_signum: int, _frame: FrameType | None) -> None:
            loop.stopping.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        loop.run_forever()


@apikey_app.command("create")
def apikey_create(name: Annotated[str, typer.Option(help="who the key is for, e.g. wallet-backend")]) -> None:
    """Create an API key and print it (alone on stdout). Only its hash is kept."""
    from followup.staff import service  # noqa: PLC0415

    with _runtime() as runtime:
        _check_schema(runtime)
        with runtime.session() as session:
            _, key = service.create_api_key(session, name=name, now=runtime.clock.now())
        typer.echo(key)


@staff_app.command("create-admin")
def staff_create_admin(email: Annotated[str, typer.Option(help="the admin's email address")]) -> None:
    """Create a console admin and print a generated password."""
    from followup.staff import service  # noqa: PLC0415

    with _runtime() as runtime:
        _check_schema(runtime)
        with runtime.session() as session:
            _, password = service.create_staff(session, email=email, role="admin", now=runtime.clock.now())
        typer.echo(password)


@staff_app.command("set-password")
def staff_set_password(email: Annotated[str, typer.Option(help="the staff member's email address")]) -> None:
    """Give a staff account a new generated password (printed) and end its console sessions."""
    from followup.staff import service  # noqa: PLC0415

    with _runtime() as runtime:
        _check_schema(runtime)
        with runtime.session() as session:
            password = service.set_staff_password(session, service.access_staff_by_email(session, email))
        typer.echo(password)


@staff_app.command("disable")
def staff_disable(email: Annotated[str, typer.Option(help="the staff member's email address")]) -> None:
    """Disable a staff account: it can no longer sign in, and its console sessions end at once."""
    from followup.staff import service  # noqa: PLC0415

    with _runtime() as runtime:
        _check_schema(runtime)
        with runtime.session() as session:
            service.disable_staff(session, service.access_staff_by_email(session, email), now=runtime.clock.now())
        typer.echo(f"disabled {email.strip()}; its console sessions have ended")


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new random master key for FOLLOWUP_MASTER_KEY."""
    from followup.kernel.crypto import generate_master_key_text  # noqa: PLC0415

    typer.echo(generate_master_key_text())


@events_app.command("import")
def events_import(
    path: Annotated[Path, typer.Argument(help="NDJSON file, one event per line; - for stdin")],
    batch_size: Annotated[int, typer.Option(min=1, max=10_000)] = 5000,
) -> None:
    """Ingest events from NDJSON, in batches, exactly as POST /api/v1/events does."""
    from followup.events import service  # noqa: PLC0415

    if str(path) != "-" and not path.is_file():
        raise _fail(f"no such file: {path}")
    handle = sys.stdin if str(path) == "-" else path.open(encoding="utf-8")
    total_size = path.stat().st_size if str(path) != "-" else None
    accepted = duplicates = 0
    rejected: list[str] = []
    with (
        _runtime() as runtime,
        handle,
        Progress(
            TextColumn("[bold]importing"),
            BarColumn(),
            TextColumn("{task.completed:,.0f} bytes"),
            TimeRemainingColumn(),
            console=err,
            disable=total_size is None,
        ) as progress,
    ):
        _check_schema(runtime)
        task = progress.add_task("import", total=total_size)
        batch: list[object] = []
        line_numbers: list[int] = []

        def flush() -> None:
            nonlocal accepted, duplicates
            with runtime.session() as session:
                result = service.ingest_events(session, batch, now=runtime.clock.now(), settings=runtime.settings)
            accepted += result.accepted
            duplicates += result.duplicates
            rejected.extend(f"line {line_numbers[r.index]}: {r.message}" for r in result.rejected)
            batch.clear()
            line_numbers.clear()

        for number, line in enumerate(handle, start=1):
            progress.advance(task, len(line.encode()))
            if not line.strip():
                continue
            try:
                batch.append(json.loads(line))
            except json.JSONDecodeError:
                rejected.append(f"line {number}: not valid JSON")
                continue
            line_numbers.append(number)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
    for message in rejected[:20]:
        err.print(f"[yellow]rejected[/yellow] {message}")
    if len(rejected) > 20:
        err.print(f"… and {len(rejected) - 20} more rejected")
    typer.echo(json.dumps({"accepted": accepted, "duplicates": duplicates, "rejected": len(rejected)}))
    if rejected and accepted == 0:
        raise typer.Exit(1)


from followup.cli.bench import bench  # noqa: E402 - the commands live in their own modules
from followup.cli.demo import demo  # noqa: E402

app.command("demo")(demo)
app.command("bench")(bench)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
