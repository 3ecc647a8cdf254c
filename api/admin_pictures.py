"""The admin page's pictures as inline SVG text: pure functions of the data and the clock.

No script, no external reference, nothing but elements and presentation attributes, so they
draw under the page's ``default-src 'none'`` policy. Every value from the memory goes through
:func:`text`. Every mark carries a class (and the strips' rects a ``data-state``), so a
browser test counts what was drawn:

* ``rows_sparkline``: the finished runs of the last 24 hours placed at their end, one bar per
  pixel column holding runs (about ten minutes; runs an hour apart get a bar each), as tall as
  the most rows a run in it wrote; a column with a failed run has a red bar and a red dot above
  it (``circle.mark-failed``, when and how many in its ``<title>``). The bars of a kind are the
  subpaths of one ``path.bars`` (plain, ``.failed``, ``.over``): one ``M`` each. Drawing every one
  of the streamer's 1,440 windows would put ten bars on each pixel and cost the page its latency
  budget.
* ``lag_sparkline``: the same columns over the runs with a recorded newest data timestamp, as
  tall as the longest data lag a run in it left, orange past the channel's ``data_lag``
  threshold (``path.bars.over``), drawn dashed (``line.threshold``) once there is a bar; failed
  runs dotted as above.
* ``coverage_strip``: one row per coin, one ``rect.seg`` per run of minutes in one state, the
  confirmed ones first so the others (at least 2 px wide) draw over them.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from market_assets.memory.admin_history import MinuteState, RunBucket, Segment

DAY_MS = 86_400_000
SPARK_WIDTH = 150
SPARK_HEIGHT = 26
COLUMNS = SPARK_WIDTH - 4
"""Pixel columns of a sparkline's day (2 px margins), the buckets its runs are tallied in."""
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
    MinuteState.UNVERIFIED: "#f0e442",
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


def rows_sparkline(buckets: Sequence[RunBucket]) -> str:
    """Rows written per run over the day: per column, the most any run ending in it wrote."""
    top = max((b.most_rows for b in buckets), default=0) or 1
    scale = (SPARK_HEIGHT - 6) / top
    bars = _Bars(len(buckets))
    dots = []
    for b in buckets:
        bars.add("failed" if b.failed else "", b.bucket, b.most_rows * scale)
        if b.failed:
            dots.append(_failure(b, f"{b.most_failed_rows or 0:,} rows"))
    runs, failed = sum(b.runs for b in buckets), sum(b.failed for b in buckets)
    summary = f"rows per run, last 24 h: {runs} runs, {failed} failed, at most {top:,} rows"
    return _spark("rows", summary, len(buckets), bars.paths() + "".join(dots))


def lag_sparkline(buckets: Sequence[RunBucket], threshold_sec: int) -> str:
    """Data lag when each run ended, against the channel's ``data_lag`` threshold: per column,
    the longest a run ending in it left."""
    lagged = [b for b in buckets if b.longest_lag_ms is not None]
    worst = max((b.longest_lag_ms or 0 for b in lagged), default=None)
    top = max(worst or 0, threshold_sec * 1250)  # in ms: the threshold sits at 4/5 of the height at least
    scale = (SPARK_HEIGHT - 6) / top
    bars = _Bars(len(lagged))
    dots = []
    for b in lagged:
        lag_ms = b.longest_lag_ms or 0
        bars.add("over" if lag_ms > threshold_sec * 1000 else "", b.bucket, lag_ms * scale)
        if b.failed and b.longest_failed_lag_ms is not None:
            dots.append(_failure(b, f"data lag {duration(b.longest_failed_lag_ms // 1000)}"))
    threshold = ""
    if lagged:
        y = SPARK_HEIGHT - 1 - threshold_sec * 1000 * scale
        threshold = (
            f'<line class="threshold" x1="0" x2="{SPARK_WIDTH}" y1="{y:.1f}" y2="{y:.1f}" stroke="{OVER}" '
            f'stroke-dasharray="3 2" stroke-width="1"><title>data_lag warning past {text(duration(threshold_sec))}</title></line>'
        )
    runs = sum(b.lags for b in lagged)
    summary = (
        f"data lag per run, last 24 h: {runs} runs with a recorded data timestamp"
        + ("" if worst is None else f", at most {duration(worst // 1000)}")
        + f"; warning past {duration(threshold_sec)}"
    )
    empty = "no data timestamps recorded" if buckets else "no runs in 24 h"
    return _spark("lag", summary, len(lagged), bars.paths() + threshold + "".join(dots), empty)


def coverage_strip(coins: Mapping[str, Sequence[Segment]], start_ms: int, end_ms: int) -> str:
    """One row per coin, one rect per segment, over ``[start_ms, end_ms)``; hour ticks below."""
    labelled = len(coins) <= LABELLED_COINS
    row = ROW_LABELLED if labelled else ROW_DENSE
    span = end_ms - start_ms
    parts = []
    rect_height = row - 1 if labelled else row
    for i, (coin, segments) in enumerate(coins.items()):
        y = i * row
        name = text(coin)
        if labelled:
            parts.append(f'<text class="coin" x="{STRIP_LABEL - 4}" y="{y + row - 2}" text-anchor="end">{name}</text>')
        # Confirmed first, so the others draw over them: a lone minute (0.8 px) is drawn 2 px wide.
        for segment in sorted(segments, key=lambda s: s.state is not MinuteState.CONFIRMED):
            x = STRIP_LABEL + STRIP_WIDTH * (segment.start_ms - start_ms) / span
            narrowest = 1.0 if segment.state is MinuteState.CONFIRMED else 2.0
            width = max(narrowest, STRIP_WIDTH * (segment.end_ms - segment.start_ms) / span)
            minutes = (segment.end_ms - segment.start_ms) // 60_000
            state = segment.state
            parts.append(
                f'<rect class="seg seg-{state.value}" data-coin="{name}" data-state="{state.value}" x="{x:.2f}" y="{y}" '
                f'width="{width:.2f}" height="{rect_height}" fill="{STATE_COLOURS[state]}"><title>{name}: {STATE_LABELS[state]}, '
                f"{_time_of_day(segment.start_ms)}–{_time_of_day(segment.end_ms)} UTC ({minutes:,} min)</title></rect>"
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


class _Bars:
    """A sparkline's bars as one path per kind (plain, failed, over): a subpath (``M…V…``) per
    column, so a day of columns is a few hundred bytes, not an element each."""

    COLOURS: Mapping[str, str] = {"": BAR, "failed": FAILED, "over": OVER}

    def __init__(self, count: int) -> None:
        self.width = 2 if count <= SPARK_WIDTH // 3 else 1  # 2 px while bars cannot touch (a run an hour: 6 px apart)
        self.kinds: dict[str, list[str]] = {}

    def add(self, kind: str, bucket: int, height: float) -> None:
        top = SPARK_HEIGHT - 1 - max(1.0, height)
        self.kinds.setdefault(kind, []).append(f"M{2.5 + bucket} {SPARK_HEIGHT - 1}V{top:.1f}")

    def paths(self) -> str:
        return "".join(
            f'<path class="{f"bars {kind}".strip()}" d="{"".join(steps)}" stroke="{self.COLOURS[kind]}" stroke-width="{self.width}"/>'
            for kind, steps in sorted(self.kinds.items())
        )


def _failure(bucket: RunBucket, what: str) -> str:
    """A red dot above a column with failed runs; its title says when and how many."""
    first, last = bucket.first_failed_ms or 0, bucket.last_failed_ms or 0
    if bucket.failed == 1:
        title = f"failed run ended {_clock(first)} UTC: {what}"
    else:
        title = f"{bucket.failed} failed runs ended {_clock(first)}–{_clock(last)} UTC, the worst: {what}"
    return f'<circle class="mark-failed" cx="{2.5 + bucket.bucket}" cy="3" r="2.5" fill="{FAILED}"><title>{text(title)}</title></circle>'


def _time_of_day(ms: int) -> str:
    """``HH:MM`` (UTC) by arithmetic: the strip titles hundreds of segments a request."""
    minutes = ms // 60_000 % 1440
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


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
