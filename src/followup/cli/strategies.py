"""`followup strategies`: strategies as code, and the strategies a CX team runs from a terminal."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session

from followup.cli.common import check_schema, cli_runtime, fail
from followup.kernel.actors import Actor

err = Console(stderr=True)
strategies_app = typer.Typer(help="Strategies, segments and surveys, kept as code.", no_args_is_help=True)
CLI_ACTOR = Actor(kind="system", id="cli", label="followup strategies")
SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 5_000_000


def _documents(path: Path) -> list[tuple[str, Any]]:
    """Each file's parsed document: PATH itself, or the YAML and JSON files of a folder, by name."""
    if not path.exists():
        raise fail(f"{path}: no such file or folder")
    files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file()) if path.is_dir() else [path]
    if path.is_dir() and not files:
        raise fail(f"{path}: the folder holds no .yaml, .yml or .json file")
    out = []
    for file in files:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise fail(f"{file}: larger than {MAX_FILE_BYTES:,} bytes")
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise fail(f"{file}: not UTF-8 text") from exc
        try:
            document = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise fail(f"{file}: not valid {'JSON' if file.suffix == '.json' else 'YAML'}{where}") from exc
        out.append((str(file), document))
    return out


@strategies_app.command("apply")
def apply_command(
    path: Annotated[Path, typer.Argument(help="a YAML or JSON file, or a folder of them")],
    yes: Annotated[bool, typer.Option("--yes", help="apply without asking")] = False,
) -> None:
    """Make the database hold what the files say: surveys, segments and strategies (the API's
    bodies, under top-level lists surveys:, segments:, strategies:). Prints the diff and asks
    first; applying the same files again changes nothing and makes no new version."""
    from followup.strategies import as_code  # noqa: PLC0415

    with cli_runtime() as runtime:
        check_schema(runtime)
        bundle = as_code.read_documents(_documents(path))
        with runtime.read_session() as session:
            planned = as_code.changes(session, bundle, available_channels=set(runtime.channels))
        if not planned:
            typer.echo("nothing to change")
            return

        def apply_in(session: Session) -> None:
            as_code.apply(
                session,
                bundle,
                available_channels=set(runtime.channels),
                limits=runtime.settings.input_limits,
                actor=CLI_ACTOR,
                now=runtime.clock.now(),
            )

        # Tried first and rolled back, so a refusal comes before the diff and the question.
        with runtime.session() as session:
            trial = session.begin_nested()
            try:
                apply_in(session)
            finally:
                trial.rollback()
        for change in planned:
            err.print(f"[bold]{change.action} {change.kind} {escape(change.key)}[/bold]")
            err.print(escape(change.diff), highlight=False, end="")
        count = f"{len(planned)} change{'s' if len(planned) != 1 else ''}"
        if not yes:
            if not sys.stdin.isatty():
                raise fail(f"{count} to apply; run again with --yes to apply them without a terminal")
            if not typer.confirm(f"Apply {count}?", default=False, err=True):
                raise fail("nothing applied", code=1)
        with runtime.session() as session:
            apply_in(session)
    typer.echo(f"applied {count}")


@strategies_app.command("export")
def export_command(
    out: Annotated[Path | None, typer.Option(help="write to this file instead of stdout")] = None,
    format_: Annotated[Literal["yaml", "json"], typer.Option("--format", help="yaml or json")] = "yaml",
) -> None:
    """Every survey, segment and strategy as a file `apply` takes back unchanged."""
    from followup.strategies import as_code  # noqa: PLC0415

    with cli_runtime() as runtime:
        check_schema(runtime)
        with runtime.read_session() as session:
            bundle = as_code.export(session)
    if format_ == "json":
        text = json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
    else:
        text = yaml.safe_dump(bundle, allow_unicode=True, sort_keys=False, width=100)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        err.print(f"wrote {out}")


@strategies_app.command("list")
def list_command() -> None:
    """The strategies: kind, status, version and the next wave or sweep."""
    from followup.strategies import service  # noqa: PLC0415

    with cli_runtime() as runtime:
        check_schema(runtime)
        with runtime.read_session() as session:
            items, _ = service.list_strategies(session, limit=500, offset=0)
    table = Table(box=None)
    for column in ("key", "kind", "status", "version", "next run"):
        table.add_column(column)
    for item in items:
        next_run = item.next_run_at.strftime("%Y-%m-%d %H:%M UTC") if item.next_run_at else "–"
        table.add_row(item.key, item.kind, item.status, str(item.version), next_run)
    Console(width=120).print(table)


@strategies_app.command("show")
def show_command(key: Annotated[str, typer.Argument(help="the strategy's key")]) -> None:
    """One strategy's definition, as YAML, and its versions."""
    from followup.strategies import service  # noqa: PLC0415

    with cli_runtime() as runtime:
        check_schema(runtime)
        with runtime.read_session() as session:
            strategy = service.access_strategy(session, key)
            described = service.describe_strategy(strategy)
            versions = [(v.version, v.created_at, v.actor) for v in service.list_versions(session, strategy)]
    body = described.model_dump(mode="json", by_alias=True, exclude_none=True)
    typer.echo(yaml.safe_dump(body, allow_unicode=True, sort_keys=False, width=100), nl=False)
    typer.echo("versions:")
    for version, at, actor in versions:
        typer.echo(f"  - {version}  {at.strftime('%Y-%m-%d %H:%M:%S UTC')}  {actor}")


@strategies_app.command("preview")
def preview_command(
    key: Annotated[str, typer.Argument(help="the strategy's key")],
    days: Annotated[int, typer.Option(min=1, max=365, help="event strategies: the last N days of events")] = 30,
) -> None:
    """What the strategy would do now, as JSON; writes nothing (the API's POST /strategies/{key}/preview)."""
    from followup.events import service as events  # noqa: PLC0415
    from followup.strategies import preview, service  # noqa: PLC0415

    with cli_runtime() as runtime:
        check_schema(runtime)
        with runtime.session() as session:
            answer = preview.preview_saved(
                session,
                service.access_strategy(session, key),
                days=days,
                now=runtime.clock.now(),
                settings=runtime.settings,
                keys=runtime.keys,
                history=events.event_history(session),
            )
    typer.echo(answer.model_dump_json(indent=2))


def _set_status(key: str, status: Literal["active", "paused"]) -> None:
    from followup.strategies import service  # noqa: PLC0415
    from followup.strategies.schemas import StrategyUpdate  # noqa: PLC0415

    with cli_runtime() as runtime:
        check_schema(runtime)
        with runtime.session() as session:
            strategy = service.access_strategy(session, key)
            service.update_strategy(
                session, strategy, StrategyUpdate(status=status), actor=CLI_ACTOR, now=runtime.clock.now()
            )
            version = strategy.version
    typer.echo(f"{key}: {status} (version {version})")


@strategies_app.command("pause")
def pause_command(key: Annotated[str, typer.Argument(help="the strategy's key")]) -> None:
    """Stop planning: no new follow-ups, waves or sweeps until it is resumed."""
    _set_status(key, "paused")


@strategies_app.command("resume")
def resume_command(key: Annotated[str, typer.Argument(help="the strategy's key")]) -> None:
    """Plan again; a periodic strategy's next wave is its next firing from now."""
    _set_status(key, "active")
