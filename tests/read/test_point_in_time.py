"""SPEC §11: a read as of a time returns nothing that was not closed or observed by then."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market_assets.read import MarketReader, join_informative
from tests.read.conftest import BOTH_ENGINES
from tests.read.seeding import COINS, HOUR_MS, MINUTE_MS, NOW_MS, START_MS, Market
from tests.read.truth import (
    WIDTH_MS,
    as_truth,
    assert_same_bars,
    epoch_ms,
    expected_bars,
)

FEATURES = ["rsi_14", "bb_upper_20", "bb_middle_20", "bb_lower_20", "sma_20", "sma_50", "sma_200", "ema_20", "ema_50",
            "ema_200", "macd", "macd_signal", "macd_hist"]
AS_OF = [
    START_MS + 3 * 1440 * MINUTE_MS + 17 * HOUR_MS + 29 * MINUTE_MS + 31_337,  # mid-minute, mid-bar
    START_MS + 5 * 1440 * MINUTE_MS + 12 * HOUR_MS,  # on every grid up to 12h
    START_MS + 8 * 1440 * MINUTE_MS + 59_999,  # a millisecond before a minute closes
    NOW_MS - 45 * MINUTE_MS + 1,  # after the last rollup, among unverified minutes
]


def stored_features(market: Market, as_of_ms: int) -> pd.DataFrame:
    """The features table as the features job left it, each row known at its minute's close."""
    with sqlite3.connect(f"file:{market.path}?mode=ro", uri=True) as conn:
        frame = pd.read_sql_query(
            f"SELECT coin, open_time_ms, {', '.join(FEATURES)} FROM features WHERE interval = '1m' "
            "AND open_time_ms + 60000 <= ? ORDER BY coin, open_time_ms", conn, params=(as_of_ms,))
    return frame


@pytest.mark.parametrize("as_of", AS_OF)
@pytest.mark.parametrize("interval", ["1m", "3m", "15m", "1h", "4h", "1d", "1w"])
def test_no_bar_closes_after_as_of_unless_asked_for_the_forming_one(
    market: Market, minutes: pd.DataFrame, reader: MarketReader, as_of: int, interval: str
) -> None:
    start = START_MS
    closed = reader.candles(None, interval, start, as_of=as_of)
    assert (epoch_ms(closed.close_time) <= as_of).all()
    assert_same_bars(closed, expected_bars(minutes, None, interval, start, NOW_MS, market.now_ms, as_of_ms=as_of),
                     f"{interval} as of {as_of}")

    forming = reader.candles(None, interval, start, as_of=as_of, include_forming=True)
    late = as_truth(forming)
    late = late[late.close_time > as_of]
    width = WIDTH_MS[interval]
    assert (late.open_time == as_of - as_of % width).all() and not late.complete.any()
    assert late.coin.is_unique
    # Built only from the minutes closed by as_of.
    assert (late.minutes <= (as_of % width) // MINUTE_MS).all()
    assert_same_bars(forming, expected_bars(minutes, None, interval, start, NOW_MS, market.now_ms, as_of_ms=as_of,
                                            include_forming=True), f"{interval} as of {as_of}, forming")


@BOTH_ENGINES
@pytest.mark.parametrize("as_of", AS_OF)
def test_features_as_of_are_only_those_known_by_then(market: Market, reader: MarketReader, as_of: int) -> None:
    start = as_of - 3 * HOUR_MS - 17 * MINUTE_MS
    got = reader.features(None, start, as_of=as_of)
    assert list(got.columns) == ["coin", "open_time", "close_time", *FEATURES]
    assert (epoch_ms(got.close_time) <= as_of).all()
    assert (epoch_ms(got.close_time) - epoch_ms(got.open_time) == MINUTE_MS).all()
    want = stored_features(market, as_of)
    want = want[want.open_time_ms >= start].reset_index(drop=True)
    assert len(want) > 0
    assert epoch_ms(got.open_time).tolist() == want.open_time_ms.tolist()
    assert got.coin.astype(object).tolist() == want.coin.tolist()
    np.testing.assert_array_equal(got[FEATURES].to_numpy(dtype=float), want[FEATURES].to_numpy(dtype=float))


def test_a_subset_of_feature_columns_keeps_the_tables_order(market: Market, reader: MarketReader) -> None:
    got = reader.features("ETH", START_MS + 2 * 86_400_000, START_MS + 2 * 86_400_000 + HOUR_MS, columns=["macd", "rsi_14"])
    assert list(got.columns) == ["coin", "open_time", "close_time", "rsi_14", "macd"]
    assert len(got) > 50


@BOTH_ENGINES
@pytest.mark.parametrize("as_of", [*AS_OF, NOW_MS - 30_001, NOW_MS - 30_000])
def test_funding_as_of_is_only_what_was_observed_by_then(market: Market, reader: MarketReader, as_of: int) -> None:
    start = as_of - 5 * HOUR_MS - 1
    got = reader.funding(None, start, as_of=as_of)
    assert list(got.columns) == ["coin", "hour", "time", "funding_rate", "premium", "settled"]
    assert (epoch_ms(got.time) <= as_of).all()
    want = sorted((r.coin, r.hour_ms, r.source_time_ms, float(r.funding_rate), None if r.premium is None else float(r.premium),
                   r.settled) for r in market.funding if r.hour_ms >= start and r.source_time_ms <= as_of)
    assert len(want) >= 5 * len(COINS) - len(COINS)
    rows = list(zip(got.coin.astype(object), epoch_ms(got.hour), epoch_ms(got.time), got.funding_rate, got.premium,
                    got.settled, strict=True))
    assert rows == want
    estimate_seen = any(not settled for *_, settled in rows)
    assert estimate_seen == (as_of >= NOW_MS - 30_000)


@pytest.mark.parametrize(("interval", "as_of"), [("1h", AS_OF[0]), ("5m", AS_OF[2]), ("4h", None), ("1m", AS_OF[3])])
def test_a_frame_joins_features_and_funding_known_at_each_bars_close(market: Market, reader: MarketReader, interval: str,
                                                                      as_of: int | None) -> None:
    cut = NOW_MS if as_of is None else as_of
    start = cut - 2 * 86_400_000 if interval != "1m" else cut - 3 * HOUR_MS
    frame = reader.frame("BTC", interval, start, as_of=as_of)
    assert frame.index.name == "close_time"
    closes = epoch_ms(frame.index.to_series())
    assert (closes <= cut).all() and len(frame) > 10
    features = stored_features(market, cut)
    features = features[features.coin == "BTC"]
    funding = sorted((r.source_time_ms, float(r.funding_rate)) for r in market.funding if r.coin == "BTC")
    # The latest row known at each close: its minute closed (open + 1 min), its rate observed.
    latest = np.searchsorted(features.open_time_ms.to_numpy() + MINUTE_MS, closes.to_numpy(), side="right") - 1
    assert (latest >= 0).all()
    np.testing.assert_array_equal(frame[FEATURES].to_numpy(dtype=float), features[FEATURES].to_numpy(dtype=float)[latest])
    observed = np.searchsorted(np.array([t for t, _ in funding]), closes.to_numpy(), side="right") - 1
    assert epoch_ms(frame.funding_time).tolist() == [funding[i][0] for i in observed]
    assert frame.funding_rate.tolist() == [funding[i][1] for i in observed]


@BOTH_ENGINES
def test_an_informative_1h_pair_joined_to_1m_bars_is_never_seen_before_its_close(reader: MarketReader) -> None:
    """freqtrade#4073: merging a 1h informative pair on its open time hands every 1m bar of an hour
    that hour's close, an hour early. Each 1m bar must get the latest 1h bar closed by its own close."""
    as_of = AS_OF[0]
    start = as_of - 6 * HOUR_MS - 7 * MINUTE_MS
    base = reader.frame("BTC", "1m", start, as_of=as_of).reset_index()
    informative = reader.frame("BTC", "1h", start - 2 * HOUR_MS, as_of=as_of).reset_index()
    joined = join_informative(base, informative)
    assert len(joined) == len(base) > 300
    base_close = epoch_ms(joined.close_time)
    informative_close = epoch_ms(joined.close_time_inf)
    assert (informative_close <= base_close).all()
    assert (epoch_ms(joined.funding_time_inf) <= base_close).all() and (epoch_ms(joined.funding_time) <= base_close).all()
    hourly = informative.assign(close_ms=epoch_ms(informative.close_time)).set_index("close_ms")
    for close, seen in zip(base_close.tolist(), informative_close.tolist(), strict=True):
        assert seen == max(c for c in hourly.index if c <= close)
    # The values that came with it are that bar's, features included.
    for column in ("close", "volume", "rsi_14", "ema_200", "funding_rate"):
        np.testing.assert_array_equal(joined[f"{column}_inf"].to_numpy(dtype=float),
                                      hourly.loc[informative_close, column].to_numpy(dtype=float))
    # The 1m bar at 10:59 sees the 09:00-10:00 bar; the one closing at 11:00 sees 10:00-11:00.
    on_the_hour = base_close % HOUR_MS == 0
    assert (informative_close[on_the_hour] == base_close[on_the_hour]).all() and on_the_hour.sum() >= 5
    assert (informative_close[~on_the_hour] == base_close[~on_the_hour] - base_close[~on_the_hour] % HOUR_MS).all()


COIN_SETS = st.one_of(st.none(), st.lists(st.sampled_from(COINS), min_size=1, max_size=3, unique=True))


@pytest.fixture(scope="module")
def every_feature(market: Market) -> pd.DataFrame:
    return stored_features(market, NOW_MS)


@settings(max_examples=25, deadline=None, database=None)
@given(coins=COIN_SETS, start=st.integers(START_MS, NOW_MS), length=st.integers(0, 5 * HOUR_MS),
       as_of=st.integers(START_MS, NOW_MS + HOUR_MS))
def test_any_features_and_funding_read_is_the_rows_known_by_as_of(
    market: Market, reader: MarketReader, every_feature: pd.DataFrame, coins: list[str] | None, start: int, length: int,
    as_of: int,
) -> None:
    end = start + length
    got = reader.features(coins, start, end, as_of=as_of)
    cut = min(as_of, NOW_MS)  # nothing is known after now
    want = every_feature[(every_feature.open_time_ms >= start) & (every_feature.open_time_ms < end)
                         & (every_feature.open_time_ms + MINUTE_MS <= cut)]
    if coins is not None:
        want = want[want.coin.isin(coins)]
    assert list(zip(got.coin.astype(object), epoch_ms(got.open_time), strict=True)) \
        == list(zip(want.coin, want.open_time_ms, strict=True))
    np.testing.assert_array_equal(got[FEATURES].to_numpy(dtype=float), want[FEATURES].to_numpy(dtype=float))

    rates = reader.funding(coins, start, end, as_of=as_of)
    expected = sorted((r.coin, r.hour_ms, r.source_time_ms) for r in market.funding
                      if start <= r.hour_ms < end and r.source_time_ms <= cut and (coins is None or r.coin in coins))
    assert list(zip(rates.coin.astype(object), epoch_ms(rates.hour), epoch_ms(rates.time), strict=True)) == expected
