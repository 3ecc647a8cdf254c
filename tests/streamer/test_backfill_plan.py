"""Backfill ordering: newest gaps of the most traded coins first, within the weight budget,
nothing asked beyond candleSnapshot's 5,000-candle window (recorded unfillable instead)."""

from __future__ import annotations

from streamer.backfill import Page, plan, window_floor
from streamer.continuity import Span

M = 60_000
NOW = 1_795_000_020_000 + 30_000  # mid-minute
BUCKET = NOW - NOW % M
VOLUMES = {"BTC": 3.6e9, "ETH": 5.6e9, "DOGE": 1.0e8}


def test_newest_gaps_come_first_then_the_most_traded_coin() -> None:
    owed = [
        ("DOGE", Span(BUCKET - 5 * M, BUCKET)),
        ("BTC", Span(BUCKET - 5 * M, BUCKET)),
        ("ETH", Span(BUCKET - 5 * M, BUCKET)),
        ("ETH", Span(BUCKET - 60 * M, BUCKET - 50 * M)),
    ]
    pages = plan(owed, VOLUMES, now_ms=NOW, step_ms=M).pages
    assert [(p.coin, p.span.end_ms) for p in pages] == [
        ("ETH", BUCKET),
        ("BTC", BUCKET),
        ("DOGE", BUCKET),
        ("ETH", BUCKET - 50 * M),
    ]


def test_a_long_range_is_paged_newest_first() -> None:
    pages = plan([("BTC", Span(BUCKET - 1200 * M, BUCKET))], VOLUMES, now_ms=NOW, step_ms=M, page_candles=500).pages
    assert [p.span for p in pages] == [
        Span(BUCKET - 500 * M, BUCKET),
        Span(BUCKET - 1000 * M, BUCKET - 500 * M),
        Span(BUCKET - 1200 * M, BUCKET - 1000 * M),
    ]


def test_buckets_older_than_the_five_thousand_candle_window_are_unfillable_not_asked() -> None:
    floor = window_floor(NOW, M)
    assert floor == BUCKET - 4999 * M
    result = plan([("BTC", Span(BUCKET - 7000 * M, BUCKET))], VOLUMES, now_ms=NOW, step_ms=M)
    assert result.unfillable == (Page("BTC", Span(BUCKET - 7000 * M, floor)),)
    assert [p.span for p in result.pages] == [Span(floor, BUCKET)]


def test_a_five_minute_outage_of_228_coins_costs_21_weight_a_coin() -> None:
    owed = [(f"C{i}", Span(BUCKET - 5 * M, BUCKET)) for i in range(228)]
    assert plan(owed, {}, now_ms=NOW, step_ms=M).weight(M) == 228 * 21
