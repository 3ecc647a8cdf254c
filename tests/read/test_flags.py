"""SPEC §11: unverified and forming minutes are flagged, never passed as complete confirmed bars."""

from __future__ import annotations

import pandas as pd

from market_assets.read import MarketReader
from tests.read.conftest import BOTH_ENGINES
from tests.read.seeding import COINS, MINUTE_MS, NOW_MS, START_MS, Market
from tests.read.truth import WIDTH_MS, as_truth, assert_same_bars, expected_bars

FORMING_MS = NOW_MS - NOW_MS % MINUTE_MS


@BOTH_ENGINES
def test_the_forming_minute_is_only_read_when_asked_for_and_then_flagged(market: Market, reader: MarketReader) -> None:
    assert reader.candles(None, "1m", FORMING_MS - 5 * MINUTE_MS, include_forming=False).open_time.max() \
        == pd.Timestamp(FORMING_MS - MINUTE_MS, unit="ms", tz="UTC")
    forming = as_truth(reader.candles(None, "1m", FORMING_MS, include_forming=True))
    assert forming.coin.tolist() == list(COINS)
    assert (forming.open_time == FORMING_MS).all() and (forming.close_time == FORMING_MS + MINUTE_MS).all()
    assert not forming.complete.any() and not forming.verified.any()
    assert forming.volume.tolist() == [0.37] * len(COINS)  # the stored forming state, as of now


def test_a_bar_holding_the_forming_minute_is_incomplete_and_unverified(market: Market, minutes: pd.DataFrame,
                                                                       reader: MarketReader) -> None:
    for interval in WIDTH_MS:
        opened = FORMING_MS - FORMING_MS % WIDTH_MS[interval]
        got = reader.candles(None, interval, opened, include_forming=True)
        assert_same_bars(got, expected_bars(minutes, None, interval, opened, NOW_MS, NOW_MS, include_forming=True), interval)
        assert not got.complete.any() and not got.verified.any(), interval
        assert reader.candles(None, interval, opened).empty, interval


@BOTH_ENGINES
def test_every_bar_with_an_unverified_minute_says_so_and_verified_only_drops_it(
    market: Market, minutes: pd.DataFrame, reader: MarketReader
) -> None:
    unconfirmed = minutes[minutes.closed & ~minutes.confirmed]
    assert len(unconfirmed) > 300
    for interval in ("1m", "5m", "1h", "1d"):
        width = WIDTH_MS[interval]
        everything = as_truth(reader.candles(None, interval, START_MS))
        opened = unconfirmed.open_time_ms - unconfirmed.open_time_ms % width
        ended = opened + width <= NOW_MS
        flagged = set(zip(unconfirmed.coin[ended], opened[ended], strict=True))
        assert set(zip(everything.coin, everything.open_time, strict=True)) >= flagged, interval
        verified = dict(zip(zip(everything.coin, everything.open_time, strict=True), everything.verified, strict=True))
        assert {key for key, ok in verified.items() if not ok} == flagged, interval
        kept = as_truth(reader.candles(None, interval, START_MS, verified_only=True))
        assert kept.verified.all() and len(kept) == len(everything) - len(flagged), interval
        assert_same_bars(reader.candles(None, interval, START_MS, verified_only=True),
                         expected_bars(minutes, None, interval, START_MS, NOW_MS, NOW_MS, verified_only=True), interval)


def test_a_complete_verified_bar_has_every_minute_closed_and_confirmed(minutes: pd.DataFrame, reader: MarketReader) -> None:
    confirmed = minutes[minutes.closed & minutes.confirmed]
    for interval in ("5m", "15m", "30m", "1h"):
        width = WIDTH_MS[interval]
        bars = as_truth(reader.candles(None, interval, START_MS, include_forming=True))
        whole = bars[bars.complete & bars.verified]
        assert len(whole) > 0, interval
        counts = confirmed.groupby([confirmed.coin, confirmed.open_time_ms - confirmed.open_time_ms % width]).size()
        for coin, opened in zip(whole.coin, whole.open_time, strict=True):
            assert counts[(coin, opened)] == width // MINUTE_MS, (interval, coin, opened)
