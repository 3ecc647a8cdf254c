"""What a read must return, computed from the 1-minute rows written, with pandas ``resample``.

Every interval is epoch-aligned (the weekly bar opens on Thursday 00:00 UTC, as 1970-01-01 was a
Thursday and as Hyperliquid's own weekly candles open). A bar is open=first, high=max, low=min,
close=last, volume=sum, trades=sum of its minutes, ``minutes`` their count; a bar with no minute
is absent (never filled). ``complete`` = every minute of the bar present and the bar not cut by
``as_of``; ``verified`` = every minute behind it confirmed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from market_assets.memory.candles import CandleRow

MINUTE_MS = 60_000
WIDTH_MS = {
    "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000,
    "2h": 7_200_000, "4h": 14_400_000, "8h": 28_800_000, "12h": 43_200_000, "1d": 86_400_000, "1w": 604_800_000,
}
CANDLE_COLUMNS = ["coin", "open_time", "close_time", "open", "high", "low", "close", "volume", "trades", "minutes",
                  "complete", "verified"]
VALUE_COLUMNS = ["open", "high", "low", "close", "trades", "minutes", "complete", "verified"]
"""Compared exactly; ``volume`` is compared to 1e-12 relative (sums associate per rollup level)."""


def minutes_frame(rows: Iterable[CandleRow]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(list(rows), columns=list(CandleRow._fields))
    return frame.drop(columns=["interval", "close_time_ms"])


def expected_bars(minutes: pd.DataFrame, coins: Sequence[str] | None, interval: str, start_ms: int, end_ms: int,
                  now_ms: int, *, as_of_ms: int | None = None, include_forming: bool = False,
                  verified_only: bool = False) -> pd.DataFrame:
    """The bars of ``interval`` a read of ``[start_ms, end_ms)`` at ``now_ms`` (or ``as_of_ms``) returns,
    from ``minutes`` (a :func:`minutes_frame`): ``open_time`` and ``close_time`` as epoch ms, sorted by
    (coin, open_time)."""
    width = WIDTH_MS[interval]
    cut = now_ms if as_of_ms is None else as_of_ms
    first = -(-start_ms // width) * width
    frame = minutes[(minutes.open_time_ms >= first) & (minutes.open_time_ms < end_ms + width)]
    if coins is not None:
        frame = frame[frame.coin.isin(list(coins))]
    forming_open = cut - cut % width
    # Minutes closed by the cut; with as_of None and include_forming, the stored forming minute too.
    closed = frame.closed & (frame.open_time_ms + MINUTE_MS <= cut)
    if include_forming and as_of_ms is None:
        closed |= frame.open_time_ms >= forming_open
    frame = frame[closed]
    bars = resample(frame, width)
    bars = bars[(bars.open_time >= first) & (bars.open_time < end_ms)]
    ended = bars.close_time <= cut
    forming = include_forming & (bars.open_time == forming_open) & ~ended
    bars = bars[ended | forming].copy()
    bars.loc[forming[ended | forming], "complete"] = False
    if verified_only:
        bars = bars[bars.verified]
    return bars.sort_values(["coin", "open_time"]).reset_index(drop=True)


def resample(frame: pd.DataFrame, width_ms: int) -> pd.DataFrame:
    """pandas ``resample`` per coin, epoch-aligned, left-closed and left-labelled."""
    if frame.empty:
        return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in (
            ("coin", object), ("open_time", np.int64), ("close_time", np.int64), ("open", float), ("high", float),
            ("low", float), ("close", float), ("volume", float), ("trades", np.int64), ("minutes", np.int64),
            ("complete", bool), ("verified", bool))})
    indexed = frame.assign(time=pd.to_datetime(frame.open_time_ms, unit="ms", utc=True)).set_index("time").sort_index()
    bars = (indexed.groupby("coin")
            .resample(pd.Timedelta(milliseconds=width_ms), origin="epoch", closed="left", label="left")
            .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum", "trades": "sum",
                  "open_time_ms": "count", "confirmed": "min"})
            .rename(columns={"open_time_ms": "minutes"})
            .reset_index())
    bars = bars[bars.minutes > 0]
    open_ms = (bars.time - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    return pd.DataFrame({
        "coin": bars.coin.astype(object), "open_time": open_ms.astype(np.int64), "close_time": (open_ms + width_ms).astype(np.int64),
        "open": bars.open, "high": bars.high, "low": bars.low, "close": bars.close, "volume": bars.volume,
        "trades": bars.trades.astype(np.int64), "minutes": bars.minutes.astype(np.int64),
        "complete": bars.minutes == width_ms // MINUTE_MS, "verified": bars.confirmed.astype(bool),
    }).reset_index(drop=True)


def epoch_ms(column: pd.Series) -> pd.Series:
    """A timestamp column as epoch milliseconds (whatever its unit)."""
    return ((column - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).astype(np.int64)


def as_truth(read: pd.DataFrame) -> pd.DataFrame:
    """A reader's candles in the truth's shape: times as epoch ms, default index."""
    out = read.reset_index(drop=True).copy()
    out["coin"] = out.coin.astype(object)
    out["open_time"] = epoch_ms(out.open_time)
    out["close_time"] = epoch_ms(out.close_time)
    return out


def assert_same_bars(read: pd.DataFrame, expected: pd.DataFrame, context: str = "", *,
                     unverified_allowed: bool = False) -> None:
    """Same bars (coin, open and close times) in the same order, the same values; volume to 1e-12.

    ``unverified_allowed``: a bar may say ``verified=False`` where every minute is confirmed (the
    safe direction), never ``verified=True`` where one is not."""
    got = as_truth(read)
    assert list(read.columns) == CANDLE_COLUMNS, context
    keys = ["coin", "open_time", "close_time"]
    got_keys = list(got[keys].itertuples(index=False, name=None))
    want_keys = list(expected[keys].itertuples(index=False, name=None))
    if got_keys != want_keys:
        extra = sorted(set(got_keys) - set(want_keys))[:5]
        missing = sorted(set(want_keys) - set(got_keys))[:5]
        raise AssertionError(f"{context}: {len(got_keys)} bars, expected {len(want_keys)}; "
                             f"unexpected {extra}, missing {missing}")
    if unverified_allowed:
        claimed = got.verified.to_numpy() & ~expected.verified.to_numpy()
        assert not claimed.any(), f"{context}: {got_keys[int(np.argmax(claimed))]} claims verified with a minute unconfirmed"
    for column in [c for c in VALUE_COLUMNS if not (unverified_allowed and c == "verified")]:
        differs = got[column].to_numpy() != expected[column].to_numpy()
        if differs.any():
            i = int(np.argmax(differs))
            raise AssertionError(f"{context}: {column} of {got_keys[i]} is {got[column].iloc[i]!r}, "
                                 f"expected {expected[column].iloc[i]!r} ({int(differs.sum())} bars differ)")
    np.testing.assert_allclose(got.volume.to_numpy(), expected.volume.to_numpy(), rtol=1e-12, atol=0, err_msg=context)
