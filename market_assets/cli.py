"""``market``: the one command for every operation of SPEC §7.

The manual one-offs (``market hyperliquid funding``, ``market polymarket discover``,
``market defillama ingest`` …) run the very function their Dagster asset runs and record the
same ledger run; ``--dry-run`` calls the real sources, prints what would be written and writes
nothing. ``market --offline …`` first starts the loopback replay servers and points every
source at them.

Readers never write: ``market status``, ``market check``, ``market monitor``, ``market api`` and
the reads (``market candles``, ``market features``, ``market funding``) open the memory read-only,
and a dry run writes nothing anywhere. ``market checks`` evaluates the asset checks over a read-only
connection and then records their results, as a Dagster check run does: it writes. Error text that reaches the terminal is one line, with URL
credentials redacted and source text escaped for Rich.

Exit codes of ``market check`` (and of every command for an unusable or busy memory):

====  =====================================================================
0     every channel ok or running
1     the memory cannot be used (no memory at the path for a reader, not SQLite, newer schema,
      unwritable path), or a one-off run failed
2     usage error
3     at least one channel stale
4     at least one channel missing: a setup/configuration failure
5     at least one channel failed (the most severe; wins over the others): its latest run failed,
      or a blocking asset check of it fails (SPEC §12)
75    the memory is busy: another process held its write lock past the busy timeout; try again
      (``EX_TEMPFAIL`` of sysexits.h)
====  =====================================================================
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from market_assets.clock import wall_clock_ms
from market_assets.health import (
    HealthReport,
    Severity,
    Status,
    encode_document,
    explain,
    read_health,
)
from market_assets.ingest.runner import ChannelResult, Collect, Store, run_channel
from market_assets.instance_settings import PROJECT_HOMES, DagsterStorage
from market_assets.ledger import Ledger
from market_assets.memory import (
    MarketMemoryError,
    MemoryBusyError,
    MemoryMissingError,
    open_memory,
)
from market_assets.memory.checks import CheckResult
from market_assets.memory.connection import is_busy
from market_assets.memory.runs import memory_created_at_ms
from market_assets.memory.target import describe
from market_assets.quality.outcome import CheckOutcome, QualityCheck
from market_assets.quality.outcome import Severity as QualitySeverity
from market_assets.redact import RedactingFormatter, redact
from market_assets.registry import (
    DEFILLAMA_MACRO,
    FEATURES,
    FUNDING,
    MAINTENANCE,
    POLYMARKET_DISCOVERY,
    POLYMARKET_SUMMARY,
    REGISTRY,
    Channel,
)
from market_assets.settings import Profile, Settings
from market_assets.sources.endpoints import SourceEndpoints
from market_assets.sources.errors import SourceError
from market_assets.stack_runs import STOP_GRACE_SEC

EXIT_MEMORY_UNUSABLE = 1
EXIT_RUN_FAILED = 1
EXIT_BLOCKING_CHECK_FAILED = 1
"""``market checks``: a blocking asset check fails."""
EXIT_MEMORY_BUSY = 75

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


hyperliquid_app = typer.Typer(help="Hyperliquid one-offs: funding, features, maintenance, a stream probe.", no_args_is_help=True)
polymarket_app = typer.Typer(help="Polymarket one-offs: discovery and summary.", no_args_is_help=True)
defillama_app = typer.Typer(help="DefiLlama one-offs: the macro series.", no_args_is_help=True)
app.add_typer(hyperliquid_app, name="hyperliquid")
app.add_typer(polymarket_app, name="polymarket")
app.add_typer(defillama_app, name="defillama")

DryRun = Annotated[
    bool,
    typer.Option("--dry-run", help="Call the real sources (one line per call on stderr), print what would be written, write nothing anywhere."),
]


@app.callback()
def _options(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            help="Market memory: a SQLite file or a postgresql://user@host/db URL "
            "(default: $MARKET_DB, else ~/.local/share/market/market.db)."
        ),
    ] = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline", envvar="MARKET_OFFLINE", help="Serve every source from the loopback replay of recorded payloads."
        ),
    ] = False,
) -> None:
    settings = Settings.from_env(db_path=db)
    # Dagster refuses a relative DAGSTER_HOME; resolve it once, before anything starts.
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    ctx.obj = _Root(settings, offline)


@dataclass
class _Root:
    """The root command's options; in offline mode the replay starts on first use of settings."""

    settings: Settings
    offline: bool
    replaying: bool = False


@contextmanager
def _replay() -> Iterator[SourceEndpoints]:
    from market_assets.replay import ReplayThread

    with ReplayThread() as servers:
        yield servers.endpoints


def _settings(ctx: typer.Context) -> Settings:
    """Settings for an in-process command; with --offline, pointed at a replay in this process."""
    root = ctx.find_root()
    state = root.obj
    assert isinstance(state, _Root)
    if state.offline and not state.replaying:
        state.settings = dataclasses.replace(state.settings, endpoints=root.with_resource(_replay()))
        state.replaying = True
    return state.settings


def _snapshot(settings: Settings) -> tuple[HealthReport, int]:
    """The health report and the memory's age in seconds, evaluated at one instant."""
    now_ms = wall_clock_ms()
    with open_memory(settings.db_path, readonly=True) as conn:
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
    table = Table(title=f"market memory {escape(describe(_settings(ctx).db_path))}", title_justify="left")
    for column in ("source", "channel", "status", "age", "stale after", "rows", "failing checks"):
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
            ", ".join(_check_label(r) for r in health.failed_checks) or "-",
        )
    console = Console()
    console.print(table)
    for health in report.channels:
        if why := explain(health, memory_age_sec):
            style = _STATUS_STYLE[health.status]
            console.print(f"[{style}]{health.channel.key}[/]: {escape(redact(why))}", highlight=False)
        for result in health.failed_checks:
            if not result.blocking:  # a blocking one is in the line above
                console.print(
                    f"[yellow]{health.channel.key}[/]: check {escape(_check_label(result))} {escape(result.summary)}",
                    highlight=False,
                )
    verdict = "[green]ok[/]" if report.ok else "[bold red]not ok[/]"
    console.print(f"overall: {verdict}")


def _check_label(result: CheckResult) -> str:
    """``ohlc_invariants (blocking)``, ``tvl_jumps (warn)``."""
    return f"{result.check_name} ({'blocking' if result.blocking else result.severity.lower()})"


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
        typer.echo(f"{health.channel.key}: {health.status.value}: {redact(explain(health, memory_age_sec))}")
    if report.ok:
        typer.echo(f"ok: {len(report.channels)} channels healthy")
    raise typer.Exit(int(report.severity))


@app.command("checks")
def checks_command(
    ctx: typer.Context,
    json: Annotated[bool, typer.Option("--json", help="Print every outcome with its problems as JSON.")] = False,
    channel: Annotated[
        str | None, typer.Option("--channel", metavar="SOURCE/NAME", help="Only this channel's checks (hyperliquid/candles …).")
    ] = None,
) -> None:
    """Evaluate the asset checks (SPEC §12) against the memory now and record their results, as a
    Dagster check run does; print a table (or --json). Exit 1 when a blocking check fails."""
    import msgspec

    from market_assets.quality.catalog import CHECKS, evaluate_all, record

    chosen = CHECKS
    if channel is not None:
        keys = [c.key for c in REGISTRY]
        if channel not in keys:
            typer.echo(f"market checks: no channel {channel!r}; the channels are {', '.join(keys)}", err=True)
            raise typer.Exit(2)
        chosen = tuple(c for c in CHECKS if c.channel.key == channel)
    settings = _settings(ctx)
    now_ms = wall_clock_ms()
    # catalog.evaluate_and_record's two halves: evaluated over a read-only connection (no check can
    # write, and a path without a memory is refused before anything is created), then recorded the
    # way every evaluator records, retiring the results of checks the catalog no longer holds.
    with open_memory(settings.db_path, readonly=True) as conn:
        outcomes = evaluate_all(conn, chosen, now_ms)
    with open_memory(settings.db_path) as conn:
        record(conn, outcomes, now_ms)
    blocked = [c.key for c, outcome in outcomes.items() if c.blocking and not outcome.passed]
    if json:
        document = {
            "evaluatedAtMs": now_ms,
            "ok": not blocked,
            "checks": [_outcome_json(c, outcome) for c, outcome in outcomes.items()],
        }
        sys.stdout.buffer.write(msgspec.json.encode(document) + b"\n")
    else:
        _print_checks(outcomes, now_ms)
    if blocked:
        raise typer.Exit(EXIT_BLOCKING_CHECK_FAILED)


def _outcome_json(check: QualityCheck, outcome: CheckOutcome) -> dict[str, object]:
    return {
        "source": check.channel.source,
        "channel": check.channel.name,
        "check": check.name,
        "blocking": check.blocking,
        "severity": check.severity.value,
        "passed": outcome.passed,
        "checked": outcome.checked,
        "failing": outcome.failing,
        "summary": outcome.summary(),
        "problems": [{"subject": p.subject, "atMs": p.at_ms, "what": p.what, "value": p.value} for p in outcome.problems],
        "details": outcome.details,
    }


def _print_checks(outcomes: dict[QualityCheck, CheckOutcome], now_ms: int) -> None:
    table = Table(title=f"asset checks at {_utc(now_ms)}", title_justify="left")
    for column in ("channel", "check", "blocking", "verdict", "checked", "failing", "first problem"):
        table.add_column(column, justify="right" if column in {"checked", "failing"} else "left")
    for check, outcome in outcomes.items():
        if outcome.passed:
            verdict = "[green]passed[/]"
        else:
            verdict = "[bold red]failed[/]" if check.severity is QualitySeverity.ERROR else "[yellow]failed[/]"
        first = outcome.problems[0] if outcome.problems else None
        where = "" if first is None else first.subject + ("" if first.at_ms is None else f" at {_utc(first.at_ms)}") + f": {first.what}"
        table.add_row(
            check.channel.key, check.name, "yes" if check.blocking else "no", verdict,
            f"{outcome.checked:,}", f"{outcome.failing:,}", escape(redact(where)) or "-",
        )
    console = Console()
    console.print(table)
    failed = [c for c, outcome in outcomes.items() if not outcome.passed]
    blocking = sum(c.blocking for c in failed)
    console.print(
        f"{len(outcomes)} checks: {len(outcomes) - len(failed)} passed, {len(failed)} failed ({blocking} blocking); "
        "results recorded",
        highlight=False,
    )


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


@app.command()
def monitor(
    ctx: typer.Context,
    state: Annotated[
        Path | None,
        typer.Option(help="State kept between checks (default: monitor-state.json in $MARKET_HOME, else beside a SQLite memory)."),
    ] = None,
    interval: Annotated[float, typer.Option(min=1, help="Seconds between checks.")] = 60.0,
    once: Annotated[bool, typer.Option("--once", help="Check once and exit (for cron).")] = False,
) -> None:
    """Check health every --interval seconds (or --once, for cron) and notify MARKET_ALERT_WEBHOOK_URL
    (else stdout) per SPEC §6: after two bad checks in a row, when the worst status changes, once resolved.

    Reads the memory only; the webhook URL is never printed with its token."""
    import time
    from functools import partial

    from market_assets import monitor as policy
    from market_assets.notify import AlertDeliveryError, post_alert

    settings = _settings(ctx)
    path = state or settings.home / "monitor-state.json"
    url = settings.alert_webhook_url
    deliver = typer.echo if url is None else partial(post_alert, url)
    try:
        while True:
            report, memory_age_sec = _snapshot(settings)
            try:
                policy.check(path, report, memory_age_sec, deliver)
            except AlertDeliveryError as exc:
                typer.echo(f"market monitor: the alert webhook refused the notification ({exc}); next check retries", err=True)
                if once:
                    raise typer.Exit(EXIT_RUN_FAILED) from None
            except policy.StateFileError as exc:
                typer.echo(f"market monitor: {exc}", err=True)
                raise typer.Exit(EXIT_RUN_FAILED) from None
            if once:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        return


@app.command()
def api(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8000).")] = None,
) -> None:
    """Serve the health contract, the dashboard API, /metrics and the /admin/ingestion page (uvicorn).

    Reads the memory only; until a writer has created it, health answers 503."""
    import uvicorn

    from api import create_app

    settings = _settings(ctx)
    try:
        with open_memory(settings.db_path, readonly=True):
            pass  # fail fast, with the one-line error, before binding a port
    except MemoryMissingError as missing:
        typer.echo(f"market api: {missing} yet; serving 503 until a writer (market up, market stream) creates it", err=True)
    uvicorn.run(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="info",
    )


# ---- reading the memory (SPEC §11): market candles / features / funding ----

_DURATION_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


class ReadFormat(str, Enum):
    TABLE = "table"
    CSV = "csv"
    PARQUET = "parquet"


def _when(text: str | None, now_ms: int, option: str) -> int | None:
    """Epoch ms of ``--since``/``--until``/``--as-of``: a duration back from now (``90m``, ``2d``,
    ``1w``), epoch-ms digits, or a time pandas reads (ISO-8601; naive: UTC)."""
    if text is None:
        return None
    value = text.strip()
    if not value.isascii():
        raise typer.BadParameter(f"{text!r} is neither a duration (90m, 12h, 2d, 1w) nor an ISO-8601 time", param_hint=option)
    if value[:-1].isdigit() and value[-1:] in _DURATION_MS:
        return now_ms - int(value[:-1]) * _DURATION_MS[value[-1]]
    from market_assets.read import parse_time

    try:
        return parse_time(value, option)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither a duration (90m, 12h, 2d, 1w) nor an ISO-8601 time", param_hint=option) from None


Since = Annotated[
    str, typer.Option(help="First bar: a duration back from now (90m, 12h, 2d, 1w), or an ISO-8601 time (naive: UTC).")
]
Until = Annotated[str | None, typer.Option(help="Before this time (same forms as --since); default: now.")]
AsOfOption = Annotated[
    str | None, typer.Option("--as-of", help="Point in time: nothing closed or observed after it (same forms as --since).")
]
FormatOption = Annotated[
    ReadFormat | None,
    typer.Option("--format", help="table on a terminal, csv otherwise; parquet needs --output."),
]
OutputOption = Annotated[Path | None, typer.Option("--output", "-o", help="Write the rows to FILE instead of stdout.")]


def _read(ctx: typer.Context, read: Callable[[Any, int], Any], fmt: ReadFormat | None, output: Path | None, title: str) -> None:
    """Run ``read(reader, now_ms)`` on a read-only reader of the memory and write its Arrow table.

    A bad argument is the reader's one-line ``ValueError`` (it names the argument), exit 2; no
    memory at the path is ``main``'s one line, exit 1, and nothing is created."""
    from market_assets.read import MarketReader
    from market_assets.read_formats import csv_bytes, write_parquet

    chosen = fmt or (ReadFormat.PARQUET if output is not None and output.suffix == ".parquet"
                     else ReadFormat.TABLE if output is None and sys.stdout.isatty() else ReadFormat.CSV)
    command = ctx.command_path
    if chosen is ReadFormat.PARQUET and output is None:
        typer.echo(f"{command}: --format parquet writes a file: give --output FILE", err=True)
        raise typer.Exit(2)
    if chosen is ReadFormat.TABLE and output is not None:
        typer.echo(f"{command}: --format table is for a terminal; write csv or parquet to --output", err=True)
        raise typer.Exit(2)
    with MarketReader(_settings(ctx).db_path) as reader:
        try:
            table = read(reader, wall_clock_ms())
        except ValueError as bad:
            typer.echo(f"{command}: {bad}", err=True)
            raise typer.Exit(2) from None
    if chosen is ReadFormat.PARQUET:
        assert output is not None
        write_parquet(table, output)
    elif chosen is ReadFormat.CSV:
        if output is None:
            sys.stdout.buffer.write(csv_bytes(table))
        else:
            output.write_bytes(csv_bytes(table))
    else:
        _print_table(table, title)
    if output is not None:
        typer.echo(f"{command}: wrote {table.num_rows} rows to {output}", err=True)


def _print_table(table: Any, title: str) -> None:
    """A rich table: times as ``YYYY-MM-DD HH:MM:SS`` UTC, numbers right-aligned."""
    import pyarrow as pa

    from market_assets.read_formats import iso_times

    times = {f.name for f in table.schema if pa.types.is_timestamp(f.type)}
    numeric = {f.name for f in table.schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)}
    view = Table(title=f"{escape(title)}: {table.num_rows} rows, times UTC", title_justify="left")
    for name in table.column_names:
        view.add_column(name, justify="right" if name in numeric else "left")

    def cell(name: str, value: object) -> str:
        if value is None:
            return ""
        if name in times:
            return str(value).replace("T", " ").removesuffix("Z").removesuffix(".000")
        return escape(str(value))

    shown = iso_times(table)
    for values in zip(*(column.to_pylist() for column in shown.columns), strict=True):
        view.add_row(*(cell(name, value) for name, value in zip(table.column_names, values, strict=True)))
    Console().print(view)


@app.command()
def candles(
    ctx: typer.Context,
    coins: Annotated[list[str], typer.Argument(metavar="COIN", help="Coins, as Hyperliquid names them (BTC ETH …).")],
    interval: Annotated[str, typer.Option(help="1m 3m 5m 15m 30m 1h 2h 4h 8h 12h 1d 1w (epoch-aligned; weeks open Thursday).")] = "1h",
    since: Since = "1d",
    until: Until = None,
    as_of: AsOfOption = None,
    include_forming: Annotated[bool, typer.Option("--include-forming", help="Add the bar still open (complete=false).")] = False,
    verified_only: Annotated[bool, typer.Option("--verified-only", help="Only bars whose every minute is confirmed.")] = False,
    fmt: FormatOption = None,
    output: OutputOption = None,
) -> None:
    """Bars of COIN… at --interval from the memory (1-minute rows, rollups, archive), as a table on
    a terminal and CSV to a pipe. Reads only."""

    def read(reader: Any, now_ms: int) -> Any:
        start = _when(since, now_ms, "--since")
        return reader.candles(coins, interval, start, _when(until, now_ms, "--until"), as_of=_when(as_of, now_ms, "--as-of"),
                              include_forming=include_forming, verified_only=verified_only, output="arrow")

    _read(ctx, read, fmt, output, f"{' '.join(coins)} {interval} candles")


@app.command()
def features(
    ctx: typer.Context,
    coins: Annotated[list[str], typer.Argument(metavar="COIN", help="Coins, as Hyperliquid names them (BTC ETH …).")],
    since: Since = "1d",
    until: Until = None,
    columns: Annotated[
        list[str] | None, typer.Option("--column", help="A feature column (rsi_14, ema_200, macd …); repeat; default all.")
    ] = None,
    as_of: AsOfOption = None,
    fmt: FormatOption = None,
    output: OutputOption = None,
) -> None:
    """The 1-minute technical features of COIN… (RSI, Bollinger Bands, SMAs, EMAs, MACD). Reads only."""

    def read(reader: Any, now_ms: int) -> Any:
        return reader.features(coins, _when(since, now_ms, "--since"), _when(until, now_ms, "--until"), columns or None,
                               as_of=_when(as_of, now_ms, "--as-of"), output="arrow")

    _read(ctx, read, fmt, output, f"{' '.join(coins)} features")


@app.command()
def funding(
    ctx: typer.Context,
    coins: Annotated[list[str], typer.Argument(metavar="COIN", help="Coins, as Hyperliquid names them (BTC ETH …).")],
    since: Since = "1d",
    until: Until = None,
    as_of: AsOfOption = None,
    fmt: FormatOption = None,
    output: OutputOption = None,
) -> None:
    """Hourly funding rates of COIN… (settled, and the current hour's estimate). Reads only."""

    def read(reader: Any, now_ms: int) -> Any:
        return reader.funding(coins, _when(since, now_ms, "--since"), _when(until, now_ms, "--until"),
                              as_of=_when(as_of, now_ms, "--as-of"), output="arrow")

    _read(ctx, read, fmt, output, f"{' '.join(coins)} funding")


def _report(result: ChannelResult) -> None:
    console = Console()
    verb = "would write" if result.dry_run else "wrote"
    where = "dry run, nothing written" if result.dry_run else f"ledger run {result.run_id}"
    console.print(f"[bold]{result.channel.key}[/]: {verb} {result.rows_written} rows ({where})", highlight=False)
    for kind, count in result.rows.items():
        console.print(f"  {escape(kind)}: {count}", highlight=False)
    console.print(f"  retries: {result.retries}, throttles: {result.throttles}", highlight=False)
    for key, value in result.details.items():
        console.print(f"  {escape(key)}: {escape(redact(str(value)))}", highlight=False)


@contextmanager
def _progress() -> Iterator[None]:
    """Each source call of the block as one line on stderr (httpx logs every request it sends),
    its URL redacted; stdout keeps only the report."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("  %(message)s"))
    source_calls = logging.getLogger("httpx")
    level = source_calls.level
    source_calls.addHandler(handler)
    source_calls.setLevel(logging.INFO)
    try:
        yield
    finally:
        source_calls.removeHandler(handler)
        source_calls.setLevel(level)


def _run(ctx: typer.Context, channel: Channel, collect: Collect, store: Store, *, dry_run: bool) -> None:
    settings = _settings(ctx)
    intent = "dry run, writes nothing" if dry_run else f"into {describe(settings.db_path)}"
    typer.echo(f"market: {channel.key}: calling the sources ({intent})", err=True)
    try:
        with _progress():
            result = run_channel(channel, settings, collect, store, dry_run=dry_run)
    except SourceError as exc:
        typer.echo(f"market: {channel.key} failed: {redact(str(exc))}", err=True)
        raise typer.Exit(EXIT_RUN_FAILED) from None
    typer.echo(f"market: {channel.key}: done", err=True)
    _report(result)


@app.command()
def up(
    ctx: typer.Context,
    profile: Annotated[Profile, typer.Option(help="local caps coins and search terms for a laptop.")] = Profile.FULL,
    api_port: Annotated[int, typer.Option(help="Port of the health/dashboard API.")] = 8000,
    dagster_port: Annotated[int, typer.Option(help="Port of the Dagster UI.")] = 3000,
    offline: Annotated[
        bool, typer.Option("--offline", help="Also run the replay servers and point every source at them.")
    ] = False,
    log_dir: Annotated[
        Path | None,
        typer.Option(help="Folder of each process's full log (default: logs/ in $MARKET_HOME, else beside a SQLite memory)."),
    ] = None,
    stop_grace: Annotated[
        float, typer.Option(min=0, help="Seconds in-flight Dagster runs get to finish on Ctrl-C before they are canceled.")
    ] = STOP_GRACE_SEC,
    dagster_storage: Annotated[
        DagsterStorage | None,
        typer.Option(
            help="Where Dagster keeps runs, event logs and schedules: sqlite (in DAGSTER_HOME, one host) or "
            "postgres (the database named by MARKET_DAGSTER_POSTGRES_URL, postgresql+psycopg2://…, shared by "
            "several hosts). Default: whatever DAGSTER_HOME's dagster.yaml says; sqlite in an empty folder."
        ),
    ] = None,
) -> None:
    """Run the whole stack (streamer, Dagster webserver + daemon, API; with --offline the replay
    too), restarting a crashed process with backoff, until Ctrl-C/SIGTERM stops it all. Each
    process's output goes to its log file; the console shows one line per failed run."""
    import asyncio

    from market_assets.stack import (
        LOOPBACK,
        DagsterHomeError,
        StackPorts,
        free_port,
        port_in_use,
        prepare_dagster_home,
        stack_children,
    )
    from market_assets.stack_runs import failure_reporter
    from market_assets.supervisor import Supervisor
    from streamer.lock import StreamerLockError, refuse_if_streaming

    state = ctx.find_root().obj
    settings, offline = state.settings, state.offline or offline
    if dagster_storage is DagsterStorage.POSTGRES and settings.dagster_home == PROJECT_HOMES[DagsterStorage.SQLITE]:
        # the project's default home is SQLite's (its dagster.yaml would be refused): use its PostgreSQL twin
        settings = dataclasses.replace(settings, dagster_home=PROJECT_HOMES[DagsterStorage.POSTGRES])
        os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    if api_port == dagster_port:
        typer.echo(f"market up: --api-port and --dagster-port are both {api_port}; give them different ports", err=True)
        raise typer.Exit(1)
    for port, option in ((api_port, "--api-port"), (dagster_port, "--dagster-port")):
        if port_in_use(port):  # else that child would crash-loop for ever behind a banner naming it
            typer.echo(f"market up: port {port} on {LOOPBACK} is in use; choose another with {option} PORT", err=True)
            raise typer.Exit(1)
    logs = (log_dir or settings.home / "logs").absolute()
    try:
        logs.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        typer.echo(f"market up: cannot create the log folder {logs} ({error.strerror}); choose another with --log-dir", err=True)
        raise typer.Exit(1) from None
    try:
        refuse_if_streaming(settings.db_path)  # its own streamer would exit 1 and restart for ever
    except StreamerLockError as error:
        typer.echo(f"market up: {error}", err=True)
        raise typer.Exit(1) from None
    with open_memory(settings.db_path):
        pass  # create and migrate the memory once, before four processes race to
    try:
        if prepare_dagster_home(settings.dagster_home, storage=dagster_storage):  # the same, for Dagster's own storage
            typer.echo(f"market up: installed the project's dagster.yaml into {settings.dagster_home}")
    except DagsterHomeError as error:
        typer.echo(f"market up: {error}", err=True)
        raise typer.Exit(1) from None
    ports = StackPorts(api_port, dagster_port, free_port(), free_port())
    children = stack_children(
        settings, profile=profile, offline=offline, ports=ports, stop_grace_sec=stop_grace, started_at=datetime.now(UTC)
    )
    dagster_url = f"http://{LOOPBACK}:{dagster_port}"
    typer.echo(
        f"market up: memory {describe(settings.db_path)}; API http://{LOOPBACK}:{api_port}/admin/ingestion; "
        f"Dagster {dagster_url}; profile {profile.value}{'; offline' if offline else ''}; logs {logs}"
    )
    reporter = failure_reporter(settings.dagster_home, log_file=logs / "dagster-daemon.log", ui_url=dagster_url)
    raise typer.Exit(asyncio.run(Supervisor(children, log_dir=logs, background=[reporter]).run()))


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def replay(ctx: typer.Context) -> None:
    """Serve the recorded payloads on loopback until Ctrl-C and print their URLs (market replay --help: its options).

    Point MARKET_REPLAY_HTTP/WS at the URLs it prints."""
    from market_assets.replay.__main__ import main as serve

    raise typer.Exit(serve(ctx.args))


@app.command()
def stream(
    ctx: typer.Context,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            metavar="I/N",
            help="Follow only shard I of N (e.g. 2/3): a stable share of the coins (rendezvous hashing on the "
            "coin name), so N streamers on N hosts each spend their own IP's Hyperliquid budget. Each shard "
            "records its own ledger windows; health is ok only when every shard reports. Default: "
            "MARKET_STREAM_SHARD, else every coin.",
        ),
    ] = None,
) -> None:
    """Stream Hyperliquid 1-minute candles until Ctrl-C/SIGTERM (the streamer process)."""
    from streamer.cli import run_stream

    raise typer.Exit(run_stream(_settings(ctx), shard=shard))


@hyperliquid_app.command("ohlcv")
def hyperliquid_ohlcv(
    ctx: typer.Context,
    duration_ms: Annotated[int, typer.Option(min=1, help="How long to stream, in milliseconds.")] = 70_000,
) -> None:
    """A short live stream probe that writes real rows and ledger windows, then summarises."""
    from streamer.cli import run_probe

    raise typer.Exit(run_probe(_settings(ctx), duration_ms))


@hyperliquid_app.command("funding")
def hyperliquid_funding(ctx: typer.Context, dry_run: DryRun = False) -> None:
    """Fetch funding now: the perp universe, the current hour and missing settled hours."""
    from market_assets.ingest import funding

    _run(ctx, FUNDING, funding.collect, funding.store, dry_run=dry_run)


@hyperliquid_app.command("features")
def hyperliquid_features(ctx: typer.Context) -> None:
    """Compute the technical features of every coin with new closed candles."""
    from market_assets.indicators import run_features

    with open_memory(_settings(ctx).db_path) as conn:
        result = run_features(conn, Ledger(conn))
    typer.echo(f"{FEATURES.key}: wrote {result.rows_written} rows for {result.coins} coins (ledger run {result.run_id})")


@hyperliquid_app.command("maintain")
def hyperliquid_maintain(ctx: typer.Context) -> None:
    """Roll closed candles up, prune past retention behind the rollups, checkpoint the WAL."""
    from market_assets.maintenance import run_maintenance

    with open_memory(_settings(ctx).db_path) as conn:
        result = run_maintenance(conn, Ledger(conn))
    typer.echo(f"{MAINTENANCE.key}: wrote {result.rows_written} rollup rows (ledger run {result.run_id})")
    for key, value in result.metadata().items():
        typer.echo(f"  {key}: {value}")


@polymarket_app.command("discover")
def polymarket_discover(
    ctx: typer.Context,
    dry_run: DryRun = False,
    max_search_terms: Annotated[int | None, typer.Option(min=1, help="Search only the first N terms.")] = None,
) -> None:
    """Find markets by the configured search terms and track them."""
    from market_assets.ingest import polymarket

    if max_search_terms is not None:
        state = ctx.find_root().obj
        state.settings = dataclasses.replace(state.settings, search_terms=state.settings.search_terms[:max_search_terms])
    _run(ctx, POLYMARKET_DISCOVERY, polymarket.collect_discovery, polymarket.store_discovery, dry_run=dry_run)


@polymarket_app.command("summary")
def polymarket_summary(ctx: typer.Context, dry_run: DryRun = False) -> None:
    """Refresh the compact row of every tracked market."""
    from market_assets.ingest import polymarket

    _run(ctx, POLYMARKET_SUMMARY, polymarket.collect_summary, polymarket.store_summary, dry_run=dry_run)


@defillama_app.command("ingest")
def defillama_ingest(ctx: typer.Context, dry_run: DryRun = False) -> None:
    """Fetch DefiLlama's TVL, stablecoin supply, DEX volume and fees."""
    from market_assets.ingest import defillama

    _run(ctx, DEFILLAMA_MACRO, defillama.collect, defillama.store, dry_run=dry_run)


def main() -> None:
    try:
        app()
    except MemoryBusyError as exc:
        typer.echo(f"market: {exc}", err=True)
        sys.exit(EXIT_MEMORY_BUSY)
    except MarketMemoryError as exc:
        typer.echo(f"market: {exc}", err=True)
        sys.exit(EXIT_MEMORY_UNUSABLE)
    except Exception as exc:  # sqlite3's or psycopg's lock error
        if not is_busy(exc):
            raise
        typer.echo(f"market: the market memory is busy ({exc}): another process holds its write lock; try again", err=True)
        sys.exit(EXIT_MEMORY_BUSY)
