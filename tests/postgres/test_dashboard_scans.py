"""The dashboard on a PostgreSQL memory reads each request's recent windows through the time
indexes (issue 17): PostgreSQL has no skip scan, so on the (coin, interval, time) key alone every
"every coin, last hour" count is a scan of the whole table (1.9 s at 10M candles, research §1.4).

Counted by PostgreSQL itself: the sequential scans of each table a request started
(``pg_stat_user_tables``, flushed by ``pg_stat_force_next_flush``) around one ``read_dashboard``
with the whole-table volume counts taken beforehand, as the API keeps them between requests."""

from __future__ import annotations

from market_assets.dashboard import count_volumes, read_dashboard
from market_assets.memory import connect
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.hyperliquid import UniverseRow, upsert_universe
from market_assets.memory.target import PostgresUrl

COINS = 40
DAYS = 3
NOW_MS = 1_795_000_000_000 - 1_795_000_000_000 % 60_000 + 25_000
FIRST_MS = NOW_MS - NOW_MS % 60_000 - DAYS * 1440 * 60_000
SCANNED = ("candles", "features", "funding", "candle_rollups")


def seq_scans(conn: MemoryConnection) -> dict[str, int]:
    conn.execute("SELECT pg_stat_force_next_flush()")  # this backend's counts, flushed as it goes idle
    rows = conn.execute("SELECT relname, seq_scan FROM pg_stat_user_tables WHERE relname = ANY(?)", (list(SCANNED),))
    return dict(rows.fetchall())


def test_a_dashboard_request_scans_no_table_whole(postgres_url: PostgresUrl) -> None:
    conn = connect(postgres_url, clock=lambda: NOW_MS)
    try:
        upsert_universe(conn, [UniverseRow(f"C{i:02d}", "", i, 2, 20, False) for i in range(COINS)], NOW_MS)
        # Three days of every coin's minutes, features, 5m rollups and funding hours (written in bulk: the
        # product's writers would take a minute here; the triggers' queues are not what is read).
        conn.execute(
            """INSERT INTO candles (coin, interval, open_time_ms, close_time_ms, open, high, low, close, volume, trades,
                closed, ingested_at_ms, confirmed)
            SELECT 'C' || lpad(c::text, 2, '0'), '1m', ? + m * 60000, ? + m * 60000 + 59999, 10, 11, 9, 10, 1, 1, 1, ?, 1
            FROM generate_series(0, ? - 1) AS c, generate_series(0::bigint, ? - 1) AS m""",
            (FIRST_MS, FIRST_MS, NOW_MS, COINS, DAYS * 1440),
        )
        conn.execute(
            """INSERT INTO features (coin, interval, open_time_ms, rsi_14, computed_at_ms)
            SELECT coin, interval, open_time_ms, 50, ? FROM candles""",
            (NOW_MS,),
        )
        conn.execute(
            """INSERT INTO funding (coin, hour_ms, funding_rate, premium, settled, source_time_ms, ingested_at_ms)
            SELECT coin, open_time_ms, 0.0001, 0, 1, open_time_ms, ? FROM candles WHERE open_time_ms % 3600000 = 0""",
            (NOW_MS,),
        )
        conn.execute(
            """INSERT INTO candle_rollups (coin, interval, open_time_ms, open, high, low, close, volume, trades, minutes,
                complete, rolled_up_at_ms, confirmed_minutes)
            SELECT coin, '5m', open_time_ms, 10, 11, 9, 10, 5, 5, 5, 1, ?, 5 FROM candles WHERE open_time_ms % 300000 = 0""",
            (NOW_MS,),
        )
        conn.execute("ANALYZE")
        volumes = count_volumes(conn, NOW_MS)  # the kept whole-table counts: a scan, once a minute, not per request
        before = seq_scans(conn)
        document = read_dashboard(conn, NOW_MS, volumes=volumes)
        after = seq_scans(conn)
    finally:
        conn.close()
    candles = next(row for row in document.rows if row.channel == "candles")
    # The request did count the last hour of every coin: the 59 minutes opened since NOW_MS - 1 h.
    assert candles.rows_last_hour == COINS * 59
    assert {table: after[table] - before[table] for table in SCANNED} == dict.fromkeys(SCANNED, 0)
