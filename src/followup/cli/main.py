"""The `followup` command."""

from __future__ import annotations

import codecs
import json
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from types import FrameType
from typing import IO, Annotated, Any, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from followup.cli.common import check_schema, cli_runtime, err, fail

app = typer.Typer(
    help="followup: a follow-up engine for digital wallets.", no_args_is_help=True, pretty_exceptions_enable=False
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys for the wallet's systems.", no_args_is_help=True)
staff_app = typer.Typer(help="Console staff accounts.", no_args_is_help=True)
events_app = typer.Typer(help="Wallet events.", no_args_is_help=True)
keys_app = typer.Typer(help="Encryption keys.", no_args_is_help=True)
customers_app = typer.Typer(help="Wallet customers.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(apikey_app, name="apikey")
app.add_typer(staff_app, name="staff")
app.add_typer(events_app, name="events")
app.add_typer(keys_app, name="keys")
app.add_typer(customers_app, name="customers")
app.add_typer(audit_app, name="audit")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the schema to the newest version."""
    from followup.cases import service as cases  # noqa: PLC0415
    from followup.migrations.runner import current, upgrade  # noqa: PLC0415

    with cli_runtime() as runtime:
        upgrade(runtime.engine)
        with runtime.session() as session:
            # What the migrations could not do without the master key (0020: reopening reasons).
            sealed = cases.seal_reopen_reasons(session, keys=runtime.keys, now=runtime.clock.now())
        if sealed:
            typer.echo(f"sealed {sealed} reopening reason{'s' if sealed != 1 else ''} typed before 0020", err=True)
        typer.echo(f"database at revision {current(runtime.engine)}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """Serve the API, the survey pages and the console."""
    import uvicorn  # noqa: PLC0415

    from followup.app import create_app  # noqa: PLC0415
    from followup.cli.serving import AnnouncingServer  # noqa: PLC0415

    with cli_runtime() as runtime:
        check_schema(runtime)
        # log_config=None: uvicorn keeps the logging configure_logging set (one format, scrubbed);
        # the app writes its own access line, naming routes rather than paths with tokens in them.
        config = uvicorn.Config(
            create_app(runtime), host=host, port=port, log_level="warning", access_log=False, log_config=None
        )
        AnnouncingServer(config, settings=runtime.settings).run()


@app.command()
def worker(once: Annotated[bool, typer.Option("--once", help="do all due work, then exit")] = False) -> None:
    """Run due follow-up steps, send due messages and outbox jobs."""
    from followup.worker import Worker  # noqa: PLC0415

    with cli_runtime() as runtime:
        check_schema(runtime)
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
def apikey_create(
    name: Annotated[str, typer.Option(help="who the key is for, e.g. wallet-backend")],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            help="what the key may do, repeatable: admin, read, events:write, customers:write, calls "
            "(default: admin, everything)"
        ),
    ] = None,
    staff: Annotated[str | None, typer.Option(help="the staff member's email the key is issued for")] = None,
) -> None:
    """Create an API key and print it (alone on stdout). Only its hash is kept (audited)."""
    from followup.web import staff_admin  # noqa: PLC0415

    with cli_runtime() as runtime:
        check_schema(runtime)
        with runtime.session() as session:
            key = staff_admin.issue_api_key(
                session, name=name, scopes=scope or (), staff_email=staff, actor=_cli("apikey"), now=runtime.clock.now()
            )
        typer.echo(key)


@apikey_app.command("list")
def apikey_list() -> None:
    """Every key: name, scopes, staff member, last use (to the minute), and whether it is revoked."""
    from followup.staff import service  # noqa: PLC0415

    with cli_runtime() as runtime:
        check_schema(runtime)
        with runtime.read_session() as session:
            keys = service.list_api_keys(session)
    table = Table(title="API keys")
    for column in ("name", "key", "scopes", "staff", "created", "last used", "revoked"):
        table.add_column(column)
    for key in keys:
        table.add_row(
            key.name,
            f"{key.prefix}…",
            " ".join(key.scopes),
            key.staff or "",
            f"{key.created_at:%Y-%m-%d %H:%M}",
            f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never",
            f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "",
        )
    Console(width=160).print(table)


@apikey_app.command("revoke")
def apikey_revoke(name: Annotated[str, typer.Argument(help="the key's name")]) -> None:
    """Revoke the active keys with this name: from now on they get 401 (audited)."""
    from followup.web import staff_admin  # noqa: PLC0415

    with cli_runtime() as runtime:
        check_schema(runtime)
        with runtime.session() as session:
            count = staff_admin.revoke_api_keys(session, name, actor=_cli("apikey"), now=runtime.clock.now())
        typer.echo(f"revoked {count} key{'s' if count != 1 else ''} named {name.strip()}")


@staff_app.command("create-admin")
def staff_create_admin(email: Annotated[str, typer.Option(help="the admin's email address")]) -> None:
    """Create a console admin and print a generated password (audited)."""
    from followup.web import staff_admin  # noqa: PLC0415

    with cli_runtime() as runtime:
        check_schema(runtime)
        with runtime.session() as session:
            made = staff_admin.invite(
                session, email=email, role="admin", queues=[], actor=_staff_cli(), now=runtime.clock.now()
            )
        typer.echo(made.password)


EmailOption = Annotated[str, typer.Option(help="the staff member's email address")]
RoleOption = Annotated[str, typer.Option(help="admin, analyst, agent or auditor")]


def _staff_cli() -> Any:
    return _cli("staff")


def _cli(command: str) -> Any:
    """The operator at the command line, as the audit log names them."""
    from followup.kernel.actors import Actor  # noqa: PLC0415

    return Actor(kind="system", id="cli", label=f"followup {command}")


@staff_app.command("invite")
def staff_invite(
    email: EmailOption,
    role: RoleOption,
    queue: Annotated[list[str] | None, typer.Option(help="a queue the member works (repeatable), e.g. calls")] = None,
) -> None:
    """Create a staff account and print its generated password (alone on stdout), shown this once."""
    from followup.web import staff_admin  # noqa: PLC0415

    with cli_runtime() as runtime:
        check_schema(runtime)
        with runtime.session() as session:
            made = staff_admin.invite(
                session, email=email, role=role, queues=queue or [], actor=_staff_cli(), now=runtime.clock.now()
            )
        typer.echo(made.password)


def _update_staff(email: str, **change: Any) -> str | None:
    from followup.staff import service  # noqa: PLC0415
    from followup.staff.schemas import StaffUpdate  # noqa: PLC0415
    from followup.web import staff_admin  # noqa: PLC0415

    with cli_runtime() as runtime:
        check_schema(runtime)
        with runtime.session() as session:
            member = service.access_staff_by_email(session, email)
            made = staff_admin.update(
                session, member, StaffUpdate(**change), actor=_staff_cli(), now=runtime.clock.now()
            )
            return made.password


@staff_app.command("set-role")
def staff_set_role(email: EmailOption, role: RoleOption) -> None:
    """Change a staff member's role (audited)."""
    from followup.staff.service import ROLES  # noqa: PLC0415

    if role not in ROLES:
        raise fail(f"role must be one of {', '.join(ROLES)}")
    _update_staff(email, role=role)
    typer.echo(f"{email.strip()} is now {role}")


@staff_app.command("reset-password")
def staff_reset_password(email: EmailOption) -> None:
    """Give a staff account a new generated password (printed) and end its console sessions (audited)."""
    typer.echo(_update_staff(email, reset_password=True))


@staff_app.command("reset-two-factor")
def staff_reset_two_factor(email: EmailOption) -> None:
    """Turn a member's two-factor sign-in off (a lost phone) and end their sessions (audited)."""
    from followup.staff import service  # noqa: PLC0415
    from followup.web import staff_admin  # noqa: PLC0415

    with cli_runtime() as runtime:
        check_schema(runtime)
        with runtime.session() as session:
            member = service.access_staff_by_email(session, email)
            staff_admin.reset_two_factor(session, member, actor=_staff_cli(), now=runtime.clock.now())
    typer.echo(f"two-factor is off for {email.strip()}; it is set up again at the next sign-in")


@staff_app.command("set-password")
def staff_set_password(email: EmailOption) -> None:
    """The same as reset-password (kept for the scripts that call it by this name)."""
    typer.echo(_update_staff(email, reset_password=True))


@staff_app.command("disable")
def staff_disable(email: EmailOption) -> None:
    """Disable a staff account: it can no longer sign in, and its console sessions end at once (audited)."""
    _update_staff(email, disabled=True)
    typer.echo(f"disabled {email.strip()}; its console sessions have ended")


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk the audit log's hash chain: exit 0 when it is intact, 1 naming the first row altered,
    removed or inserted."""
    from sqlalchemy import inspect  # noqa: PLC0415

    from followup.privacy import service  # noqa: PLC0415

    with cli_runtime() as runtime:
        check_schema(runtime)
        if not inspect(runtime.engine).has_table("audit_chain_head"):
            raise fail("the audit log is not chained yet; run `followup db upgrade` first")
        with runtime.read_session() as session:
            if runtime.engine.dialect.name == "postgresql":
                # One snapshot for the head and every page: lines appended meanwhile do not show.
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            verdict = service.verify_audit_chain(session)
    if verdict.broken is not None:
        typer.echo(str(verdict.broken))
        raise typer.Exit(1)
    head = verdict.head.hash if verdict.head is not None else "none"
    typer.echo(f"audit log intact: {verdict.rows} rows, head {head}")


@keys_app.command("generate")
def keys_generate(
    version: Annotated[
        int | None,
        typer.Option(min=1, max=9999, help="print it as VERSION:KEY, an entry of FOLLOWUP_MASTER_KEYS or the key file"),
    ] = None,
) -> None:
    """Print a new random master key for FOLLOWUP_MASTER_KEY (or, with --version, for FOLLOWUP_MASTER_KEYS)."""
    from followup.kernel.crypto import generate_master_key_text  # noqa: PLC0415

    key = generate_master_key_text()
    typer.echo(f"{version}:{key}" if version is not None else key)


@keys_app.command("status")
def keys_status() -> None:
    """How many data keys each master key version wraps, and which version is current."""
    from followup.customers import keys as key_versions  # noqa: PLC0415

    with cli_runtime() as runtime:
        check_schema(runtime)
        with runtime.read_session() as session:
            counts = key_versions.count_data_keys(session, keys=runtime.keys)
    typer.echo(
        json.dumps(
            {
                "current_version": counts.current_version,
                "configured_versions": list(counts.held_versions),
                "data_keys": {str(version): count for version, count in sorted(counts.data_keys.items())},
                "not_current": counts.not_current,
            }
        )
    )


@keys_app.command("rotate")
def keys_rotate(
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="data keys re-wrapped per transaction")] = 500,
) -> None:
    """Re-wrap every data key under the current master key version, while everything keeps running.

    Each batch is a short transaction of its own, so the server and the worker never wait long for
    a key; stopping (Ctrl-C) loses nothing, and running it again goes on where it stopped. Make the
    new version current in every process first (docs/privacy.md, Keys). Exit status: 0 when every
    data key is under the current version; 1 when some are left (a process still wraps under an old
    version); 2 when the keys do not open the key store; 130 when interrupted.
    """
    from followup.customers import keys as key_versions  # noqa: PLC0415

    with cli_runtime() as runtime:
        check_schema(runtime)
        current = runtime.keys.current_version
        with runtime.read_session() as session:
            before = key_versions.count_data_keys(session, keys=runtime.keys)
        with (
            Progress(
                TextColumn(f"[bold]re-wrapping under version {current}"),
                BarColumn(),
                TextColumn("{task.completed:,.0f} / {task.total:,.0f}"),
                TimeRemainingColumn(),
                console=err,
            ) as progress,
            _interruptible() as interrupted,
        ):
            task = progress.add_task("rotate", total=before.not_current)
            rewrapped = key_versions.rotate_all_data_keys(
                runtime.session,
                keys=runtime.keys,
                limit=batch_size,
                progress=lambda n: progress.advance(task, n),
                stop=interrupted.is_set,
            )
        with runtime.read_session() as session:
            after = key_versions.count_data_keys(session, keys=runtime.keys)
    if interrupted.is_set():
        raise fail(
            f"interrupted; the {rewrapped:,} data keys re-wrapped stay re-wrapped. Run it again to finish",
            code=130,
        )
    typer.echo(json.dumps({"rewrapped": rewrapped, "current_version": current, "not_current": after.not_current}))
    if after.not_current:
        raise fail(
            f"{after.not_current:,} data keys are still under an older version: a process still wraps under it, "
            "or an erasure held them; make the new version current everywhere and run it again",
            code=1,
        )


@customers_app.command("recompute-stats")
def customers_recompute_stats() -> None:
    """Rebuild every customer's activity stats (customer.stats.*) from the event log, the follow-up
    history and the stored answers, in one transaction: what ingest and answers keep, recomputed.

    Run it once after upgrading to a version that adds stats, or to check them; events ingested
    while it runs are counted by their own batch once it commits, so run it when ingest is quiet.
    """
    from followup.events import service  # noqa: PLC0415

    with cli_runtime() as runtime:
        check_schema(runtime)
        with runtime.read_session() as session:
            total = service.count_events(session)
        with (
            Progress(
                TextColumn("[bold]replaying events"),
                BarColumn(),
                TextColumn("{task.completed:,.0f} / {task.total:,.0f}"),
                TimeRemainingColumn(),
                console=err,
            ) as progress,
            runtime.session() as session,
        ):
            task = progress.add_task("replay", total=total)
            since = service.held_whole_since(now=runtime.clock.now(), settings=runtime.settings)
            replayed = service.recompute_customer_stats(
                session, since=since, progress=lambda n: progress.advance(task, n)
            )
    typer.echo(json.dumps({"events": replayed}))


@events_app.command("import")
def events_import(
    path: Annotated[Path, typer.Argument(help="NDJSON file, one event per line; - for stdin")],
    batch_size: Annotated[int, typer.Option(min=1, max=10_000)] = 5000,
    encoding: Annotated[
        str | None,
        typer.Option(help="the file's text encoding, e.g. gbk; default UTF-8 (a byte-order mark always decides)"),
    ] = None,
) -> None:
    """Ingest events from NDJSON, in batches, exactly as POST /api/v1/events does.

    Exit status: 0 when the import ran (bad lines are listed and skipped); 1 when every event was
    rejected; 2 when nothing was imported because the file, its encoding or the settings are wrong;
    130 when interrupted (the batches stored before stay stored).
    """
    from followup.events import service  # noqa: PLC0415

    with _events_source(path) as source:
        codec = _events_codec(source, encoding)
        # Decode the whole file before storing anything: a file in the wrong encoding is refused
        # whole instead of being imported up to its first undecodable line.
        _check_decodes(source, codec)
        source.seek(0)
        total_size = path.stat().st_size if str(path) != "-" else None
        accepted = duplicates = 0
        rejected: list[str] = []
        with (
            cli_runtime() as runtime,
            Progress(
                TextColumn("[bold]importing"),
                BarColumn(),
                TextColumn("{task.completed:,.0f} bytes"),
                TimeRemainingColumn(),
                console=err,
                disable=total_size is None,
            ) as progress,
        ):
            check_schema(runtime)
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

            # Ctrl-C stops between batches, never inside one: each batch is its own transaction, so
            # what is counted as stored is exactly what is, and importing the file again stores only
            # what is missing (the rest count as duplicates).
            with _interruptible() as interrupted:
                for number, line, size in _decoded_lines(source, codec):
                    if interrupted.is_set():
                        break
                    progress.advance(task, size)
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
                if batch and not interrupted.is_set():
                    flush()
            if interrupted.is_set():
                raise fail(
                    f"interrupted; the {accepted:,} events stored before stay stored. "
                    "Import the file again to finish: events already stored count as duplicates",
                    code=130,
                )
    for message in rejected[:20]:
        err.print(f"[yellow]rejected[/yellow] {escape(message)}", soft_wrap=True)
    if len(rejected) > 20:
        err.print(f"… and {len(rejected) - 20} more rejected")
    typer.echo(json.dumps({"accepted": accepted, "duplicates": duplicates, "rejected": len(rejected)}))
    if rejected and accepted == 0:
        raise typer.Exit(1)


@contextmanager
def _interruptible() -> Iterator[threading.Event]:
    """While the block runs, Ctrl-C (SIGINT) sets the event instead of raising KeyboardInterrupt."""
    interrupted = threading.Event()

    def _on_sigint(_signum: int, _frame: FrameType | None) -> None:
        interrupted.set()

    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


# Byte-order marks, longest first: UTF-32's little-endian mark begins with UTF-16's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@contextmanager
def _events_source(path: Path) -> Iterator[IO[bytes]]:
    """The events as bytes that can be read twice: the file itself, or stdin kept in a spool
    (memory up to 64 MiB, then a temporary file)."""
    if str(path) == "-":
        with tempfile.SpooledTemporaryFile(max_size=64 * 2**20) as spool:
            shutil.copyfileobj(sys.stdin.buffer, spool)
            spool.seek(0)
            yield cast(IO[bytes], spool)
        return
    if not path.is_file():
        raise fail(f"no such file: {path}")
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        yield handle


def _events_codec(source: IO[bytes], encoding: str | None) -> str:
    """A byte-order mark decides; without one, --encoding or else UTF-8 (utf-8-sig reads BOM-less UTF-8 too)."""
    name = "utf-8"
    if encoding is not None:
        try:
            name = codecs.lookup(encoding).name
        except LookupError as exc:
            known = "e.g. utf-8, gbk, gb18030, big5"
            raise fail(f"--encoding {encoding} is not an encoding Python knows; {known}") from exc
    head = source.read(4)
    source.seek(0)
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return codec
    return "utf-8-sig" if name == "utf-8" else name


def _encoding_name(codec: str) -> str:
    return {"utf-8-sig": "UTF-8", "utf-16": "UTF-16", "utf-32": "UTF-32"}.get(codec, codec)


class _Undecodable(Exception):
    def __init__(self, line: int, problem: UnicodeDecodeError) -> None:
        super().__init__(line)
        self.line = line
        self.problem = problem


def _decoded_lines(source: IO[bytes], codec: str) -> Iterator[tuple[int, str, int]]:
    """(line number, text, bytes read for it) per line; raises _Undecodable at the first bad byte.

    The decoder is incremental, so a line split anywhere (UTF-16 newlines are two bytes) decodes
    the same as the whole file would.
    """
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    pending = ""
    number = consumed = 0
    for raw in chain(source, [b""]):
        consumed += len(raw)
        try:
            pending += decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as exc:
            raise _Undecodable(number + 1, exc) from exc
        *complete, pending = pending.split("\n")
        for text in complete:
            number += 1
            yield number, text, consumed
            consumed = 0
    if pending:
        yield number + 1, pending, consumed


def _check_decodes(source: IO[bytes], codec: str) -> None:
    try:
        for _ in _decoded_lines(source, codec):
            pass
    except _Undecodable as exc:
        bad = exc.problem.object[exc.problem.start : exc.problem.start + 1].hex()
        raise fail(
            f"line {exc.line} is not valid {_encoding_name(codec)} (byte 0x{bad}); nothing was imported. "
            "If the file is in another encoding, name it with --encoding, e.g. --encoding gbk"
        ) from exc


from followup.cli.bench import bench  # noqa: E402 - the commands live in their own modules
from followup.cli.demo import demo  # noqa: E402
from followup.cli.privacy import privacy_app  # noqa: E402
from followup.cli.strategies import strategies_app  # noqa: E402

app.command("demo")(demo)
app.command("bench")(bench)
app.add_typer(strategies_app, name="strategies")
app.add_typer(privacy_app, name="privacy")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
