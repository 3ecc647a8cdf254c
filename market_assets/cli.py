"""``market``: the one command for every operation of SPEC §7.

Exit codes of ``market check`` (and of every command for an unusable memory):

====  =====================================================================
0     every channel ok or running
1     the memory cannot be used (not SQLite, newer schema, unwritable path)
2     usage error
3     at least one channel stale
4     at least one channel missing: a setup/configuration failure
5     at least one channel failed (the most severe; wins over the others)
====  =====================================================================
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from market_assets.clock import wall_clock_ms
from market_assets.health import HealthReport, Severity, Status, encode_document, explain, read_health
from market_assets.memory import MarketMemoryError, open_memory
from market_assets.memory.runs import memory_created_at_ms
from market_assets.settings import Settings

EXIT_MEMORY_UNUSABLE = 1

app = typer.Typer(
    name="market",
    help="Keep the shared market memory fresh, and tell whether it is.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_STATUS_STYLE = {
    Status.OK: "green",
    Status.RUNNING: "cyan",
    Status.MISSING: "magenta",
    Status.STALE: "yellow",
    Status.FAILED: "bold red",
}


@app.callback()
def _options(
    ctx: typer.Context,
    db: Annotated[
        Path | None,
        typer.Option(help="Market memory file (default: $MARKET_DB, else ~/.local/share/market/market.db)."),
    ] = None,
) -> None:
    ctx.obj = Settings.from_env(db_path=db)


def _settings(ctx: typer.Context) -> Settings:
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings


def _snapshot(settings: Settings) -> tuple[HealthReport, int]:
    """The health report and the memory's age in seconds, evaluated at one instant."""
    now_ms = wall_clock_ms()
    with open_memory(settings.db_path) as conn:
        report = read_health(conn, now_ms)
        memory_age_sec = max(0, (now_ms - memory_created_at_ms(conn)) // 1000)
    return report, memory_age_sec


@app.command()
def status(
    ctx: typer.Context,
    json: Annotated[bool, typer.Option("--json", help="Print the health document the API returns.")] = False,
) -> None:
    """Health of every channel: a table, or with --json the API's document byte for byte."""
    report, memory_age_sec = _snapshot(_settings(ctx))
    if json:
        sys.stdout.buffer.write(encode_document(report.document()) + b"\n")
        return
    table = Table(title=f"market memory {_settings(ctx).db_path}", title_justify="left")
    for column in ("source", "channel", "status", "age", "stale after", "rows"):
        table.add_column(column, justify="right" if column in {"age", "stale after", "rows"} else "left")
    for health in report.channels:
        row = health.row()
        table.add_row(
            row.source,
            row.channel,
            f"[{_STATUS_STYLE[health.status]}]{row.status}[/]",
            "-" if row.age_sec is None else f"{row.age_sec}s",
            f"{row.stale_after_sec}s",
            "-" if row.rows_written is None else str(row.rows_written),
        )
    console = Console()
    console.print(table)
    for health in report.channels:
        if why := explain(health, memory_age_sec):
            style = _STATUS_STYLE[health.status]
            console.print(f"[{style}]{health.channel.key}[/]: {why}", highlight=False)
    verdict = "[green]ok[/]" if report.ok else "[bold red]not ok[/]"
    console.print(f"overall: {verdict}")


@app.command()
def check(ctx: typer.Context) -> None:
    """Exit 0 when every channel is healthy; otherwise one line per bad channel and exit 3/4/5."""
    report, memory_age_sec = _snapshot(_settings(ctx))
    bad = sorted(
        (h for h in report.channels if h.severity > Severity.OK),
        key=lambda h: h.severity,
        reverse=True,
    )
    for health in bad:
        typer.echo(f"{health.channel.key}: {health.status.value}: {explain(health, memory_age_sec)}")
    if report.ok:
        typer.echo(f"ok: {len(report.channels)} channels healthy")
    raise typer.Exit(int(report.severity))


@app.command()
def api(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8000).")] = None,
) -> None:
    """Serve the health API (and, later, the dashboard) with uvicorn."""
    import uvicorn

    from api import create_app

    settings = _settings(ctx)
    with open_memory(settings.db_path):
        pass  # fail fast, with the one-line error, before binding a port
    uvicorn.run(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="info",
    )


def main() -> None:
    try:
        app()
    except MarketMemoryError as exc:
        typer.echo(f"market: {exc}", err=True)
        sys.exit(EXIT_MEMORY_UNUSABLE)
