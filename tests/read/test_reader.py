"""MarketReader's contract beyond bar arithmetic: arguments, empty reads, features, funding,
markets, series, the joined frame, and a reader that never writes.

(Bars against a pandas resample of their minutes are in the other modules of this folder.)
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from market_assets.indicators import run_features
from market_assets.ledger import Ledger
from market_assets.memory import MemoryMissingError, open_memory
from market_assets.memory.defillama import SeriesPoint, upsert_series
from market_assets.memory.hyperliquid import FundingRow, upsert_funding
from market_assets.memory.polymarket import MarketSummary, upsert_market_summaries
from market_assets.read import (
    CANDLE_SCHEMA,
    FEATURE_COLUMNS,
    INTERVALS,
    MarketReader,
    join_informative,
)
from tests.market_data import DAY0_MS, MINUTE_MS, random_walk, series, store

HOUR_MS = 60 * MINUTE_MS
MINUTES = 6 * 60
NOW_MS = DAY0_MS + MINUTES * MINUTE_MS + 30_000


@pytest.fixture(scope="module")
def memory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six hours of BTC and ETH minutes, their features, nine funding hours, two markets, a series."""
    path = tmp_path_factory.mktemp("reader") / "market.db"
    with open_memory(path, clock=lambda: NOW_MS) as conn:
        for seed, coin in enumerate(("BTC", "ETH")):
            store(conn, series(coin, DAY0_MS, random_walk(seed, MINUTES, 100.0 * (seed + 1)), seed=seed), NOW_MS)
        run_features(conn, Ledger(conn, clock=lambda: NOW_MS))
        upsert_funding(conn, [
            FundingRow(coin, DAY0_MS + h * HOUR_MS, Decimal(f"0.0000{h + 1}"), Decimal("-0.0002"), True,
                       DAY0_MS + h * HOUR_MS + 48)
            for coin in ("BTC", "ETH") for h in range(6)
        ] + [FundingRow("BTC", DAY0_MS + 6 * HOUR_MS, Decimal("0.00009"), None, False, NOW_MS - 10_000)], NOW_MS)
        upsert_market_summaries(conn, [
            MarketSummary("1", "Will BTC reach 200k?", "btc-200k", '["Yes", "No"]', '["0.31", "0.69"]',
                          Decimal("1234.5"), Decimal("99.25"), "2026-12-31T00:00:00Z", True, False),
            MarketSummary("2", "Fed cuts rates in March?", "fed-march", '["Yes", "No"]', '["0.5", "0.5"]',
                          Decimal(10), None, None, False, True),
        ], NOW_MS)
        upsert_series(conn, [SeriesPoint("tvl", chain, DAY0_MS - d * 86_400_000, Decimal(100 + d))
                             for chain in ("Ethereum", "Solana") for d in range(3)], NOW_MS)
    return path


@pytest.fixture
def reader(memory: Path, tmp_path: Path) -> MarketReader:
    with MarketReader(memory, archive=tmp_path / "archive", clock=lambda: NOW_MS) as reader:
        yield reader


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda r: r.candles("BTC", "2m", DAY0_MS), "interval"),
        (lambda r: r.candles("XYZ", "1m", DAY0_MS), "coins"),
        (lambda r: r.candles(["BTC", 7], "1m", DAY0_MS), "coins"),
        (lambda r: r.candles("BTC", "1m", DAY0_MS + HOUR_MS, DAY0_MS), "start"),
        (lambda r: r.candles("BTC", "1m", "yesterday-ish"), "start"),
        (lambda r: r.candles("BTC", "1m", DAY0_MS, "2026-13-40"), "end"),
        (lambda r: r.candles("BTC", "1m", DAY0_MS, as_of=True), "as_of"),
        (lambda r: r.candles("BTC", "1m", DAY0_MS, output="polars"), "output"),
        (lambda r: r.features("BTC", DAY0_MS, columns=["rsi_14", "rsi_15"]), "columns"),
        (lambda r: r.funding("DOGE", DAY0_MS), "coins"),
        (lambda r: r.polymarket_markets(active="yes"), "active"),
        (lambda r: r.defillama_series(subjects=[1]), "subjects"),
        (lambda r: r.frame(["BTC"], "1h", DAY0_MS), "coin"),
    ],
)
def test_a_bad_argument_is_one_value_error_naming_it(reader: MarketReader, call, argument: str) -> None:
    with pytest.raises(ValueError) as raised:
        call(reader)
    assert str(raised.value).startswith(f"{argument}: ")


def test_times_are_read_from_every_form_a_strategy_holds(reader: MarketReader) -> None:
    start = pd.Timestamp(DAY0_MS + HOUR_MS, unit="ms", tz="UTC")
    expected = reader.candles("BTC", "1h", DAY0_MS + HOUR_MS, DAY0_MS + 3 * HOUR_MS)
    assert len(expected) == 2
    for start_as, end_as in [
        (start, start + pd.Timedelta(hours=2)),
        (start.to_pydatetime(), (start + pd.Timedelta(hours=2)).to_pydatetime()),
        (start.tz_localize(None).to_pydatetime(), (start + pd.Timedelta(hours=2)).tz_localize(None).to_pydatetime()),
        (start.isoformat(), (start + pd.Timedelta(hours=2)).isoformat()),
        (start.strftime("%Y-%m-%dT%H:%M:%SZ"), (start + pd.Timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")),
    ]:
        pd.testing.assert_frame_equal(reader.candles("BTC", "1h", start_as, end_as), expected)


def test_start_rounds_up_to_the_interval_and_end_is_exclusive(reader: MarketReader) -> None:
    bars = reader.candles("BTC", "15m", DAY0_MS + 1, DAY0_MS + 3 * 15 * MINUTE_MS)
    assert [t.value // 1_000_000 for t in bars["open_time"]] == [DAY0_MS + 15 * MINUTE_MS, DAY0_MS + 30 * MINUTE_MS]


@pytest.mark.parametrize("interval", list(INTERVALS))
def test_an_empty_range_is_an_empty_frame_of_the_same_columns_and_dtypes(reader: MarketReader, interval: str) -> None:
    full = reader.candles("BTC", "1m", DAY0_MS)
    empty = reader.candles("BTC", interval, DAY0_MS - 10 * 86_400_000, DAY0_MS - 9 * 86_400_000)
    assert empty.empty and list(empty.columns) == [f.name for f in CANDLE_SCHEMA]
    assert empty.dtypes.to_dict() == full.dtypes.to_dict()
    arrow = reader.candles("BTC", interval, DAY0_MS - 10 * 86_400_000, DAY0_MS - 9 * 86_400_000, output="arrow")
    assert arrow.num_rows == 0 and arrow.schema == CANDLE_SCHEMA
    for empty_read, full_read in [
        (reader.features("BTC", DAY0_MS - 86_400_000, DAY0_MS), reader.features("BTC", DAY0_MS)),
        (reader.funding("BTC", DAY0_MS - 86_400_000, DAY0_MS), reader.funding("BTC", DAY0_MS)),
        (reader.defillama_series(start=DAY0_MS + 1), reader.defillama_series()),
        (reader.polymarket_markets(search="no such market"), reader.polymarket_markets()),
    ]:
        assert empty_read.empty and not full_read.empty
        assert empty_read.dtypes.to_dict() == full_read.dtypes.to_dict()


def test_arrow_and_pandas_are_the_same_rows(reader: MarketReader) -> None:
    for call in (
        lambda out: reader.candles(None, "5m", DAY0_MS, include_forming=True, output=out),
        lambda out: reader.features(["ETH"], DAY0_MS, output=out),
        lambda out: reader.funding(None, DAY0_MS, output=out),
        lambda out: reader.polymarket_markets(output=out),
        lambda out: reader.defillama_series(output=out),
    ):
        table = call("arrow")
        assert isinstance(table, pa.Table)
        pd.testing.assert_frame_equal(table.to_pandas(), call("pandas"))


def test_features_are_the_stored_values_known_by_as_of(memory: Path, reader: MarketReader) -> None:
    with open_memory(memory, readonly=True) as conn:
        stored = conn.execute(
            f"SELECT open_time_ms, {', '.join(FEATURE_COLUMNS)} FROM features WHERE coin = 'ETH' ORDER BY open_time_ms"
        ).fetchall()
    got = reader.features("ETH", DAY0_MS)
    assert [t.value // 1_000_000 for t in got["open_time"]] == [row[0] for row in stored]
    values = got[list(FEATURE_COLUMNS)].to_numpy()
    np.testing.assert_array_equal(values, np.array([row[1:] for row in stored], dtype=np.float64))
    as_of = DAY0_MS + 200 * MINUTE_MS + 59_999
    known = reader.features("ETH", DAY0_MS, as_of=as_of, columns=["macd", "rsi_14"])
    assert list(known.columns) == ["coin", "open_time", "close_time", "rsi_14", "macd"]
    assert known["close_time"].max().value // 1_000_000 == DAY0_MS + 199 * MINUTE_MS + MINUTE_MS <= as_of
    assert len(known) == 200


def test_funding_as_of_returns_only_rates_observed_by_then(reader: MarketReader) -> None:
    rates = reader.funding("BTC", DAY0_MS)
    assert rates["funding_rate"].tolist() == [1e-05, 2e-05, 3e-05, 4e-05, 5e-05, 6e-05, 9e-05]
    assert rates["settled"].tolist() == [True] * 6 + [False]
    assert rates["premium"].isna().tolist() == [False] * 6 + [True]
    at_three = reader.funding("BTC", DAY0_MS, as_of=DAY0_MS + 3 * HOUR_MS + 47)
    assert at_three["funding_rate"].tolist() == [1e-05, 2e-05, 3e-05]
    assert (at_three["time"] <= pd.Timestamp(DAY0_MS + 3 * HOUR_MS + 47, unit="ms", tz="UTC")).all()


def test_markets_and_series_are_typed_and_filtered(reader: MarketReader) -> None:
    markets = reader.polymarket_markets(search="BTC")
    assert markets["market_id"].tolist() == ["1"]
    assert list(markets["outcomes"].iloc[0]) == ["Yes", "No"]
    assert list(markets["outcome_prices"].iloc[0]) == [0.31, 0.69]
    assert markets["volume"].iloc[0] == 1234.5 and bool(markets["active"].iloc[0]) is True
    assert reader.polymarket_markets(active=False)["market_id"].tolist() == ["2"]
    assert reader.polymarket_markets(search="FED-march")["market_id"].tolist() == ["2"]
    points = reader.defillama_series("Solana", start=DAY0_MS - 86_400_000)
    assert points["value"].tolist() == [101.0, 100.0]
    assert points["ts"].tolist() == [pd.Timestamp(DAY0_MS - 86_400_000, unit="ms", tz="UTC"),
                                     pd.Timestamp(DAY0_MS, unit="ms", tz="UTC")]
    assert reader.defillama_series(series="fees").empty


def test_frame_joins_only_what_was_known_at_each_close(reader: MarketReader) -> None:
    frame = reader.frame("BTC", "1h", DAY0_MS)
    assert frame.index.name == "close_time" and len(frame) == 6
    assert frame.index.is_monotonic_increasing
    # The funding rate settled at a bar's close is known at it (hour h's rate at h + 48 ms is not).
    assert frame["funding_time"].le(frame.index).all()
    assert frame["funding_rate"].tolist() == [1e-05, 2e-05, 3e-05, 4e-05, 5e-05, 6e-05]
    # The features of a bar's last minute close with it: joined, and nothing later.
    features = reader.features("BTC", DAY0_MS)
    by_close = features.set_index("close_time")
    for close, row in frame.iterrows():
        assert row["rsi_14"] == by_close.loc[close, "rsi_14"]


def test_join_informative_never_looks_ahead(reader: MarketReader) -> None:
    minutes = reader.candles("BTC", "1m", DAY0_MS)
    hours = reader.candles("BTC", "1h", DAY0_MS)
    joined = join_informative(minutes, hours)
    assert len(joined) == len(minutes)
    known = joined.dropna(subset=["close_time_inf"])
    assert (known["close_time_inf"] <= known["close_time"]).all()
    # The first hour joins the first minute of the second hour: at 01:00 the 00:00 bar has closed.
    first = known.iloc[0]
    assert first["open_time"] == pd.Timestamp(DAY0_MS + 59 * MINUTE_MS, unit="ms", tz="UTC")
    assert first["close_inf"] == hours["close"].iloc[0]


def test_a_reader_never_writes_and_needs_a_memory(memory: Path, reader: MarketReader, tmp_path: Path) -> None:
    before = digest(memory)
    reader.candles(None, "1h", DAY0_MS, include_forming=True)
    reader.frame("ETH", "5m", DAY0_MS)
    reader.close()
    assert digest(memory) == before
    missing = tmp_path / "nowhere" / "market.db"
    with pytest.raises(MemoryMissingError):
        MarketReader(missing, archive=tmp_path / "archive").candles("BTC", "1m", DAY0_MS)
    assert not missing.parent.exists()


WRITTEN_MINUTES = 3 * 1440
COINS_WRITTEN = ("BTC", "ETH", "SOL")


def truth(coin: str) -> list:
    return series(coin, DAY0_MS, random_walk(COINS_WRITTEN.index(coin) + 11, WRITTEN_MINUTES), seed=7)


def write_like_the_streamer(path: str) -> None:
    """Another process: three coins' minutes in order, 30 at a time as the streamer flushes, and a
    rollup of what has closed every 240 minutes, as maintenance runs beside it."""
    from market_assets.memory import connect
    from market_assets.memory.rollups import roll_pending

    conn = connect(Path(path), clock=lambda: NOW_MS)
    rows = {coin: truth(coin) for coin in COINS_WRITTEN}
    for start in range(0, WRITTEN_MINUTES, 30):
        store(conn, [r for coin in COINS_WRITTEN for r in rows[coin][start:start + 30]], NOW_MS)
        if start % 240 == 0:
            roll_pending(conn, DAY0_MS + start * MINUTE_MS)
    conn.close()


def test_reads_while_another_process_writes_are_exact_at_every_moment(tmp_path: Path) -> None:
    """Each call reads one snapshot: whatever the writer has committed, every bar is exactly the
    minutes written so far (in order), whether they came from rollups or minutes."""
    import multiprocessing

    path = tmp_path / "market.db"
    with open_memory(path, clock=lambda: NOW_MS):
        pass
    frames = {coin: pd.DataFrame(truth(coin)) for coin in COINS_WRITTEN}
    writer = multiprocessing.get_context("spawn").Process(target=write_like_the_streamer, args=(str(path),))
    writer.start()
    reads = 0
    seen: list[int] = []
    try:
        with MarketReader(path, archive=tmp_path / "archive", clock=lambda: DAY0_MS + 10 * 86_400_000) as reader:
            while writer.is_alive() or reads < 3:
                for interval in ("5m", "1h", "4h"):
                    bars = reader.candles(None, interval, DAY0_MS)
                    seen.append(int(bars["minutes"].sum()))
                    for bar in bars.itertuples():
                        first = (bar.open_time.value // 1_000_000 - DAY0_MS) // MINUTE_MS
                        minutes = frames[bar.coin].iloc[first:first + bar.minutes]
                        assert (bar.open, bar.high, bar.low, bar.close, bar.trades) == (
                            minutes["open"].iloc[0], minutes["high"].max(), minutes["low"].min(),
                            minutes["close"].iloc[-1], minutes["trades"].sum())
                        assert bar.volume == pytest.approx(minutes["volume"].sum(), rel=1e-12)
                    reads += 1
    finally:
        writer.join(timeout=60)
        if writer.is_alive():
            writer.kill()
    assert writer.exitcode == 0 and reads >= 3
    assert min(seen) < len(COINS_WRITTEN) * WRITTEN_MINUTES, "no read happened while the writer wrote"
    with MarketReader(path, archive=tmp_path / "archive", clock=lambda: DAY0_MS + 10 * 86_400_000) as reader:
        assert reader.candles(None, "1d", DAY0_MS)["minutes"].tolist() == [1440] * 9


def test_the_readme_strategy_runs_as_written(memory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Reading the memory", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.setenv("MARKET_DB", str(memory))
    names: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), names)  # noqa: S102 (the README's own example)
    bars, signal = names["bars"], names["signal"]
    assert isinstance(bars, pd.DataFrame) and len(bars) == 6 and bars.index.name == "close_time"
    assert signal.dtype == bool and len(signal) == len(bars)
    assert {"rsi_14", "sma_200", "funding_rate", "verified"} <= set(bars.columns)
