"""The admin page's pictures as text: one mark per run or segment, where the data puts it,
escaped, and nothing a ``default-src 'none'`` policy would block."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from api.admin_pictures import (
    DAY_MS,
    ROW_LABELLED,
    SPARK_HEIGHT,
    SPARK_WIDTH,
    STATE_COLOURS,
    STRIP_LABEL,
    STRIP_WIDTH,
    coverage_legend,
    coverage_strip,
    lag_sparkline,
    rows_sparkline,
)
from market_assets.memory.admin_history import MinuteState, RunPoint, Segment

NOW = 1_795_000_020_000
SVG = "{http://www.w3.org/2000/svg}"
HOUR = 3_600_000


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def marks(root: ET.Element, tag: str, css: str) -> list[ET.Element]:
    return [e for e in root.iter(SVG + tag) if css in (e.get("class") or "").split()]


def run(hours_ago: float, rows: int, *, failed: bool = False, lag_sec: int | None = 30) -> RunPoint:
    finished = NOW - int(hours_ago * HOUR)
    return RunPoint(finished - 5000, finished, failed, rows, None if lag_sec is None else finished - lag_sec * 1000)


def test_rows_sparkline_is_a_bar_per_run_at_its_end_as_tall_as_its_rows_failures_dotted() -> None:
    runs = [run(23, 100), run(12, 50, failed=True), run(0, 25), run(30, 0)]  # the last: before the picture's day
    root = parse(rows_sparkline(runs, NOW))
    bars = marks(root, "line", "bar")
    assert len(bars) == 4 and root.get("data-marks") == "4"
    bottom = SPARK_HEIGHT - 1
    heights = [round(bottom - float(bar.get("y2", 0)), 1) for bar in bars]
    assert heights == [20.0, 10.0, 5.0, 1.0]  # 100 rows: the full 20 px; none still shows 1 px
    xs = [float(bar.get("x1", 0)) for bar in bars]  # the middle of each run's pixel column
    assert xs == [2.5 + (SPARK_WIDTH - 4) // 24, 2.5 + (SPARK_WIDTH - 4) // 2, SPARK_WIDTH - 2.5, 2.5]
    failed = marks(root, "circle", "mark-failed")
    assert len(failed) == 1 and failed[0].get("cx") == bars[1].get("x1")
    assert failed[0].findtext(SVG + "title") == "failed run ended 11-17 23:07 UTC: 50 rows"
    assert marks(root, "line", "failed") == [bars[1]]
    assert root.findtext(SVG + "title") == "rows per run, last 24 h: 4 runs, 1 failed, at most 100 rows"


def test_lag_sparkline_bars_runs_with_a_data_timestamp_and_draws_the_threshold() -> None:
    runs = [run(20, 1, lag_sec=60), run(10, 1, lag_sec=None), run(5, 1, failed=True, lag_sec=900), run(1, 1, lag_sec=0)]
    root = parse(lag_sparkline(runs, NOW, threshold_sec=360))
    bars = marks(root, "line", "bar")
    assert len(bars) == 3 and root.get("data-marks") == "3"
    scale = (SPARK_HEIGHT - 6) / 900  # the tallest lag fills the height, past the threshold's 5/4
    assert [round(SPARK_HEIGHT - 1 - float(b.get("y2", 0)), 1) for b in bars] == [round(60 * scale, 1), 20.0, 1.0]
    assert marks(root, "line", "over") == [bars[1]]
    (threshold,) = marks(root, "line", "threshold")
    assert float(threshold.get("y1", 0)) == round(SPARK_HEIGHT - 1 - 360 * scale, 1)
    assert threshold.findtext(SVG + "title") == "data_lag warning past 6 min"
    (failed,) = marks(root, "circle", "mark-failed")
    assert failed.findtext(SVG + "title") == "failed run ended 11-18 06:07 UTC: data lag 15 min"


def test_runs_ending_in_one_pixel_column_share_its_bar_the_tallest_and_its_failure_dot() -> None:
    """The streamer's windows: ten a pixel. The bar is the column's most rows; one dot says how
    many failed."""
    column = [run(3 + m / 60, 10 * m, failed=m in (2, 3)) for m in range(4, -1, -1)]  # 3:04 … 3:00 ago, oldest first
    runs = [run(5, 7), *column]
    root = parse(rows_sparkline(runs, NOW))
    bars = marks(root, "line", "bar")
    assert len(bars) == 2 and root.get("data-marks") == "6"
    assert [round(SPARK_HEIGHT - 1 - float(b.get("y2", 0)), 1) for b in bars] == [3.5, 20.0]
    assert marks(root, "line", "failed") == [bars[1]]
    (dot,) = marks(root, "circle", "mark-failed")
    assert dot.findtext(SVG + "title") == "2 failed runs ended 11-18 08:04–11-18 08:05 UTC, the worst: 30 rows"


def test_a_sparkline_with_nothing_to_draw_says_so() -> None:
    assert "no runs in 24 h" in rows_sparkline([], NOW)
    assert "no data timestamps recorded" in lag_sparkline([run(1, 5, lag_sec=None)], NOW, 360)
    root = parse(lag_sparkline([], NOW, 360))
    assert marks(root, "line", "bar") == [] and marks(root, "line", "threshold") == []


def test_the_coverage_strip_is_a_row_per_coin_and_a_rect_per_segment_with_its_hover_text() -> None:
    end = NOW - NOW % 60_000
    start = end - DAY_MS
    coins = {
        "BTC": [Segment(MinuteState.CONFIRMED, start, end - 3 * 60_000),
                Segment(MinuteState.MISSING, end - 3 * 60_000, end - 60_000),
                Segment(MinuteState.UNVERIFIED, end - 60_000, end)],
        'E"<T>': [Segment(MinuteState.NO_TRADES, start, start + HOUR), Segment(MinuteState.UNFILLABLE, start + HOUR, end)],
    }
    svg = coverage_strip(coins, start, end)
    root = parse(svg)
    rects = marks(root, "rect", "seg")
    assert [(r.get("data-coin"), r.get("data-state"), r.get("fill")) for r in rects] == [
        ("BTC", "confirmed", STATE_COLOURS[MinuteState.CONFIRMED]),  # per coin the confirmed first
        ("BTC", "missing", STATE_COLOURS[MinuteState.MISSING]),
        ("BTC", "unverified", STATE_COLOURS[MinuteState.UNVERIFIED]),
        ('E"<T>', "no_trades", STATE_COLOURS[MinuteState.NO_TRADES]),
        ('E"<T>', "unfillable", STATE_COLOURS[MinuteState.UNFILLABLE]),
    ]
    assert len(set(STATE_COLOURS.values())) == len(MinuteState)
    assert float(rects[0].get("x", 0)) == STRIP_LABEL
    assert float(rects[1].get("x", 0)) == round(STRIP_LABEL + STRIP_WIDTH * (DAY_MS - 3 * 60_000) / DAY_MS, 2)
    assert float(rects[2].get("width", 0)) == 2.0  # a minute is under a pixel: drawn two wide, over the confirmed
    assert [r.get("y") for r in rects] == ["0", "0", "0", str(ROW_LABELLED), str(ROW_LABELLED)]
    assert rects[1].findtext(SVG + "title") == "BTC: missing, 11:04–11:06 UTC (2 min)"
    assert [t.text for t in root.iter(SVG + "text") if t.get("class") == "coin"] == ["BTC", 'E"<T>']
    assert 'E"<T>' not in svg and "E&quot;&lt;T&gt;" in svg


def test_the_legend_sums_each_states_minutes_and_names_the_coins_with_lost_minutes() -> None:
    start = NOW - NOW % 60_000 - DAY_MS
    coins = {
        "BTC": [Segment(MinuteState.CONFIRMED, start, start + 1430 * 60_000),
                Segment(MinuteState.UNFILLABLE, start + 1430 * 60_000, start + DAY_MS)],
        "ETH": [Segment(MinuteState.CONFIRMED, start, start + DAY_MS)],
    }
    legend = coverage_legend(coins)
    items = re.findall(r'data-state="(\w+)".*?<b>([\d,]+)</b>', legend)
    assert items == [("confirmed", "2,870"), ("unverified", "0"), ("no_trades", "0"), ("missing", "0"), ("unfillable", "10")]
    assert legend.endswith("coins with missing or unfillable minutes: BTC</p>")


def test_no_picture_carries_script_or_reaches_out() -> None:
    start = NOW - NOW % 60_000 - DAY_MS
    pictures = (
        rows_sparkline([run(2, 5, failed=True)], NOW) + lag_sparkline([run(2, 5)], NOW, 60)
        + coverage_strip({"<script>": [Segment(MinuteState.MISSING, start, start + DAY_MS)]}, start, start + DAY_MS)
        + coverage_legend({"<script>": [Segment(MinuteState.MISSING, start, start + DAY_MS)]})
    )
    assert "<script" not in pictures and " on" not in pictures.lower().replace(" only", "")
    assert not re.search(r"(href|src|url\()", pictures)
