"""Candle rows: forming buckets are upserted, closed ones only replaced by closed ones."""

from __future__ import annotations

import pytest

from market_assets.memory.candles import CandleRow, candles_of, write_candles
from market_assets.memory.connection import MemoryConnection

from .conftest import T0_MS

MINUTE = 60_000
BASE = T0_MS - T0_MS % MINUTE

@pytest.fixture
def conn(memory_conn: MemoryConnection) -> MemoryConnection:
    """Every test of this module runs on SQLite and on PostgreSQL (``memory_conn``)."""
    return memory_conn



def bucket(minute: int, volume: str, *, closed: bool = False, coin: str = "BTC") -> CandleRow:
    start = BASE + minute * MINUTE
    return CandleRow(coin, "1m", start, start + MINUTE - 1, 100.5, 101.0, 99.5, 100.75, float(volume), 3,
                     closed)


def write(conn: MemoryConnection, rows: list[CandleRow], *, newest: dict[str, int] | None = None,
          before_ms: int = 0) -> int:
    return write_candles(conn, rows, newest_open_by_coin=newest or {}, interval="1m",
                         close_ended_before_ms=before_ms, now_ms=T0_MS)[0]


def test_a_forming_bucket_is_upserted_with_growing_volume(conn: MemoryConnection) -> None:
    write(conn, [bucket(0, "1.5")])
    write(conn, [bucket(0, "2.25")])
    [stored] = candles_of(conn, "BTC", "1m")
    assert (stored.volume, stored.closed) == (2.25, False)


def test_a_later_bucket_closes_the_earlier_ones_of_its_coin_only(conn: MemoryConnection) -> None:
    write(conn, [bucket(0, "1"), bucket(0, "1", coin="ETH")])
    write(conn, [bucket(1, "0.5")], newest={"BTC": BASE + MINUTE})
    assert [c.closed for c in candles_of(conn, "BTC", "1m")] == [True, False]
    assert [c.closed for c in candles_of(conn, "ETH", "1m")] == [False]


def test_a_bucket_whose_close_time_passed_is_closed(conn: MemoryConnection) -> None:
    write(conn, [bucket(0, "1"), bucket(1, "1", coin="ETH")])
    write(conn, [], before_ms=BASE + MINUTE)  # minute 0 ended; ETH's minute 1 has not
    assert [c.closed for c in candles_of(conn, "BTC", "1m")] == [True]
    assert [c.closed for c in candles_of(conn, "ETH", "1m")] == [False]


def test_a_late_forming_frame_never_overwrites_a_closed_bucket(conn: MemoryConnection) -> None:
    write(conn, [bucket(0, "9.75", closed=True)])  # REST backfill: final
    write(conn, [bucket(0, "1.0")])  # a delayed WS frame of the same minute
    [stored] = candles_of(conn, "BTC", "1m")
    assert (stored.volume, stored.closed) == (9.75, True)
    write(conn, [bucket(0, "10.0", closed=True)])  # a newer closed row does replace it
    assert candles_of(conn, "BTC", "1m")[0].volume == 10.0


def queues(conn: MemoryConnection) -> tuple[list[tuple[str, int]], list[tuple[str, int, int, int]], list[int]]:
    """The features queue (per minute), the rollup queue (hour, span), and the archive's stamped days."""
    return (
        [tuple(r) for r in conn.execute("SELECT coin, open_time_ms - ? FROM pending_features ORDER BY change_id", (BASE,))],
        [tuple(r) for r in conn.execute(
            "SELECT coin, bucket_ms, from_ms - bucket_ms, to_ms - bucket_ms FROM pending_rollups ORDER BY coin, bucket_ms")],
        [r[0] for r in conn.execute("SELECT day_ms FROM archived_days ORDER BY day_ms")],
    )


def drain(conn: MemoryConnection, day_ms: int) -> None:
    """The consumers took everything; the day is archived again."""
    conn.execute("DELETE FROM pending_features")
    conn.execute("DELETE FROM pending_rollups")
    conn.execute("INSERT INTO archived_days (dataset, day_ms, rows, checksum, archived_at_ms) VALUES ('candles', ?, 1, 'x', 0)", (day_ms,))


def test_the_change_queues_take_each_changed_closed_minute_once_and_nothing_else(conn: MemoryConnection) -> None:
    """The triggers behind features and rollups (SQLite's row triggers, PostgreSQL's statement
    triggers): a closed minute written, revised or closed queues its features and its hour's
    5-minute span and unstamps its archived day; a confirmation alone queues the hour only; a
    forming row or a byte-identical re-send queues nothing."""
    hour = BASE - BASE % 3_600_000
    day = BASE - BASE % 86_400_000
    five = BASE - BASE % 300_000  # minutes 0 and 1 share a 5-minute bucket (T0 is 6 min 40 s past an hour)
    assert BASE + MINUTE < five + 300_000
    drain(conn, day)
    write(conn, [bucket(0, "1", closed=True), bucket(1, "1", closed=True), bucket(2, "1"), bucket(0, "1", coin="ETH", closed=True)])
    features, rollups, stamps = queues(conn)
    assert sorted(features) == [("BTC", 0), ("BTC", MINUTE), ("ETH", 0)]
    assert rollups == [("BTC", hour, five - hour, five - hour + 300_000), ("ETH", hour, five - hour, five - hour + 300_000)]
    assert stamps == []

    drain(conn, day)
    write(conn, [bucket(0, "1", closed=True), bucket(2, "1.5")])  # identical re-send; a forming row re-sent
    assert queues(conn) == ([], [], [day])

    write(conn, [bucket(0, "2", closed=True)])  # revised
    assert queues(conn) == ([("BTC", 0)], [("BTC", hour, five - hour, five - hour + 300_000)], [])

    drain(conn, day)
    write(conn, [bucket(0, "2", closed=True)._replace(confirmed=True)])  # confirmed, same values
    assert queues(conn) == ([], [("BTC", hour, five - hour, five - hour + 300_000)], [])

    drain(conn, day)
    write(conn, [], before_ms=BASE + 3 * MINUTE)  # minute 2's close time passed: it closes
    assert queues(conn)[0] == [("BTC", 2 * MINUTE)] and queues(conn)[2] == []


def test_a_flush_larger_than_one_statement_keeps_every_value_and_refuses_only_the_nan(conn: MemoryConnection) -> None:
    """A streamer flush after a stall holds tens of thousands of rows: PostgreSQL takes them in
    several statements (one transaction). Names with quotes, backslashes, commas and braces go
    through the array text as they are, and a NaN in a late part refuses that row alone."""
    coins = ['A"B', "C\\D", "E,F", "{G}", "NULL", "H I"]
    rows = [
        CandleRow(coin, "1m", BASE + m * MINUTE, BASE + m * MINUTE + MINUTE - 1, 1.0 + m / 7, 2.0 + m / 3, 0.5,
                  1.0 + m / 11, m * 0.1, m, True, m % 2 == 0)
        for m in range(900) for coin in coins
    ]  # 5,400 rows: three statements at 2,048 a statement
    nan_row = rows[-7]._replace(volume=float("nan"))
    rows[-7] = nan_row
    written, refused = write_candles(conn, rows, newest_open_by_coin={}, interval="1m", close_ended_before_ms=0,
                                     now_ms=T0_MS)
    assert (written, [r.row for r in refused]) == (len(rows) - 1, [nan_row])
    for coin in coins:
        expected = sorted((r for r in rows if r.coin == coin and r is not nan_row), key=lambda r: r.open_time_ms)
        assert candles_of(conn, coin, "1m") == expected
