"""`followup bench`: the engine's speed beside raw baselines measured in the same run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from followup.bench.runner import BenchOptions, Figure, describe_machine, run_benchmarks, write_json

err = Console(stderr=True)


def _postgres_from_env() -> str | None:
    url = os.environ.get("FOLLOWUP_DATABASE_URL", "")
    return url if url.startswith("postgresql") else None


def _latency(p50: float | None, p99: float | None) -> str:
    return "" if p50 is None or p99 is None else f"{p50:.1f} / {p99:.1f}"


def render_table(figures: list[Figure], *, runs: int) -> Table:
    table = Table(title=f"followup bench: median of {runs} run{'s' if runs != 1 else ''}, engine vs raw baseline")
    table.add_column("benchmark")
    table.add_column("size", justify="right")
    table.add_column("engine", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("p50/p99 ms\nengine", justify="right")
    table.add_column("p50/p99 ms\nbaseline", justify="right")
    table.add_column("peak MiB\neng/base", justify="right")
    for figure in figures:
        table.add_row(
            figure.name,
            f"{figure.size:,}",
            f"{figure.engine:,.0f}/s",
            f"{figure.baseline:,.0f}/s",
            f"{figure.ratio:.3f}",
            _latency(figure.engine_p50_ms, figure.engine_p99_ms),
            _latency(figure.baseline_p50_ms, figure.baseline_p99_ms),
            f"{figure.engine_peak_rss_mb:,.0f}/{figure.baseline_peak_rss_mb:,.0f}",
        )
    return table


def bench(  # noqa: PLR0917 - typer maps each option to a parameter
    events: Annotated[int, typer.Option(min=1, help="synthetic events to ingest on SQLite")] = 1_000_000,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="events per ingest call and transaction")] = 5000,
    messages: Annotated[
        int, typer.Option(min=1, help="follow-up messages to send, by email to the SMTP sink and by SMS to the gateway")
    ] = 1000,
    sms_concurrency: Annotated[
        int, typer.Option(min=1, max=64, help="SMS sends in flight at once: the provider's setting and the baseline's")
    ] = 4,
    sms_latency_ms: Annotated[
        int,
        typer.Option(
            min=0, max=1000, help="the local SMS gateway's wait before each answer; stands for a provider's round trip"
        ),
    ] = 20,
    requests: Annotated[int, typer.Option(min=1, help="one-click answers to POST")] = 2000,
    runs: Annotated[int, typer.Option(min=1, max=21, help="runs per figure; each figure is their median")] = 3,
    postgres: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL URL for the ingest and wave figures; default FOLLOWUP_DATABASE_URL when it is one"
        ),
    ] = None,
    postgres_events: Annotated[int, typer.Option(min=1, help="synthetic events to ingest on PostgreSQL")] = 1_000_000,
    segment_customers: Annotated[
        int, typer.Option(min=1, help="customers the segment preview (SQLite) and the wave planning run over")
    ] = 1_000_000,
    only: Annotated[
        Literal["ingest", "dispatch", "answer", "segments", "waves"] | None, typer.Option(help="run one benchmark")
    ] = None,
    out: Annotated[Path, typer.Option(help="where to write the figures as JSON")] = Path("var/bench.json"),
) -> None:
    """Measure ingest, dispatch, answer, segment preview and wave planning against raw baselines in
    the same run; print and save."""
    options = BenchOptions(
        events=events,
        batch=batch,
        messages=messages,
        requests=requests,
        runs=runs,
        postgres_url=postgres or _postgres_from_env(),
        postgres_events=postgres_events,
        only=only,
        segment_customers=segment_customers,
        sms_concurrency=sms_concurrency,
        sms_latency_ms=sms_latency_ms,
    )
    machine = describe_machine(options)
    err.print(
        f"[bold]followup bench[/bold] on {machine['cpus']} × {machine['cpu_model']}, "
        f"Python {machine['python']}, SQLite {machine['sqlite']}"
        + (f", PostgreSQL {machine['postgresql']}" if machine["postgresql"] else "")
    )
    figures = run_benchmarks(options, report=lambda line: err.print(f"  {line}"))
    out_console = Console()
    out_console.width = max(out_console.width, 110)  # a pipe or a CI log is not a narrow terminal
    out_console.print(render_table(figures, runs=runs))
    write_json(out, options, machine, figures)
    err.print(f"figures written to {out}")
