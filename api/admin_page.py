"""``/admin/ingestion``: the dashboard as one server-rendered page a person reads at a glance.

Unlinked from any navigation and left out of the OpenAPI document, like the runbook's page.
Every value from a source or a run (a market question inside an error, a chain name, a search
term) goes through :func:`_text`, and the page carries a Content-Security-Policy that allows no
script at all, so hostile text is shown as text and can never run. It reloads itself with a
``<meta http-equiv="refresh">``, which needs no script either.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.enums import MediaType

from api.dashboard import current_dashboard
from api.errors import HTML_ERRORS
from api.readers import Readers
from api.volume_cache import VolumeCache
from market_assets.clock import Clock
from market_assets.dashboard import DashboardDocument, DashboardRow, RunSummary
from market_assets.settings import Settings

RELOAD_EVERY_SEC = 30
"""How often the open page reloads itself."""

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d1d1f; background: #fafafa; }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
.meta { color: #555; margin: 0 0 1rem; }
.overall { display: inline-block; padding: .15rem .6rem; border-radius: 4px; font-weight: 600; color: #fff; }
.overall.ok { background: #1e8e3e; } .overall.not-ok { background: #c5221f; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #e3e3e3; vertical-align: top; }
th { font-size: .8rem; text-transform: uppercase; color: #555; }
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
tr.details td { border-bottom: 2px solid #d0d0d0; color: #444; font-size: .85rem; }
.failure { white-space: pre-wrap; color: #a50e0e; margin: .2rem 0; font-family: ui-monospace, monospace; }
.none { color: #999; }
"""

_COLUMNS = (
    "channel", "status", "run age", "data lag", "coverage", "rows 1 h", "rows 24 h", "total rows",
    "subjects 1 h / 24 h", "last run", "failures", "retries / throttles", "unverified / queued", "warnings",
)


class AdminPageController(Controller):
    include_in_schema = False
    exception_handlers = HTML_ERRORS  # a person's browser: errors as a page, sent as text/html

    @get("/admin/ingestion", sync_to_thread=True, media_type=MediaType.HTML)
    def ingestion(
        self,
        settings: NamedDependency[Settings],
        readers: NamedDependency[Readers],
        clock: NamedDependency[Clock],
        volumes: NamedDependency[VolumeCache],
    ) -> Response[str]:
        document, recount = current_dashboard(settings, readers, clock, volumes)
        return Response(render_page(document), media_type=MediaType.HTML, headers=HEADERS, background=recount)


def render_page(document: DashboardDocument) -> str:
    overall = "ok" if document.ok else "not ok"
    counted_ago = _duration((document.generated_at_ms - document.volumes_counted_at_ms) // 1000)
    rows = "".join(_channel_rows(row) for row in document.rows)
    head = "".join(f"<th>{_text(column)}</th>" for column in _COLUMNS)
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
        "</body></html>\n"
    )


def _channel_rows(row: DashboardRow) -> str:
    key = f"{row.source}/{row.channel}"
    status = row.status
    warnings = "".join(
        f"<span class=\"warning\" data-code=\"{_text(code)}\" title=\"{_text(row.warning_details[code])}\">{_text(code)}</span>"
        for code in row.warnings
    ) or "<span class=\"none\">none</span>"
    coverage = "—" if row.coverage is None else f"{row.coverage:.0%} of {row.expected_subjects}"
    unverified = "—" if row.unverified_minutes is None else f"{row.unverified_minutes:,} / {row.repair_queue or 0:,}"
    cells = (
        f"<td>{_text(key)}</td>"
        f"<td><span class=\"status status-{_text(status)}\">{_text(status)}</span></td>"
        f"<td class=\"num\">{_seconds(row.age_sec)}</td>"
        f"<td class=\"num\">{_seconds(row.data_lag_sec)}</td>"
        f"<td class=\"num\">{_text(coverage)}</td>"
        f"<td class=\"num\">{row.rows_last_hour:,}</td>"
        f"<td class=\"num\">{row.rows_last_24h:,}</td>"
        f"<td class=\"num\">{row.total_rows:,}</td>"
        f"<td class=\"num\">{row.subjects_last_hour:,} / {row.subjects_last_24h:,}</td>"
        f"<td>{_last_run(row.last_run)}</td>"
        f"<td class=\"num\">{row.recent_failures} in {_duration(row.recent_window_sec)}</td>"
        f"<td class=\"num\">{row.recent_retries} / {row.recent_throttles}</td>"
        f"<td class=\"num unverified\">{_text(unverified)}</td>"
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
    return f"{_text(run.status)}, {run.rows_written:,} rows, {_duration(run.age_sec)} ago{took}"


def _details(row: DashboardRow) -> str:
    parts = []
    if row.latest_data_ms is not None:
        parts.append(f"newest data {_text(_utc(row.latest_data_ms))}")
    if row.last_success_ms is not None:
        parts.append(f"last success {_text(_utc(row.last_success_ms))}")
    if row.unverified_minutes is not None:
        parts.append(f"<span class=\"fidelity\">{_fidelity(row)}</span>")
    parts.extend(f"{_text(code)}: {_text(row.warning_details[code])}" for code in row.warnings)
    metadata = [f"{_text(k)}={_text(_number(v))}" for k, v in sorted(row.counters.items())]
    metadata += [f"{_text(k)}={_text(v)}" for k, v in sorted(row.details.items())]
    if metadata:
        parts.append("last run: " + ", ".join(metadata))
    text = " · ".join(parts) or "<span class=\"none\">no data yet</span>"
    failure = row.last_failure
    if failure is not None:
        text += (
            f"<div class=\"failure\">last failure {_duration(failure.age_sec)} ago (run {failure.run_id}): "
            f"{_text(failure.error or 'no error text recorded')}</div>"
        )
    return text


def _fidelity(row: DashboardRow) -> str:
    """The candles row's unverified, queued, no-trade, corrected minutes and rejected frames."""
    oldest = "" if row.oldest_unverified_ms is None else f" (oldest opened {_text(_utc(row.oldest_unverified_ms))})"
    rejected = ", ".join(f"{_text(reason)} {count:,}" for reason, count in sorted((row.rejected_frames or {}).items()))
    return (
        f"24 h: {row.unverified_minutes:,} unverified minutes{oldest}, {row.no_trade_minutes or 0:,} no-trade minutes; "
        f"repair queue {row.repair_queue or 0:,}; last hour: {row.corrected_minutes or 0:,} corrected minutes, "
        f"rejected frames {rejected or 'none'}"
    )


def _text(value: object) -> str:
    """Every interpolated value goes through here: HTML-escaped, quotes included."""
    return html.escape(str(value), quote=True)


def _seconds(value: int | None) -> str:
    return "—" if value is None else _duration(value)


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
