"""`followup demo`: play a wallet's month of follow-ups on a simulated clock, then serve it."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from followup.kernel.logging import configure_logging

if TYPE_CHECKING:
    from followup.runtime import Runtime

ADMIN_EMAIL = "admin@wallet.example"

out = Console()
err = Console(stderr=True)


class ContinuingClock:
    """Real time, moved so that the served app starts where the simulated month ended: the links of
    the last days' messages are still valid, and time runs on from there."""

    def __init__(self, start: dt.datetime) -> None:
        self._start = start
        self._began = time.monotonic()
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return self._start + dt.timedelta(seconds=time.monotonic() - self._began)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


def _fresh_database(path: Path) -> None:
    """Delete the database of an earlier run, with its WAL, shared memory, key file and key store."""
    if path.exists() and path.is_dir():
        raise _fail(f"--db {path} is a directory; give the path of a database file")
    from followup.kernel.db import key_store_location  # noqa: PLC0415

    keys = Path(key_store_location(f"sqlite:///{path}"))
    for candidate in [path.with_name(path.name + s) for s in ("", "-wal", "-shm", ".key")] + [
        keys.with_name(keys.name + s) for s in ("", "-wal", "-shm")
    ]:
        try:
            candidate.unlink(missing_ok=True)
        except OSError as exc:
            raise _fail(f"cannot remove {candidate}: {exc.strerror}") from exc
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fail(f"cannot create {path.parent}: {exc.strerror}") from exc


def _check_can_serve(host: str, port: int) -> None:
    """Fail before a minute of simulation, not after it, when the address cannot be served on."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.create_server((host, port), family=family):
            pass
    except OSError as exc:
        raise _fail(
            f"cannot serve on {host}:{port} ({exc.strerror or exc}); pick another --host or --port, or use --no-serve"
        ) from exc


def demo(  # noqa: PLR0917 - typer maps each option to a parameter
    db: Annotated[Path, typer.Option(help="SQLite file to build the demo in; replaced on every run")] = Path(
        "var/demo.db"
    ),
    seed: Annotated[int, typer.Option(help="the same seed gives the same month", min=0)] = 1,
    customers: Annotated[int, typer.Option(help="customers in the wallet", min=50, max=100_000)] = 2000,
    days: Annotated[int, typer.Option(help="days to simulate", min=1, max=60)] = 30,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="stop after the summary")] = False,
    host: Annotated[str, typer.Option(help="address to serve on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to serve on", min=1, max=65535)] = 8000,
) -> None:
    """Play a wallet's month of follow-ups on a simulated clock, then serve it."""
    from followup.demo.simulate import STRATEGY_KEYS, demo_settings, play_month  # noqa: PLC0415
    from followup.demo.summary import collect_summary, render_answers, render_people, render_summary  # noqa: PLC0415
    from followup.demo.world import build_world  # noqa: PLC0415
    from followup.kernel.db import make_engine  # noqa: PLC0415
    from followup.migrations.runner import upgrade  # noqa: PLC0415

    configure_logging(level="ERROR")
    if not no_serve:
        _check_can_serve(host, port)
    db = db.expanduser().absolute()
    _fresh_database(db)
    public_url = f"http://{host}:{port}"
    settings = demo_settings(f"sqlite:///{db}", public_url=public_url)
    engine = make_engine(settings.database_url, key_store=settings.key_store)
    try:
        upgrade(engine)
    finally:
        engine.dispose()

    began = time.monotonic()
    world = build_world(seed=seed, customers=customers, days=days)
    out.print(
        f"A wallet of [bold]{customers:,}[/bold] customers and [bold]{len(world.events):,}[/bold] events, "
        f"{world.start:%Y-%m-%d} to {world.end:%Y-%m-%d} (seed {seed}), in {db}"
    )
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days"),
        TimeElapsedColumn(),
        console=out,
    ) as progress:
        task = progress.add_task("setting up", total=days)

        def on_set_up() -> None:
            progress.update(task, description="simulating")

        def on_day(day: int) -> None:
            progress.update(task, completed=day)

        run = play_month(settings, world, on_set_up=on_set_up, on_day=on_day)
    try:
        summary = collect_summary(run.runtime, STRATEGY_KEYS)
        wide = Console(width=max(out.width, 100)) if not out.is_terminal else out
        render_summary(summary, wide)
        render_answers(run.answers, wide)
        render_people(run.people, wide)
        out.print(f"The month took {time.monotonic() - began:.1f} s.")
        if no_serve:
            return
        _serve(run.runtime, end=world.end, host=host, port=port, public_url=public_url)
    finally:
        run.runtime.close()


def _serve(runtime: Runtime, *, end: dt.datetime, host: str, port: int, public_url: str) -> None:
    import uvicorn  # noqa: PLC0415

    from followup.app import create_app  # noqa: PLC0415
    from followup.demo.people import DEMO_STAFF  # noqa: PLC0415
    from followup.runtime import build_runtime  # noqa: PLC0415
    from followup.staff import service as staff  # noqa: PLC0415

    # The demo's admin signs in with the printed password alone: two-factor would need a phone
    # app to look at a demo. A deployment keeps FOLLOWUP_CONSOLE_ADMIN_TWO_FACTOR on.
    settings = runtime.settings.model_copy(update={"console_admin_two_factor": False})
    served = build_runtime(settings, clock=ContinuingClock(end))
    try:
        with served.session() as session:
            _, password = staff.create_staff(session, email=ADMIN_EMAIL, role="admin", now=served.clock.now())
            logins = [
                (email, role, staff.set_staff_password(session, staff.access_staff_by_email(session, email)))
                for email, role, _queues in DEMO_STAFF
            ]
        out.print()
        out.print(f"Open [bold]{public_url}/console[/bold] and log in as [bold]{ADMIN_EMAIL}[/bold]")
        out.print(f"with the password [bold]{password}[/bold] (two-factor sign-in is off in the demo)")
        out.print("or as one of the team, to see the console as each role does:")
        for email, role, member_password in logins:
            out.print(f"  {role:<8} [bold]{email}[/bold]  {member_password}")
        out.print(f"The app's clock runs on from the end of the month ({end:%Y-%m-%d %H:%M} UTC). Stop with Ctrl-C.")
        uvicorn.run(create_app(served), host=host, port=port, log_level="warning", access_log=False)
    finally:
        served.close()
