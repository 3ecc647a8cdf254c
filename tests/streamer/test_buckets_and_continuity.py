"""Forming vs closed buckets, the resume points of the continuity check, and gap runs."""

from __future__ import annotations

from decimal import Decimal

from market_assets.memory.gaps import GapStatus
from market_assets.sources.hyperliquid import Candle
from streamer.buckets import BucketBook
from streamer.continuity import ResumePoints, Span, missing_spans, resolve

M = 60_000
T0 = 1_795_000_020_000  # a minute boundary


def candle(coin: str, open_ms: int, volume: str = "1") -> Candle:
    one = Decimal("1")
    return Candle(open_ms, open_ms + M - 1, coin, "1m", one, one, one, one, Decimal(volume), 1)


def test_a_resent_bucket_is_forming_until_its_close_time_passes() -> None:
    book = BucketBook()
    assert not book.observe(candle("BTC", T0, "1"), T0 + 10_000)
    assert not book.observe(candle("BTC", T0, "2"), T0 + M - 1)
    assert book.observe(candle("BTC", T0, "3"), T0 + M)  # received after T: final


def test_a_later_bucket_of_the_same_coin_closes_the_earlier_one() -> None:
    book = BucketBook()
    book.observe(candle("BTC", T0 + M), T0 + M + 1)
    assert book.observe(candle("BTC", T0), T0 + M + 2)  # a late frame of the previous bucket
    assert not book.observe(candle("ETH", T0 + M), T0 + M + 3)  # other coins are not affected


def test_missing_spans_are_maximal_runs_of_absent_buckets() -> None:
    present = [T0, T0 + 3 * M, T0 + 4 * M]
    assert missing_spans(present, Span(T0, T0 + 7 * M), M) == [Span(T0 + M, T0 + 3 * M), Span(T0 + 5 * M, T0 + 7 * M)]
    assert missing_spans(range(T0, T0 + 3 * M, M), Span(T0, T0 + 3 * M), M) == []


def test_a_gap_resolves_into_what_rest_filled_and_what_it_had_no_candle_for() -> None:
    gap = Span(T0, T0 + 5 * M)
    parts = resolve(gap, [T0, T0 + M, T0 + 4 * M], M)
    assert parts == [
        (Span(T0, T0 + 2 * M), GapStatus.FILLED),
        (Span(T0 + 2 * M, T0 + 4 * M), GapStatus.UNFILLABLE),
        (Span(T0 + 4 * M, T0 + 5 * M), GapStatus.FILLED),
    ]


def test_a_restart_owes_from_the_last_stored_closed_minute_until_the_stream_resumes() -> None:
    points = ResumePoints({"BTC": T0})
    assert points.resumed("BTC", T0 + 5 * M) == Span(T0, T0 + 5 * M)
    assert points.owed("BTC") is None


def test_a_drop_owes_the_newest_bucket_seen_and_a_resume_inside_it_owes_nothing() -> None:
    points = ResumePoints()
    points.lost("BTC", T0 + 2 * M)
    assert points.resumed("BTC", T0 + 2 * M) is None
    points.lost("BTC", T0 + 2 * M)
    assert points.resumed("BTC", T0 + 4 * M) == Span(T0 + 2 * M, T0 + 4 * M)


def test_repeated_drops_before_the_stream_resumes_keep_the_oldest_owed_bucket() -> None:
    points = ResumePoints({"BTC": T0})
    points.lost("BTC", T0 + 3 * M)
    points.lost("BTC", None)  # dropped again before any frame
    assert points.owed("BTC") == T0


def test_a_coin_never_streamed_and_never_stored_owes_nothing() -> None:
    points = ResumePoints()
    points.lost("NEW", None)
    assert points.resumed("NEW", T0) is None


def test_a_silent_coin_hands_its_closed_minutes_to_rest_and_keeps_owing_the_current_one() -> None:
    points = ResumePoints()
    points.lost("DOGE", T0)
    assert points.hand_over("DOGE", T0 + 3 * M) == Span(T0, T0 + 3 * M)
    assert points.owed("DOGE") == T0 + 3 * M
    assert points.hand_over("DOGE", T0 + 3 * M) is None
    assert points.resumed("DOGE", T0 + 5 * M) == Span(T0 + 3 * M, T0 + 5 * M)
