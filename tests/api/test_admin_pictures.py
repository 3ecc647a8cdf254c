"""The admin page's pictures as text: one mark per run or segment, where the data puts it,
escaped, and nothing a ``default-src 'none'`` policy would block."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from api.admin_pictures import (
    DAY_MS,
    ROW_LABELLED,
    SPARK_HEIGHT,
    STATE_COLOURS,
    STRIP_LABEL,
    STRIP_WIDTH,
    coverage_legend,
    coverage_strip,
    lag_sparkline,
    rows_sparkline,
)
from market_assets.memory.admin_history import MinuteState, RunBucket, Segment

NOW = 1_795_000_020_000
SVG = "{http://www.w3.org/2000/svg}"
HOUR = 3_600_000


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def marks(root: ET.Element, tag: str, css: str) -> list[ET.Element]:
    return [e for e in root.iter(SVG + tag) if css in (e.get("class") or "").split()]


def bars(root: ET.Element, kind: str = "") -> list[tuple[float, float]]:
    """Each bar of a kind as (x, height): the subpaths ``M x bottom V top`` of its path."""
    found = []
    for path in marks(root, "path", "bars"):
        if (path.get("class") or "").split()[1:] == ([kind] if kind else []):
            for x, bottom, top in re.findall(r"M([\d.]+) ([\d.]+)V([\d.]+)", path.get("d") or ""):
                found.append((float(x), round(float(bottom) - float(top), 1)))
    return found


def bucket(index: int, rows: int, *, failed_at: tuple[int, ...] = (), lag_ms: int | None = 30_000) -> RunBucket:
    """A column of ``1 + len(failed_at)`` runs: one plain, and one failed ending at each of ``failed_at``."""
    return RunBucket(
        index, 1 + len(failed_at), rows, len(failed_at), min(failed_at, default=None), max(failed_at, default=None),
        rows if failed_at else None, 0 if lag_ms is None else 1 + len(failed_at), lag_ms,
        lag_ms if failed_at and lag_ms is not None else None,
    )


def test_rows_sparkline_is_a_bar_per_column_as_tall_as_its_most_rows_failures_red_and_dotted() -> None:
    failed_at = NOW - 12 * HOUR
    root = parse(rows_sparkline([bucket(0, 0), bucket(6, 100), bucket(73, 50, failed_at=(failed_at,)), bucket(145, 25)]))
    assert bars(root) == [(2.5, 1.0), (8.5, 20.0), (147.5, 5.0)]  # 100 rows: the full 20 px; none still shows 1 px
    assert bars(root, "failed") == [(75.5, 10.0)]
    (dot,) = marks(root, "circle", "mark-failed")
    assert dot.get("cx") == "75.5"
    assert dot.findtext(SVG + "title") == "failed run ended 11-17 23:07 UTC: 50 rows"
    assert root.get("data-marks") == "4"
    assert root.findtext(SVG + "title") == "rows per run, last 24 h: 5 runs, 1 failed, at most 100 rows"
    assert {p.get("stroke-width") for p in marks(root, "path", "bars")} == {"2"}  # few bars: 2 px wide


def test_a_column_of_many_runs_says_how_many_failed_and_dense_bars_are_a_pixel_wide() -> None:
    failures = (NOW - 3 * HOUR - 4 * 60_000, NOW - 3 * HOUR - 2 * 60_000)
    root = parse(rows_sparkline([bucket(i, 10) for i in range(60)] + [bucket(120, 30, failed_at=failures)]))
    (dot,) = marks(root, "circle", "mark-failed")
    assert dot.findtext(SVG + "title") == "2 failed runs ended 11-18 08:03–11-18 08:05 UTC, the worst: 30 rows"
    assert len(bars(root)) == 60 and {p.get("stroke-width") for p in marks(root, "path", "bars")} == {"1"}


def test_lag_sparkline_bars_columns_with_a_data_timestamp_orange_past_the_threshold_which_is_drawn() -> None:
    buckets = [bucket(10, 1, lag_ms=60_000), bucket(20, 1, lag_ms=None),
               bucket(30, 1, failed_at=(NOW - 5 * HOUR,), lag_ms=900_000), bucket(40, 1, lag_ms=0)]
    root = parse(lag_sparkline(buckets, threshold_sec=360))
    scale = (SPARK_HEIGHT - 6) / 900_000  # the longest lag fills the height, past the threshold's 5/4
    assert bars(root) == [(12.5, round(60_000 * scale, 1)), (42.5, 1.0)]
    assert bars(root, "over") == [(32.5, 20.0)]
    assert root.get("data-marks") == "3"
    (threshold,) = marks(root, "line", "threshold")
    assert float(threshold.get("y1", 0)) == round(SPARK_HEIGHT - 1 - 360_000 * scale, 1)
    assert threshold.findtext(SVG + "title") == "data_lag warning past 6 min"
    (failed,) = marks(root, "circle", "mark-failed")
    assert failed.findtext(SVG + "title") == "failed run ended 11-18 06:07 UTC: data lag 15 min"


def test_a_sparkline_with_nothing_to_draw_says_so() -> None:
    assert "no runs in 24 h" in rows_sparkline([])
    assert "no data timestamps recorded" in lag_sparkline([bucket(1, 5, lag_ms=None)], 360)
    root = parse(lag_sparkline([], 360))
    assert bars(root) == [] and marks(root, "line", "threshold") == []


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
        rows_sparkline([bucket(3, 5, failed_at=(NOW,))]) + lag_sparkline([bucket(3, 5)], 60)
        + coverage_strip({"<script>": [Segment(MinuteState.MISSING, start, start + DAY_MS)]}, start, start + DAY_MS)
        + coverage_legend({"<script>": [Segment(MinuteState.MISSING, start, start + DAY_MS)]})
    )
    assert "<script" not in pictures and " on" not in pictures.lower().replace(" only", "")
    assert not re.search(r"(href|src|url\()", pictures)
