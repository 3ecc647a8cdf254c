"""SPEC §11: bad arguments are one ValueError naming the argument; an empty range is an empty
frame of the same columns and dtypes; Arrow and pandas outputs hold the same rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from market_assets.read import MarketReader
from tests.read.conftest import BOTH_ENGINES
from tests.read.seeding import DAY_MS, HOUR_MS, LISTED, NOW_MS, START_MS

DAY3 = START_MS + 3 * DAY_MS
Read = Callable[..., Any]

READS: dict[str, Callable[[MarketReader], Read]] = {
    "candles 1m": lambda r: lambda *a, **k: r.candles(*a[:1], "1m", *a[1:], **k),
    "candles 1w": lambda r: lambda *a, **k: r.candles(*a[:1], "1w", *a[1:], include_forming=True, **k),
    "features": lambda r: r.features,
    "funding": lambda r: r.funding,
}


@pytest.mark.parametrize(("call", "argument"), [
    (lambda r: r.candles("BTC", "2m", START_MS), "interval"),
    (lambda r: r.candles("BTC", "1M", START_MS), "interval"),
    (lambda r: r.candles("XYZ", "1h", START_MS), "coins"),
    (lambda r: r.candles(["BTC", "XYZ"], "1h", START_MS), "coins"),
    (lambda r: r.candles("BTC", "1h", DAY3 + 1, DAY3), "start"),
    (lambda r: r.candles("BTC", "1h", "the day before yesterday"), "start"),
    (lambda r: r.candles("BTC", "1h", START_MS, "2026-13-45"), "end"),
    (lambda r: r.candles("BTC", "1h", START_MS, as_of="soon"), "as_of"),
    (lambda r: r.candles("BTC", "1h", START_MS, output="csv"), "output"),
    (lambda r: r.features("XYZ", START_MS), "coins"),
    (lambda r: r.features("BTC", START_MS, columns=["rsi_14", "rsi_7"]), "columns"),
    (lambda r: r.features("BTC", DAY3, START_MS), "start"),
    (lambda r: r.funding("XYZ", START_MS), "coins"),
    (lambda r: r.funding("BTC", DAY3, START_MS), "start"),
    (lambda r: r.frame("BTC", "7m", START_MS), "interval"),
    (lambda r: r.frame("XYZ", "1h", START_MS), "coin"),
])
def test_a_bad_argument_is_a_value_error_naming_it(reader: MarketReader, call: Callable[[MarketReader], object],
                                                    argument: str) -> None:
    with pytest.raises(ValueError) as raised:
        call(reader)
    assert str(raised.value).startswith(f"{argument}: "), str(raised.value)


def test_the_known_coins_are_the_universe_and_the_stored_ones(reader: MarketReader) -> None:
    assert set(reader.coins()) == set(LISTED)


def test_a_listed_coin_without_candles_reads_empty(reader: MarketReader) -> None:
    assert reader.candles("DOGE", "1h", START_MS).empty


@BOTH_ENGINES
@pytest.mark.parametrize("read", list(READS))
@pytest.mark.parametrize("empty", ["before the memory", "an empty span", "a listed coin with no rows"])
def test_an_empty_read_has_the_columns_and_dtypes_of_a_full_one(reader: MarketReader, read: str, empty: str) -> None:
    call = READS[read](reader)
    full = call(None, DAY3, DAY3 + 6 * HOUR_MS) if read != "candles 1w" else call(None, START_MS)
    assert len(full) > 0
    none = {"before the memory": lambda: call(None, START_MS - 30 * DAY_MS, START_MS - 29 * DAY_MS),
            "an empty span": lambda: call("BTC", DAY3, DAY3),
            "a listed coin with no rows": lambda: call("DOGE", START_MS)}[empty]()
    assert none.empty
    assert list(none.columns) == list(full.columns)
    assert none.dtypes.to_dict() == full.dtypes.to_dict()


@BOTH_ENGINES
@pytest.mark.parametrize("read", list(READS))
def test_arrow_output_holds_the_same_rows_and_types_as_pandas(reader: MarketReader, read: str) -> None:
    call = READS[read](reader)
    frame = call(None, DAY3, DAY3 + 6 * HOUR_MS) if read != "candles 1w" else call(None, START_MS)
    table = call(None, DAY3, DAY3 + 6 * HOUR_MS, output="arrow") if read != "candles 1w" else call(None, START_MS, output="arrow")
    assert isinstance(table, pa.Table) and table.column_names == list(frame.columns)
    pd.testing.assert_frame_equal(table.to_pandas(), frame)
    empty = call("BTC", DAY3, DAY3, output="arrow")
    assert empty.num_rows == 0 and empty.schema == table.schema


def test_times_are_timezone_aware_utc(reader: MarketReader) -> None:
    bars = reader.candles("BTC", "1h", DAY3, DAY3 + 3 * HOUR_MS)
    for column in ("open_time", "close_time"):
        assert isinstance(bars[column].dtype, pd.DatetimeTZDtype) and str(bars[column].dt.tz) == "UTC"
    assert bars.open_time.iloc[0] == pd.Timestamp("2026-11-21T00:00:00Z") == pd.Timestamp(DAY3, unit="ms", tz="UTC")


def test_every_time_form_reads_the_same_bars(reader: MarketReader) -> None:
    """Epoch ms, naive datetime (UTC), aware datetime, Timestamp and ISO text mean the same instant."""
    start, end = pd.Timestamp(DAY3 + 90_000, unit="ms", tz="UTC"), pd.Timestamp(NOW_MS - DAY_MS, unit="ms", tz="UTC")
    forms = [(DAY3 + 90_000, NOW_MS - DAY_MS), (start.to_pydatetime().replace(tzinfo=None), end.to_pydatetime().replace(tzinfo=None)),
             (start.to_pydatetime(), end.to_pydatetime()), (start, end), (start.isoformat(), end.isoformat()),
             (start.tz_convert("America/New_York"), end.tz_convert("Asia/Tokyo"))]
    reads = [reader.candles("ETH", "15m", a, b) for a, b in forms]
    assert len(reads[0]) > 100
    for other in reads[1:]:
        pd.testing.assert_frame_equal(other, reads[0])


@pytest.mark.parametrize(("argument", "value"), [
    ("start", "3000-01-01"), ("start", datetime(9999, 12, 31)), ("start", 10**20), ("end", "2500-06-01T00:00:00Z"),
    ("as_of", "2300-01-01"), ("start", "1000-01-01"), ("start", -(10**15)),
])
def test_a_time_outside_pandas_range_is_an_empty_read_or_a_value_error_naming_it(reader: MarketReader, argument: str,
                                                                                   value: object) -> None:
    """pandas timestamps stop at 2262 and start at 1677; epoch ms, ISO text and datetimes do not."""
    arguments: dict[str, object] = {"start": START_MS, "end": None, "as_of": None} | {argument: value}
    try:
        bars = reader.candles("BTC", "1h", arguments["start"], arguments["end"], as_of=arguments["as_of"])
    except ValueError as refused:
        assert str(refused).startswith(f"{argument}: "), str(refused)
    else:
        assert list(bars.columns)[:3] == ["coin", "open_time", "close_time"]
