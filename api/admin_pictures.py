"""The admin page's pictures as inline SVG text: pure functions of the data and the clock.

No script, no external reference, nothing but elements and presentation attributes, so they
draw under the page's ``default-src 'none'`` policy. Every value from the memory goes through
:func:`text`. Every mark carries a class (and the strips' rects a ``data-state``), so a
browser test counts what was drawn:

* ``rows_sparkline``: one bar (``line.bar``) per finished run of the last 24 hours at its end,
  as tall as the rows it wrote; a failed run is a red bar with a red dot above it
  (``circle.mark-failed``, its time in a ``<title>``).
* ``lag_sparkline``: one bar per run with a recorded newest data timestamp, as tall as the data
  lag when it ended, orange past the channel's ``data_lag`` threshold (``line.bar.over``); the
  threshold is a dashed line (``line.threshold``) once there is a bar; failed runs are dotted
  as above.
* ``coverage_strip``: one row per coin, one ``rect.seg`` per run of minutes in one state.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from market_assets.memory.admin_history import MinuteState, RunPoint, Segment

DAY_MS = 86_400_000
SPARK_WIDTH = 150
SPARK_HEIGHT = 26
STRIP_WIDTH = 1100
STRIP_LABEL = 64
"""Pixels left of the strip for the coin names."""
ROW_LABELLED = 11
"""A coin's row height when the names fit beside it (up to ``LABELLED_COINS`` coins)."""
ROW_DENSE = 3
LABELLED_COINS = 40

FAILED = "#c5221f"
OVER = "#e37400"
BAR = "#5f6368"

STATE_COLOURS: Mapping[MinuteState, str] = {
    # Okabe-Ito hues, told apart by the common colour blindnesses and by lightness.
    MinuteState.CONFIRMED: "#009e73",
    MinuteState.UNVERIFIED: "#e69f00",
    MinuteState.NO_TRADES: "#56b4e9",
    MinuteState.MISSING: "#d55e00",
    MinuteState.UNFILLABLE: "#222222",
}
STATE_LABELS: Mapping[MinuteState, str] = {
    MinuteState.CONFIRMED: "confirmed",
    MinuteState.UNVERIFIED: "unverified",
    MinuteState.NO_TRADES: "no trades",
    MinuteState.MISSING: "missing",
    MinuteState.UNFILLABLE: "unfillable",
}


def text(value: object) -> str:
    """Every interpolated value goes through here: HTML-escaped, quotes included."""
    return html.escape(str(value), quote=True)


def rows_sparkline(runs: Sequence[RunPoint], now_ms: int) -> str:
    """Rows written per run over the 24 hours before ``now_ms``."""
    top = max((run.rows_written for run in runs), default=0) or 1
    failed = sum(run.failed for run in runs)
    marks = []
    for run in runs:
        x = _x(run.finished_at_ms, now_ms)
        height = (SPARK_HEIGHT - 6) * run.rows_written / top
        colour = FAILED if run.failed else BAR
        marks.append(_bar(x, height, colour, "bar failed" if run.failed else "bar", _stroke(len(runs))))
    marks.extend(_failure(run, now_ms, f"{run.rows_written:,} rows") for run in runs if run.failed)
    summary = f"rows per run, last 24 h: {len(runs)} runs, {failed} failed, at most {top:,} rows"
    return _spark("rows", summary, len(runs), "".join(marks))


def lag_sparkline(runs: Sequence[RunPoint], now_ms: int, threshold_sec: int) -> str:
    """Data lag when each run ended, against the channel's ``data_lag`` threshold."""
    lags = [(run, max(0, run.finished_at_ms - run.data_latest_ms) // 1000) for run in runs if run.data_latest_ms is not None]
    top = max(max((lag for _, lag in lags), default=0), threshold_sec * 5 // 4)
    scale = (SPARK_HEIGHT - 6) / top
    marks = []
    for run, lag in lags:
        over = lag > threshold_sec
        marks.append(_bar(_x(run.finished_at_ms, now_ms), lag * scale, OVER if over else BAR, "bar over" if over else "bar",
                          _stroke(len(lags))))
    marks.extend(_failure(run, now_ms, f"data lag {duration(lag)}") for run, lag in lags if run.failed)
    y = SPARK_HEIGHT - 1 - threshold_sec * scale
    if lags:
        marks.append(
            f'<line class="threshold" x1="0" x2="{SPARK_WIDTH}" y1="{y:.1f}" y2="{y:.1f}" stroke="{OVER}" '
            f'stroke-dasharray="3 2" stroke-width="1"><title>data_lag warning past {text(duration(threshold_sec))}</title></line>'
        )
    worst = max((lag for _, lag in lags), default=None)
    summary = (
        f"data lag per run, last 24 h: {len(lags)} runs with a recorded data timestamp"
        + ("" if worst is None else f", at most {duration(worst)}")
        + f"; warning past {duration(threshold_sec)}"
    )
    return _spark("lag", summary, len(lags), "".join(marks), "no data timestamps recorded" if runs else "no runs in 24 h")


def coverage_strip(coins: Mapping[str, Sequence[Segment]], start_ms: int, end_ms: int) -> str:
    """One row per coin, one rect per segment, over ``[start_ms, end_ms)``; hour ticks below."""
    labelled = len(coins) <= LABELLED_COINS
    row = ROW_LABELLED if labelled else ROW_DENSE
    span = end_ms - start_ms
    parts = []
    for i, (coin, segments) in enumerate(coins.items()):
        y = i * row
        if labelled:
            parts.append(f'<text class="coin" x="{STRIP_LABEL - 4}" y="{y + row - 2}" text-anchor="end">{text(coin)}</text>')
        for segment in segments:
            x = STRIP_LABEL + STRIP_WIDTH * (segment.start_ms - start_ms) / span
            width = max(1.0, STRIP_WIDTH * (segment.end_ms - segment.start_ms) / span)
            minutes = (segment.end_ms - segment.start_ms) // 60_000
            title = (f"{coin}: {STATE_LABELS[segment.state]}, {_clock(segment.start_ms)}–{_clock(segment.end_ms)} UTC "
                     f"({minutes:,} min)")
            parts.append(
                f'<rect class="seg seg-{segment.state.value}" data-coin="{text(coin)}" data-state="{segment.state.value}" '
                f'x="{x:.2f}" y="{y}" '
                f'width="{width:.2f}" height="{row - 1 if labelled else row}" fill="{STATE_COLOURS[segment.state]}">'
                f"<title>{text(title)}</title></rect>"
            )
    height = len(coins) * row
    for hours_ago in range(24, -1, -6):
        x = STRIP_LABEL + STRIP_WIDTH * (1 - hours_ago * 3_600_000 / span)
        label = "now" if hours_ago == 0 else f"−{hours_ago} h"
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height + 3}" stroke="#9aa0a6" stroke-width="0.5"/>'
                     f'<text class="tick" x="{x:.1f}" y="{height + 13}" text-anchor="middle">{text(label)}</text>')
    return (
        f'<svg class="coverage" xmlns="http://www.w3.org/2000/svg" width="{STRIP_LABEL + STRIP_WIDTH + 16}" '
        f'height="{height + 16}" role="img" data-coins="{len(coins)}" font-size="9" font-family="system-ui, sans-serif">'
        f"<title>candles per coin, {text(_clock(start_ms))}–{text(_clock(end_ms))} UTC</title>{''.join(parts)}</svg>"
    )


def coverage_legend(coins: Mapping[str, Sequence[Segment]]) -> str:
    """Each state's colour and its minutes over every coin, and the coins with minutes lost
    or still missing."""
    minutes = dict.fromkeys(MinuteState, 0)
    troubled = []
    for coin, segments in coins.items():
        for segment in segments:
            minutes[segment.state] += (segment.end_ms - segment.start_ms) // 60_000
        if any(s.state in (MinuteState.MISSING, MinuteState.UNFILLABLE) for s in segments):
            troubled.append(coin)
    items = "".join(
        f'<span class="legend-item" data-state="{state.value}"><svg width="12" height="12" aria-hidden="true">'
        f'<rect width="12" height="12" fill="{STATE_COLOURS[state]}"/></svg> {text(STATE_LABELS[state])} '
        f"<b>{minutes[state]:,}</b> min</span>"
        for state in MinuteState
    )
    lost = ", ".join(text(coin) for coin in troubled) or "none"
    return f'<p class="legend">{items}</p><p class="legend troubled">coins with missing or unfillable minutes: {lost}</p>'


def _spark(kind: str, summary: str, marks: int, body: str, empty: str = "no runs in 24 h") -> str:
    if not marks:
        body += (f'<text class="empty" x="{SPARK_WIDTH // 2}" y="{SPARK_HEIGHT // 2 + 3}" text-anchor="middle" '
                 f'font-size="9" fill="#999">{text(empty)}</text>')
    return (
        f'<svg class="spark spark-{kind}" xmlns="http://www.w3.org/2000/svg" width="{SPARK_WIDTH}" '
        f'height="{SPARK_HEIGHT}" role="img" data-marks="{marks}">'
        f'<title>{text(summary)}</title><line x1="0" x2="{SPARK_WIDTH}" y1="{SPARK_HEIGHT - 0.5}" '
        f'y2="{SPARK_HEIGHT - 0.5}" stroke="#dadce0" stroke-width="1"/>{body}</svg>'
    )


def _bar(x: float, height: float, colour: str, css: str, width: int) -> str:
    bottom = SPARK_HEIGHT - 1
    top = bottom - max(1.0, height)
    return f'<line class="{css}" x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" y2="{top:.1f}" stroke="{colour}" stroke-width="{width}"/>'


def _stroke(bars: int) -> int:
    """Bars 2 px wide while they cannot touch (a run an hour: 6 px apart), else 1 px."""
    return 2 if bars <= SPARK_WIDTH // 3 else 1


def _failure(run: RunPoint, now_ms: int, what: str) -> str:
    return (
        f'<circle class="mark-failed" cx="{_x(run.finished_at_ms, now_ms):.1f}" cy="3" r="2.5" fill="{FAILED}">'
        f"<title>{text(f'failed run ended {_clock(run.finished_at_ms)} UTC: {what}')}</title></circle>"
    )


def _x(at_ms: int, now_ms: int) -> float:
    """Across the sparkline: 24 hours ago at the left edge, now at the right (2 px margins)."""
    share = min(1.0, max(0.0, 1 - (now_ms - at_ms) / DAY_MS))
    return 2 + (SPARK_WIDTH - 4) * share


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%m-%d %H:%M")


def duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
