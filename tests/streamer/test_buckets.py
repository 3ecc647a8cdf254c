"""The bucket book: forming, closed and confirmed, and the minutes a frame reveals as owed (SPEC §8)."""

from __future__ import annotations


from market_assets.memory.candles import RepairReason
from market_assets.sources.hyperliquid import Candle
from streamer.buckets import BucketBook, Feed

M = 60_000
T0 = 1_795_000_020_000  # a minute boundary
UNVERIFIED, MISSING = RepairReason.UNVERIFIED, RepairReason.MISSING


def candle(coin: str, open_ms: int, volume: str = "1") -> Candle:
    return Candle(open_ms, open_ms + M - 1, coin, "1m", 1.0, 1.0, 1.0, 1.0, float(volume), 1)


def test_a_resent_bucket_is_forming_until_its_close_time_passes_and_then_closed_but_not_confirmed() -> None:
    book, feed = BucketBook(M), Feed()
    row, confirmed, owed = book.observe(candle("BTC", T0, "1"), T0 + 10_000, feed)
    assert (row.closed, row.confirmed, confirmed, owed) == (False, False, None, [])
    row, _, _ = book.observe(candle("BTC", T0, "3"), T0 + M, feed)  # received after T
    assert (row.closed, row.confirmed) == (True, False)


def test_the_next_bucket_on_the_same_socket_confirms_the_latest_state_of_the_previous_one() -> None:
    book, feed = BucketBook(M), Feed()
    book.observe(candle("BTC", T0, "1"), T0 + 10_000, feed)
    book.observe(candle("BTC", T0, "2.5"), T0 + 50_000, feed)
    row, confirmed, owed = book.observe(candle("BTC", T0 + M, "0.1"), T0 + M + 1, feed)
    assert confirmed is not None and (confirmed.open_time_ms, confirmed.volume) == (T0, 2.5)
    assert confirmed.closed and confirmed.confirmed and owed == []
    assert (row.open_time_ms, row.closed) == (T0 + M, False)


def test_a_bucket_whose_socket_dropped_is_unverified_when_the_next_one_comes_on_another_socket() -> None:
    book, first, second = BucketBook(M), Feed(), Feed()
    book.observe(candle("BTC", T0), T0 + 10_000, first)
    assert book.lost(["BTC"], first, T0 + 20_000) == []  # still forming: the next socket can tell
    _, confirmed, owed = book.observe(candle("BTC", T0 + 2 * M), T0 + 2 * M + 5, second)
    assert confirmed is None
    assert owed == [("BTC", T0, UNVERIFIED), ("BTC", T0 + M, MISSING)]


def test_a_new_socket_resending_the_forming_bucket_in_full_can_still_confirm_it() -> None:
    book, first, second = BucketBook(M), Feed(), Feed()
    book.observe(candle("BTC", T0, "1"), T0 + 10_000, first)
    book.lost(["BTC"], first, T0 + 20_000)
    book.observe(candle("BTC", T0, "2"), T0 + 30_000, second)
    _, confirmed, owed = book.observe(candle("BTC", T0 + M), T0 + M + 5, second)
    assert confirmed is not None and confirmed.volume == 2.0 and owed == []


def test_a_drop_after_the_bucket_ended_owes_it_at_once() -> None:
    book, feed = BucketBook(M), Feed()
    book.observe(candle("BTC", T0), T0 + 50_000, feed)
    assert book.lost(["BTC"], feed, T0 + M + 1) == [("BTC", T0, UNVERIFIED)]
    assert book.lost(["BTC"], feed, T0 + M + 2) == []  # owed once


def test_an_unparseable_frame_after_a_buckets_latest_frame_keeps_it_from_being_confirmed() -> None:
    book, feed = BucketBook(M), Feed()
    book.observe(candle("BTC", T0), T0 + 10_000, feed)
    book.observe(candle("ETH", T0), T0 + 10_000, feed)
    feed.unparseable += 1  # it may have been BTC's or ETH's final update
    book.observe(candle("ETH", T0, "2"), T0 + 40_000, feed)  # ETH's full state came after it
    _, btc, btc_owed = book.observe(candle("BTC", T0 + M), T0 + M + 1, feed)
    _, eth, eth_owed = book.observe(candle("ETH", T0 + M), T0 + M + 1, feed)
    assert btc is None and btc_owed == [("BTC", T0, UNVERIFIED)]
    assert eth is not None and eth_owed == []


def test_a_rejected_frame_taints_only_its_coins_bucket() -> None:
    book, feed = BucketBook(M), Feed()
    book.observe(candle("BTC", T0), T0 + 10_000, feed)
    book.observe(candle("ETH", T0), T0 + 10_000, feed)
    book.rejected("BTC", T0)
    assert book.observe(candle("BTC", T0 + M), T0 + M + 1, feed)[1] is None
    assert book.observe(candle("ETH", T0 + M), T0 + M + 1, feed)[1] is not None


def test_minutes_skipped_on_one_socket_are_owed_as_missing_for_rest_to_say_whether_anyone_traded() -> None:
    book, feed = BucketBook(M), Feed()
    book.observe(candle("BTC", T0), T0 + 10_000, feed)
    _, confirmed, owed = book.observe(candle("BTC", T0 + 3 * M), T0 + 3 * M + 1, feed)
    assert confirmed is not None and confirmed.open_time_ms == T0
    assert owed == [("BTC", T0 + M, MISSING), ("BTC", T0 + 2 * M, MISSING)]


def test_a_coins_first_frame_owes_the_minutes_since_the_start_horizon_ended() -> None:
    book, feed = BucketBook(M), Feed()
    book.covered_from["BTC"] = T0
    assert book.observe(candle("BTC", T0 + 2 * M), T0 + 2 * M + 1, feed)[2] == [("BTC", T0, MISSING), ("BTC", T0 + M, MISSING)]
    assert book.observe(candle("ETH", T0), T0 + 1, feed)[2] == []  # no horizon: nothing before it owed


def test_a_late_frame_of_an_older_bucket_is_stored_closed_unverified_and_owed() -> None:
    book, feed = BucketBook(M), Feed()
    book.observe(candle("BTC", T0 + M), T0 + M + 1, feed)
    row, confirmed, owed = book.observe(candle("BTC", T0), T0 + M + 2, feed)
    assert (row.closed, row.confirmed, confirmed, owed) == (True, False, None, [("BTC", T0, UNVERIFIED)])
