"""``/admin/ingestion``: the dashboard as one server-rendered page a person reads at a glance.

Unlinked from any navigation and left out of the OpenAPI document, like the runbook's page.
Every value from a source or a run (a market question inside an error, a chain name, a search
term) goes through :func:`_text`, and the page carries a Content-Security-Policy that allows no
script at all, so hostile text is shown as text and can never run. It reloads itself with a
``<meta http-equiv="refresh">``, which needs no script either.

The pictures (:mod:`api.admin_pictures`) are inline SVG drawn here: per channel a sparkline of
the rows each run of the last 24 hours wrote and one of the data lag each left, failed runs dotted
red; below the table, the candles of each listed coin over the last 24 hours, minute by minute.
That strip needs a count of every candle of the day (200 coins: ~40-150 ms), so it is kept per
app, like the dashboard's volumes, and redrawn after a response once a newer minute has ended. Each
channel's raw counters fold into a ``<details>``; its failing asset checks stay in sight.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

from litestar import Controller, Response, get
from litestar.background_tasks import BackgroundTasks
from litestar.di import NamedDependency
from litestar.enums import MediaType

from api.admin_pictures import (
    COLUMNS,
    coverage_legend,
    coverage_strip,
    duration,
    lag_sparkline,
    rows_sparkline,
)
from api.admin_pictures import text as _text
from api.dashboard import current_dashboard
from api.dependencies import SettingsDependency
from api.errors import HTML_ERRORS
from api.kept_read import KeptRead
from api.readers import Readers
from api.volume_cache import VolumeCache
from market_assets.clock import Clock
from market_assets.dashboard import (
    DashboardDocument,
    DashboardRow,
    RunSummary,
    ShardRow,
)
from market_assets.memory.admin_history import RunBucket, Segment, coverage, run_buckets
from market_assets.memory.connection import MemoryConnection
from market_assets.registry import CANDLES, REGISTRY

RELOAD_EVERY_SEC = 30
"""How often the open page reloads itself."""

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

DAY_MS = 86_400_000
MINUTE_MS = 60_000

_STYLE = """
body { font: 13px/1.35 system-ui, sans-serif; margin: 1rem 1.5rem; color: #1d1d1f; background: #fafafa; }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; } h2 { font-size: 1.05rem; margin: 1.2rem 0 .3rem; }
.meta { color: #555; margin: 0 0 1rem; }
.overall { display: inline-block; padding: .15rem .6rem; border-radius: 4px; font-weight: 600; color: #fff; }
.overall.ok { background: #1e8e3e; } .overall.not-ok { background: #c5221f; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .3rem .4rem; border-bottom: 1px solid #e3e3e3; vertical-align: top; }
th { font-size: .72rem; text-transform: uppercase; color: #555; }
td.pic { padding: .2rem .3rem; line-height: 0; } .source { display: block; font-weight: 400; color: #666; font-size: .75rem; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.channel > td:first-child { border-left: 6px solid #999; font-weight: 600; }
.status { display: inline-block; padding: .05rem .5rem; border-radius: 3px; color: #fff; font-weight: 600; }
.status-ok { background: #1e8e3e; } .status-running { background: #1a73e8; }
.status-stale { background: #e37400; } .status-missing { background: #a142f4; } .status-failed { background: #c5221f; }
tr.row-ok > td:first-child { border-left-color: #1e8e3e; } tr.row-running > td:first-child { border-left-color: #1a73e8; }
tr.row-stale > td:first-child { border-left-color: #e37400; } tr.row-missing > td:first-child { border-left-color: #a142f4; }
tr.row-failed > td:first-child { border-left-color: #c5221f; }
.warning { display: inline-block; margin: 0 .25rem .2rem 0; padding: 0 .4rem; border-radius: 3px;
  background: #fce8b2; color: #5f3b00; font-size: .85rem; }
tr.details td { border-bottom: 2px solid #d0d0d0; color: #444; font-size: .8rem; padding-top: 0; }
details > summary { cursor: pointer; color: #555; } details[open] > summary { margin-bottom: .2rem; }
.failure { white-space: pre-wrap; color: #a50e0e; margin: .2rem 0; font-family: ui-monospace, monospace;
  max-height: 6em; overflow: auto; }
.check-failed { color: #a50e0e; margin: .1rem 0; } .check-failed b { font-family: ui-monospace, monospace; }
.none { color: #999; }
.legend { margin: .2rem 0; } .legend-item { margin-right: 1rem; white-space: nowrap; }
.legend-item svg { vertical-align: -1px; } .troubled { color: #555; }
svg text.coin, svg text.tick { fill: #444; }
"""

_COLUMNS = (
    "channel", "status", "run age", "data lag", "coverage", "rows 1 h", "rows 24 h", "total rows",
    "unverified / queued", "rows per run, 24 h", "data lag per run, 24 h", "warnings",
)


class Coverage(NamedTuple):
    """The candles' minutes of each listed coin over ``[start_ms, end_ms)``, and their legend
    and strip drawn (once per read: half the page's drawing at 200 coins)."""

    start_ms: int
    end_ms: int
    coins: dict[str, list[Segment]]
    drawn: str


def read_coverage(conn: MemoryConnection, now_ms: int) -> Coverage:
    """The 24 hours of whole minutes before ``now_ms``'s minute."""
    end = now_ms - now_ms % MINUTE_MS
    coins = coverage(conn, CANDLES.data.scope["interval"], MINUTE_MS, end - DAY_MS, end)
    return Coverage(end - DAY_MS, end, coins, coverage_legend(coins) + coverage_strip(coins, end - DAY_MS, end))


class CoverageCache(KeptRead[Coverage]):
    """The coverage strip's data, read again after a response once a newer minute has ended."""

    def __init__(self) -> None:
        super().__init__(read_coverage, lambda kept, now_ms: kept.end_ms < now_ms - now_ms % MINUTE_MS)


class Pictures(NamedTuple):
    """What the page draws beside the dashboard document."""

    runs: dict[tuple[str, str], list[RunBucket]]
    coverage: Coverage


class AdminPageController(Controller):
    include_in_schema = False
    exception_handlers = HTML_ERRORS  # a person's browser: errors as a page, sent as text/html

    @get("/admin/ingestion", sync_to_thread=True, media_type=MediaType.HTML)
    def ingestion(
        self,
        settings: SettingsDependency,
        readers: NamedDependency[Readers],
        clock: NamedDependency[Clock],
        volumes: NamedDependency[VolumeCache],
        coverage: NamedDependency[CoverageCache],
    ) -> Response[str]:
        document, recount = current_dashboard(settings, readers, clock, volumes)
        cache = coverage
        now_ms = document.generated_at_ms
        with readers.connection() as conn:
            runs = run_buckets(conn, [(c.source, c.name) for c in REGISTRY], now_ms - DAY_MS, now_ms, COLUMNS)
            kept = cache.value(conn, now_ms)
        tasks = [task for task in (recount, cache.refresh_task(readers, clock, now_ms)) if task is not None]
        return Response(
            render_page(document, Pictures(runs, kept)), media_type=MediaType.HTML, headers=HEADERS,
            background=BackgroundTasks(tasks) if tasks else None,
        )


def render_page(document: DashboardDocument, pictures: Pictures) -> str:
    overall = "ok" if document.ok else "not ok"
    counted_ago = duration((document.generated_at_ms - document.volumes_counted_at_ms) // 1000)
    rows = "".join(_channel_rows(row, pictures) for row in document.rows)
    head = "".join(f"<th>{_text(column)}</th>" for column in _COLUMNS)
    strip = pictures.coverage
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta http-equiv=\"refresh\" content=\"{RELOAD_EVERY_SEC}\">"
        "<meta name=\"robots\" content=\"noindex, nofollow\">"
        "<title>Ingestion · market memory</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>Ingestion</h1>"
        f"<p class=\"meta\"><span class=\"overall {'ok' if document.ok else 'not-ok'}\" id=\"overall\">{overall}</span> "
        f"as of {_text(_utc(document.generated_at_ms))}; total and 24 h rows: data older than an hour counted "
        f"{counted_ago} earlier, newer data now; "
        f"reloads every {RELOAD_EVERY_SEC} s</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        f"<section id=\"coverage\"><h2>Candles of each listed coin, last 24 h</h2>"
        f"<p class=\"meta\">each row a coin, each minute in one state; hover for the coin and the minutes; "
        f"as of {_text(_utc(strip.end_ms))}, redrawn each minute</p>"
        f"{strip.drawn}</section>"
        "</body></html>\n"
    )


def _channel_rows(row: DashboardRow, pictures: Pictures) -> str:
    key = f"{row.source}/{row.channel}"
    runs = pictures.runs.get((row.source, row.channel), [])
    status = row.status
    warnings = "".join(
        f"<span class=\"warning\" data-code=\"{_text(code)}\" title=\"{_text(row.warning_details[code])}\">{_text(code)}</span>"
        for code in row.warnings
    ) or "<span class=\"none\">none</span>"
    coverage = "—" if row.coverage is None else f"{row.coverage:.0%} of {row.expected_subjects}"
    unverified = "—" if row.unverified_minutes is None else f"{row.unverified_minutes:,} / {row.repair_queue or 0:,}"
    cells = (
        f"<td><span class=\"source\">{_text(row.source)}</span>{_text(row.channel)}</td>"
        f"<td><span class=\"status status-{_text(status)}\">{_text(status)}</span></td>"
        f"<td class=\"num\">{_seconds(row.age_sec)}</td>"
        f"<td class=\"num\">{_seconds(row.data_lag_sec)}</td>"
        f"<td class=\"num\">{_text(coverage)}</td>"
        f"<td class=\"num\">{row.rows_last_hour:,}</td>"
        f"<td class=\"num\">{row.rows_last_24h:,}</td>"
        f"<td class=\"num\">{row.total_rows:,}</td>"
        f"<td class=\"num unverified\">{_text(unverified)}</td>"
        f"<td class=\"pic\">{rows_sparkline(runs)}</td>"
        f"<td class=\"pic\">{lag_sparkline(runs, row.thresholds.data_lag_sec)}</td>"
        f"<td class=\"warnings\">{warnings}</td>"
    )
    return (
        f"<tr class=\"channel row-{_text(status)}\" data-channel=\"{_text(key)}\" data-status=\"{_text(status)}\">{cells}</tr>"
        f"<tr class=\"details\" data-channel=\"{_text(key)}\"><td colspan=\"{len(_COLUMNS)}\">{_details(row)}</td></tr>"
    )


def _last_run(run: RunSummary | None) -> str:
    if run is None:
        return "<span class=\"none\">never</span>"
    took = "" if run.duration_sec is None else f", took {run.duration_sec:.1f} s"
    return f"{_text(run.status)}, {run.rows_written:,} rows, {duration(run.age_sec)} ago{took}"


def _shard_line(shard: ShardRow) -> str:
    coins = "coins unknown" if shard.coins is None else f"{shard.coins:,} coins"
    window = "no window in the last hour" if shard.window_age_sec is None else f"last window {duration(shard.window_age_sec)} ago"
    why = f" — {_text(shard.detail)}" if shard.detail else ""
    return (
        f"<div class=\"shard\" data-shard=\"{_text(shard.shard)}\" data-status=\"{_text(shard.status)}\">"
        f"shard <b>{_text(shard.shard)}</b>: <span class=\"status status-{_text(shard.status)}\">{_text(shard.status)}</span>, "
        f"{coins}, {window}{why}</div>"
    )


def _details(row: DashboardRow) -> str:
    """In sight: the streamer shards, the failing checks and the last failure; folded: everything
    else, counters too."""
    shown = "".join(_shard_line(shard) for shard in row.shards)
    shown += "".join(
        f"<div class=\"check-failed\" data-check=\"{_text(check.name)}\">✗ <b>{_text(check.name)}</b>"
        f"{' (blocking)' if check.blocking else ''}: {_text(check.summary)}</div>"
        for check in sorted(row.checks, key=lambda c: (not c.blocking, c.name)) if not check.passed
    )
    failure = row.last_failure
    if failure is not None:
        shown += (
            f"<div class=\"failure\">last failure {duration(failure.age_sec)} ago (run {failure.run_id}): "
            f"{_text(failure.error or 'no error text recorded')}</div>"
        )
    parts = []
    if row.latest_data_ms is not None:
        parts.append(f"newest data {_text(_utc(row.latest_data_ms))}")
    if row.last_success_ms is not None:
        parts.append(f"last success {_text(_utc(row.last_success_ms))}")
    parts.append(f"subjects {row.subjects_last_hour:,} in 1 h / {row.subjects_last_24h:,} in 24 h")
    if row.unverified_minutes is not None:
        parts.append(f"<span class=\"fidelity\">{_fidelity(row)}</span>")
    parts.extend(f"{_text(code)}: {_text(row.warning_details[code])}" for code in row.warnings)
    parts.extend(
        f"check {_text(check.name)} {'passed' if check.passed else 'failed'} {_text(_utc(check.evaluated_at_ms))}: "
        f"{_text(check.summary)}"
        for check in row.checks
    )
    metadata = [f"{_text(k)}={_text(_number(v))}" for k, v in sorted(row.counters.items())]
    metadata += [f"{_text(k)}={_text(v)}" for k, v in sorted(row.details.items())]
    if metadata:
        parts.append("last run: " + ", ".join(metadata))
    passed = sum(check.passed for check in row.checks)
    checks = f"checks {passed} of {len(row.checks)} passed" if row.checks else "no checks evaluated"
    summary = (
        f"last run {_last_run(row.last_run)} · {row.recent_failures} failures and {row.recent_retries} retries / "
        f"{row.recent_throttles} throttles in {duration(row.recent_window_sec)} · {checks}"
    )
    folded = "<br>".join(parts)
    return f"{shown}<details><summary>{summary}</summary>{folded}</details>"


def _fidelity(row: DashboardRow) -> str:
    """The candles row's unverified, queued, no-trade, corrected minutes and rejected frames."""
    oldest = "" if row.oldest_unverified_ms is None else f" (oldest opened {_text(_utc(row.oldest_unverified_ms))})"
    rejected = ", ".join(f"{_text(reason)} {count:,}" for reason, count in sorted((row.rejected_frames or {}).items()))
    return (
        f"24 h: {row.unverified_minutes:,} unverified minutes{oldest}, {row.no_trade_minutes or 0:,} no-trade minutes; "
        f"repair queue {row.repair_queue or 0:,}; last hour: {row.corrected_minutes or 0:,} corrected minutes, "
        f"rejected frames {rejected or 'none'}"
    )


def _seconds(value: int | None) -> str:
    return "—" if value is None else duration(value)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
