"""A memory the read tests query, and the truth it was built from.

The truth is the list of 1-minute rows written (``History``), kept beside the memory; every
read is checked against a pandas ``resample`` of those rows (``tests.read.truth``), never
against the reader's own tables. The memory is written through the product's writers
(``write_candles``, ``upsert_funding``, ``run_features``, ``run_maintenance``) and so holds what a
live stack leaves: rollups up to the last maintenance run, minutes after it only as minutes,
rolled minutes revised, confirmed or backfilled since (their rollups queued, stale), gaps,
unverified minutes, and each coin's forming minute.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

import numpy as np

from market_assets.indicators import run_features
from market_assets.ledger import Ledger
from market_assets.maintenance import run_maintenance
from market_assets.memory import connect
from market_assets.memory.candles import CandleRow
from market_assets.memory.connection import close, write_transaction
from market_assets.memory.hyperliquid import (
    FundingRow,
    UniverseRow,
    upsert_funding,
    upsert_universe,
)
from tests.conftest import FrozenClock
from tests.market_data import DAY0_MS, DAY_MS, MINUTE_MS, store

HOUR_MS = 3_600_000
START_MS = DAY0_MS
"""A Wednesday, 00:00 UTC: the epoch-aligned week (Thursday to Thursday) turns a day later."""
SPAN_MINUTES = 9 * 1440 + 7 * 60 + 23
NOW_MS = START_MS + SPAN_MINUTES * MINUTE_MS + 25_000
"""Day 9, 07:23:25: 25 s into each coin's forming minute."""
ROLLED_MS = NOW_MS - NOW_MS % MINUTE_MS - 97 * MINUTE_MS
"""The last maintenance run: the 97 minutes after it are only minutes (the current hour, the one before)."""
COINS = ("BTC", "ETH", "SOL")
LISTED = (*COINS, "DOGE")
"""The universe: DOGE is listed but has no candles yet."""
SOL_LISTED_MS = START_MS + 2 * DAY_MS + 6 * HOUR_MS + 17 * MINUTE_MS
STALE_FORMING_MS = START_MS + 6 * DAY_MS + 13 * HOUR_MS + 42 * MINUTE_MS
"""A SOL minute left forming (closed = 0) by a streamer that died before its close: never a closed minute."""
REVISED_MS = START_MS + 2 * DAY_MS + 5 * HOUR_MS + 31 * MINUTE_MS
"""A BTC minute revised from REST after its hour was rolled up (its rollups are queued, stale)."""
BACKFILLED_MS = START_MS + 4 * DAY_MS + 11 * HOUR_MS + 8 * MINUTE_MS
"""A SOL minute missing at the rollup, backfilled after it."""


def quantize(values: np.ndarray, digits: int = 5) -> np.ndarray:
    """Exchange-like prices: ``digits`` significant digits."""
    return np.array([float(f"{v:.{digits}g}") for v in values.tolist()])


def walk(coin: str, start_ms: int, count: int, price: float, seed: int, *, unconfirmed: float = 0.01,
         drop: float = 0.02) -> list[CandleRow]:
    """``count`` minutes from ``start_ms`` of a random walk near ``price``: prices to 5 significant
    digits, volumes to 4 decimals; a fraction ``drop`` of the minutes missing and ``unconfirmed``
    of them closed but not confirmed."""
    rng = np.random.default_rng(seed)
    closes = quantize(price * np.exp(np.cumsum(rng.normal(0.0, 0.0015, count))))
    opens = quantize(np.concatenate(([price], closes[:-1])))
    highs = quantize(np.maximum(opens, closes) * (1 + rng.uniform(0.0, 0.002, count)))
    lows = quantize(np.minimum(opens, closes) * (1 - rng.uniform(0.0, 0.002, count)))
    volumes = np.round(rng.lognormal(2.0, 1.2, count), 4)
    trades = rng.integers(0, 200, count)
    kept = rng.random(count) >= drop
    confirmed = rng.random(count) >= unconfirmed
    return [
        CandleRow(coin, "1m", start_ms + i * MINUTE_MS, start_ms + (i + 1) * MINUTE_MS - 1, float(opens[i]),
                  float(highs[i]), float(lows[i]), float(closes[i]), float(volumes[i]), int(trades[i]), True,
                  bool(confirmed[i]))
        for i in range(count) if kept[i]
    ]


@dataclass
class History:
    """The 1-minute rows a memory holds, as written (the truth), per coin, by open time."""

    minutes: dict[str, dict[int, CandleRow]] = field(default_factory=dict)

    def put(self, rows: Sequence[CandleRow]) -> None:
        for row in rows:
            self.minutes.setdefault(row.coin, {})[row.open_time_ms] = row

    def rows(self) -> list[CandleRow]:
        return [row for coin in sorted(self.minutes) for _, row in sorted(self.minutes[coin].items())]


@dataclass(frozen=True)
class Market:
    """A seeded memory: its file, the minutes it holds, its funding rows, and its clock."""

    path: Path
    history: History
    funding: tuple[FundingRow, ...]
    now_ms: int
    changed_after_rollup: tuple[tuple[str, int], ...] = ()
    """(coin, open time) of the rolled minutes revised, confirmed or backfilled after the rollup."""


def write(conn: sqlite3.Connection, rows: Sequence[CandleRow], now_ms: int, history: History) -> None:
    """Store rows through the streamer's writer in flush-sized batches, and record them as truth."""
    for first in range(0, len(rows), 5_000):
        store(conn, rows[first:first + 5_000], now_ms)
    history.put(rows)


def funding_rows(coins: Sequence[str], start_ms: int, now_ms: int, seed: int) -> list[FundingRow]:
    """Settled rates of every ended hour (fundingHistory: settled a few ms after the hour), and the
    current hour's estimate observed 30 s before ``now_ms``."""
    rng = np.random.default_rng(seed)
    current = now_ms - now_ms % HOUR_MS
    rows: list[FundingRow] = []
    for coin in coins:
        for hour in range(start_ms, current, HOUR_MS):
            rate = Decimal(f"{rng.normal(1.25e-5, 2e-5):.8f}")
            rows.append(FundingRow(coin, hour, rate, Decimal(f"{rng.normal(0, 3e-4):.8f}"), True, hour + int(rng.integers(1, 90))))
        rows.append(FundingRow(coin, current, Decimal("0.0000125"), Decimal("-0.00021"), False, now_ms - 30_000))
    return rows


def seed_market(path: Path) -> Market:
    """The read tests' memory: BTC, ETH and SOL over 9 days and 7 hours (~37,000 minutes)."""
    clock = FrozenClock(ROLLED_MS)
    history = History()
    conn = connect(path, clock=clock)
    try:
        upsert_universe(conn, [UniverseRow(coin, "", i, 3, 20, False) for i, coin in enumerate(LISTED)], START_MS)
        end = NOW_MS - NOW_MS % MINUTE_MS
        btc = [r for r in walk("BTC", START_MS, SPAN_MINUTES, 91_234.0, 1)
               if not START_MS + DAY_MS + 10 * HOUR_MS <= r.open_time_ms < START_MS + DAY_MS + 11 * HOUR_MS]
        eth = [r for r in walk("ETH", START_MS, SPAN_MINUTES, 3_021.7, 2)
               if not START_MS + 5 * DAY_MS <= r.open_time_ms < START_MS + 6 * DAY_MS]
        sol = [r for r in walk("SOL", SOL_LISTED_MS, (end - SOL_LISTED_MS) // MINUTE_MS, 142.13, 3)
               if r.open_time_ms != BACKFILLED_MS]
        sol = [replace_row(r, closed=False, confirmed=False) if r.open_time_ms == STALE_FORMING_MS else r for r in sol]
        everything = sorted([*btc, *eth, *sol], key=lambda r: (r.open_time_ms, r.coin))
        before = [r for r in everything if r.open_time_ms + MINUTE_MS <= ROLLED_MS]
        write(conn, before, ROLLED_MS, history)
        run_maintenance(conn, Ledger(conn, clock))

        clock.now_ms = NOW_MS
        after = [r for r in everything if r.open_time_ms + MINUTE_MS > ROLLED_MS]
        after = [replace_row(r, confirmed=False) if r.open_time_ms >= end - 30 * MINUTE_MS else r for r in after]
        write(conn, after, NOW_MS, history)
        revised = history.minutes["BTC"][REVISED_MS]
        unconfirmed_eth = lone_unconfirmed(history.minutes["ETH"].values(), ROLLED_MS)
        filled = walk("SOL", BACKFILLED_MS, 1, 150.02, 4, unconfirmed=0.0, drop=0.0)
        write(conn, [replace_row(revised, high=revised.high * 1.01, volume=revised.volume + 7.5),
                     replace_row(unconfirmed_eth, confirmed=True), *filled], NOW_MS, history)
        forming = [CandleRow(coin, "1m", end, end + MINUTE_MS - 1, *(4 * [history.minutes[coin][end - MINUTE_MS].close]), 0.37,
                             2, False, False) for coin in COINS]
        write(conn, forming, NOW_MS, history)

        funding = funding_rows(COINS, START_MS, NOW_MS, 5)
        upsert_funding(conn, funding, NOW_MS)
        run_features(conn, Ledger(conn, clock))
    finally:
        close(conn)
    changed = (("BTC", REVISED_MS), ("ETH", unconfirmed_eth.open_time_ms), ("SOL", BACKFILLED_MS))
    return Market(path, history, tuple(funding), NOW_MS, changed)


def lone_unconfirmed(rows: Iterable[CandleRow], before_ms: int) -> CandleRow:
    """The first unconfirmed minute before ``before_ms`` that is its hour's only one: confirming it
    turns the hour verified."""
    by_hour: dict[int, list[CandleRow]] = {}
    for row in rows:
        if not row.confirmed and row.open_time_ms < before_ms:
            by_hour.setdefault(row.open_time_ms - row.open_time_ms % HOUR_MS, []).append(row)
    return next(hour[0] for _, hour in sorted(by_hour.items()) if len(hour) == 1)


def replace_row(row: CandleRow, **changes: object) -> CandleRow:
    return row._replace(**changes)


def copy_market(market: Market, path: Path) -> Market:
    """The same memory in another file, for a test that changes it (closed: nothing left in a WAL)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(market.path, path)
    return replace(market, path=path, history=History({coin: dict(rows) for coin, rows in market.history.minutes.items()}))


def roll_up(market: Market) -> None:
    """A maintenance run at the market's clock: every ended bucket rolled, nothing past retention yet."""
    conn = connect(market.path, clock=FrozenClock(market.now_ms))
    try:
        run_maintenance(conn, Ledger(conn, FrozenClock(market.now_ms)))
    finally:
        close(conn)


def prune_minutes_before(market: Market, day_ms: int) -> int:
    """Delete every closed 1-minute row before ``day_ms`` whose day is rolled up whole, as the
    retention prune did before the archive existed (memories pruned before issue 15 hold such
    days: rollups, no minutes, no archive). Returns the rows deleted."""
    conn = connect(market.path, clock=FrozenClock(market.now_ms))
    try:
        with write_transaction(conn):
            pending = conn.execute("SELECT count(*) FROM pending_rollups WHERE bucket_ms < ?", (day_ms,)).fetchone()[0]
            assert pending == 0, "roll the days up before pruning them"
            return conn.execute("DELETE FROM candles WHERE interval = '1m' AND closed = 1 AND open_time_ms < ?",
                                (day_ms,)).rowcount
    finally:
        close(conn)
