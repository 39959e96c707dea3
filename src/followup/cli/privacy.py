"""`followup privacy`: how long personal data is kept and what the worker purged, for an operator."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from followup.cli.common import check_schema, cli_runtime

privacy_app = typer.Typer(help="Personal data: how long it is kept and what went.", no_args_is_help=True)


def _when(at: dt.datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M}" if at else "never"


@privacy_app.command("retention-report")
def retention_report(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document on stdout, for scripts")] = False,
) -> None:
    """Per data class: how long it is kept (FOLLOWUP_RETENTION_*), the cutoff now, how many rows
    are older than it (what the worker's purge would take), and how many the purge took, in all
    and when it last did. Times are UTC; the purge runs in `followup worker`."""
    from followup.data_rights import retention  # noqa: PLC0415

    with cli_runtime() as runtime:
        check_schema(runtime)
        with runtime.read_session() as session:
            report = retention.retention_report(session, now=runtime.clock.now(), settings=runtime.settings)
    if as_json:
        typer.echo(report.model_dump_json())
        return
    table = Table(title=f"Retention at {report.at:%Y-%m-%d %H:%M} UTC")
    for column in ("data class", "kept", "cutoff", "due now", "purged", "last purge", "last look", "what goes"):
        table.add_column(column, justify="right" if column in ("due now", "purged") else "left")
    for row in report.classes:
        kept = "for ever" if row.period_days is None else f"{row.period_days:,} days"
        table.add_row(
            f"[bold]{row.data_class}[/bold]",
            kept,
            _when(row.cutoff) if row.cutoff else "–",
            f"{row.due:,}",
            f"{row.purged:,}",
            _when(row.last_purged_at),
            _when(row.checked_at),
            "",
        )
        for part in row.parts:
            table.add_row(
                f"[dim]  {part.part}[/dim]",
                "",
                "",
                f"[dim]{part.due:,}[/dim]",
                f"[dim]{part.purged:,}[/dim]",
                f"[dim]{_when(part.last_purged_at)}[/dim]",
                "",
                f"[dim]{part.what}[/dim]",
            )
    Console(width=170).print(table)
