"""The market memory's schema, versioned and migrated forward on open, on SQLite and PostgreSQL.

Migrations are append-only: ``MIGRATIONS[i]`` takes a SQLite memory from version ``i`` to
``i + 1`` (its version is ``PRAGMA user_version``). Never edit a shipped migration; add the next
one to :data:`FORWARD`, in both dialects. A PostgreSQL memory starts from a baseline equal to
SQLite's version 9 (:mod:`market_assets.memory.schema_postgres`, which says why) and takes the
same forward migrations; its version is the ``schema_version`` row of ``memory_info``. All
timestamps are integer epoch milliseconds (the unit of every source), named ``*_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from market_assets.memory import schema_postgres
from market_assets.memory.dialect import Dialect, dialect_of
from market_assets.memory.errors import MarketMemoryError

_V1 = (
    # Memory-level facts: when this memory was created (a fresh deploy), by which schema.
    """CREATE TABLE memory_info (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    # The ingestion ledger (SPEC §3). One row per run; the streamer writes one per minute window.
    """CREATE TABLE ingestion_runs (
        run_id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        channel TEXT NOT NULL,
        started_at_ms INTEGER NOT NULL,
        finished_at_ms INTEGER,
        status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
        rows_written INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        retries INTEGER NOT NULL DEFAULT 0,
        throttles INTEGER NOT NULL DEFAULT 0,
        metadata TEXT NOT NULL DEFAULT '{}'
    )""",
    # Latest run per channel (health), recent failures and pruning per channel (dashboard,
    # retention) are all seeks on this one index.
    """CREATE INDEX ingestion_runs_by_channel
        ON ingestion_runs (source, channel, started_at_ms, run_id)""",
    # Hyperliquid perp universe from metaAndAssetCtxs: the expected subjects of candles,
    # funding and features. Delisted perps stay listed here, flagged.
    """CREATE TABLE hyperliquid_universe (
        coin TEXT PRIMARY KEY,
        dex TEXT NOT NULL DEFAULT '',
        asset_index INTEGER NOT NULL,
        sz_decimals INTEGER,
        max_leverage INTEGER,
        is_delisted INTEGER NOT NULL DEFAULT 0,
        updated_at_ms INTEGER NOT NULL
    )""",
    # Candles keyed (coin, interval, open_time): WITHOUT ROWID stores rows in key order, 70 vs
    # 91 B/row and 6.6x faster per-coin reads under write load (peers.md §3). ``closed`` turns 1
    # once a later bucket arrived for the coin or the bucket's close time passed.
    """CREATE TABLE candles (
        coin TEXT NOT NULL,
        interval TEXT NOT NULL,
        open_time_ms INTEGER NOT NULL,
        close_time_ms INTEGER NOT NULL,
        open REAL NOT NULL,
        high REAL NOT NULL,
        low REAL NOT NULL,
        close REAL NOT NULL,
        volume REAL NOT NULL,
        trades INTEGER NOT NULL,
        closed INTEGER NOT NULL DEFAULT 0,
        ingested_at_ms INTEGER NOT NULL,
        PRIMARY KEY (coin, interval, open_time_ms)
    ) WITHOUT ROWID""",
    # The forming buckets only (about one per coin): closing those whose close time passed is a
    # seek here instead of a scan of every candle.
    "CREATE INDEX candles_forming ON candles (close_time_ms) WHERE closed = 0",
    # The streamer's continuity check: each run of missing closed minutes it found for a coin,
    # and whether REST filled it or it lies beyond candleSnapshot's 5,000-candle window.
    """CREATE TABLE candle_gaps (
        coin TEXT NOT NULL,
        interval TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('detected', 'filled', 'unfillable')),
        missing_buckets INTEGER NOT NULL,
        detected_at_ms INTEGER NOT NULL,
        resolved_at_ms INTEGER,
        PRIMARY KEY (coin, interval, start_ms)
    )""",
    # Rollups of closed 1-minute candles (5m, 1h, 1d). ``minutes`` counts the 1-minute rows
    # behind a bucket; ``complete`` is 0 for a bucket with missing minutes (never hidden).
    """CREATE TABLE candle_rollups (
        coin TEXT NOT NULL,
        interval TEXT NOT NULL,
        open_time_ms INTEGER NOT NULL,
        open REAL NOT NULL,
        high REAL NOT NULL,
        low REAL NOT NULL,
        close REAL NOT NULL,
        volume REAL NOT NULL,
        trades INTEGER NOT NULL,
        minutes INTEGER NOT NULL,
        complete INTEGER NOT NULL,
        rolled_up_at_ms INTEGER NOT NULL,
        PRIMARY KEY (coin, interval, open_time_ms)
    ) WITHOUT ROWID""",
    # Funding per coin and hour. Source times carry ms jitter (1683849600048), so the key is the
    # time floored to the hour. ``settled`` = 1 for fundingHistory rows, 0 for the current
    # hour's rate read from the asset contexts (overwritten once settled).
    """CREATE TABLE funding (
        coin TEXT NOT NULL,
        hour_ms INTEGER NOT NULL,
        funding_rate REAL NOT NULL,
        premium REAL,
        settled INTEGER NOT NULL,
        source_time_ms INTEGER NOT NULL,
        ingested_at_ms INTEGER NOT NULL,
        PRIMARY KEY (coin, hour_ms)
    ) WITHOUT ROWID""",
    # Technical features per closed candle (TA-Lib definitions).
    """CREATE TABLE features (
        coin TEXT NOT NULL,
        interval TEXT NOT NULL,
        open_time_ms INTEGER NOT NULL,
        rsi_14 REAL,
        bb_upper_20 REAL,
        bb_middle_20 REAL,
        bb_lower_20 REAL,
        sma_20 REAL,
        sma_50 REAL,
        sma_200 REAL,
        ema_20 REAL,
        ema_50 REAL,
        ema_200 REAL,
        macd REAL,
        macd_signal REAL,
        macd_hist REAL,
        computed_at_ms INTEGER NOT NULL,
        PRIMARY KEY (coin, interval, open_time_ms)
    ) WITHOUT ROWID""",
    # Polymarket discovery: the registry of tracked markets and the search term that found each.
    """CREATE TABLE polymarket_tracked_markets (
        market_id TEXT PRIMARY KEY,
        search_term TEXT NOT NULL,
        first_seen_at_ms INTEGER NOT NULL,
        last_seen_at_ms INTEGER NOT NULL
    )""",
    "CREATE INDEX polymarket_tracked_markets_seen ON polymarket_tracked_markets (last_seen_at_ms)",
    # Polymarket summary: one compact, upserted row per tracked market. List fields keep the
    # source's JSON text; money is stored as REAL, whose shortest repr round-trips the source's
    # decimal text for up to 15 significant digits.
    """CREATE TABLE polymarket_markets (
        market_id TEXT PRIMARY KEY,
        question TEXT,
        slug TEXT,
        outcomes TEXT,
        outcome_prices TEXT,
        volume REAL,
        liquidity REAL,
        end_date TEXT,
        active INTEGER,
        closed INTEGER,
        updated_at_ms INTEGER NOT NULL
    )""",
    "CREATE INDEX polymarket_markets_updated ON polymarket_markets (updated_at_ms)",
    # DefiLlama macro series: (series, subject, ts) -> value; e.g. ('tvl', 'Ethereum', day),
    # ('stablecoin_supply', 'peggedUSD', day), ('dex_volume', 'total', day).
    """CREATE TABLE defillama_series (
        series TEXT NOT NULL,
        subject TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        value REAL NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        PRIMARY KEY (series, subject, ts_ms)
    ) WITHOUT ROWID""",
)

# Work queues of the features and rollups jobs, filled by triggers on the candles table, so a
# run touches only what changed since the last one (new closed minutes, a REST backfill filling
# a gap, a closed minute revised) and no writer has to know the consumers exist. Each queue is
# an append-only log: a consumer deletes the entries it read (``change_id`` at most the largest
# it saw), so a change recorded while it computes is never lost. A PostgreSQL memory writes the
# triggers as trigger functions.
_V2 = (
    # One entry per closed 1-minute candle written or changed; features recompute each coin from
    # its earliest entry on.
    """CREATE TABLE pending_features (
        change_id INTEGER PRIMARY KEY,
        coin TEXT NOT NULL,
        open_time_ms INTEGER NOT NULL
    )""",
    # Rollup buckets to (re)compute. The triggers enqueue the 5-minute bucket (300,000 ms) of a
    # changed minute; rolling a bucket enqueues the bucket of the next interval (5m -> 1h -> 1d).
    """CREATE TABLE pending_rollups (
        change_id INTEGER PRIMARY KEY,
        coin TEXT NOT NULL,
        interval TEXT NOT NULL,
        bucket_ms INTEGER NOT NULL
    )""",
    # Which buckets of an interval are queued, and whether a bucket still waits on a sub-bucket.
    "CREATE INDEX pending_rollups_by_bucket ON pending_rollups (interval, coin, bucket_ms)",
    """CREATE TRIGGER candles_closed_inserted AFTER INSERT ON candles
    WHEN NEW.interval = '1m' AND NEW.closed = 1
    BEGIN
        INSERT INTO pending_features (coin, open_time_ms) VALUES (NEW.coin, NEW.open_time_ms);
        INSERT INTO pending_rollups (coin, interval, bucket_ms)
            VALUES (NEW.coin, '5m', NEW.open_time_ms - NEW.open_time_ms % 300000);
    END""",
    # A forming bucket re-sent with new values does not fire (closed = 0); one turning closed,
    # or a closed one replaced by different values, does. A byte-identical re-send does not.
    """CREATE TRIGGER candles_closed_updated AFTER UPDATE ON candles
    WHEN NEW.interval = '1m' AND NEW.closed = 1 AND (
        OLD.closed = 0 OR OLD.open IS NOT NEW.open OR OLD.high IS NOT NEW.high
        OR OLD.low IS NOT NEW.low OR OLD.close IS NOT NEW.close
        OR OLD.volume IS NOT NEW.volume OR OLD.trades IS NOT NEW.trades)
    BEGIN
        INSERT INTO pending_features (coin, open_time_ms) VALUES (NEW.coin, NEW.open_time_ms);
        INSERT INTO pending_rollups (coin, interval, bucket_ms)
            VALUES (NEW.coin, '5m', NEW.open_time_ms - NEW.open_time_ms % 300000);
    END""",
    # Candles stored before this migration are queued once, like a backfill.
    """INSERT INTO pending_features (coin, open_time_ms)
        SELECT coin, min(open_time_ms) FROM candles WHERE interval = '1m' AND closed = 1 GROUP BY coin""",
    """INSERT INTO pending_rollups (coin, interval, bucket_ms)
        SELECT DISTINCT coin, '5m', open_time_ms - open_time_ms % 300000
        FROM candles WHERE interval = '1m' AND closed = 1""",
)

# The features job's state: per coin, the closes of the last closed bars it computed (at most
# the indicator tail), so a run that only appends minutes reads one blob per coin instead of
# the tail's rows (3,873 per coin; reading them through sqlite3 was ~90 % of a run's time).
# ``closes`` is little-endian float64, oldest first; ``through_ms`` is the open time of its last
# bar. Replaced whenever the job computes the coin, in the same transaction as its features.
_V3 = (
    """CREATE TABLE feature_tails (
        coin TEXT NOT NULL,
        interval TEXT NOT NULL,
        through_ms INTEGER NOT NULL,
        closes BLOB NOT NULL,
        PRIMARY KEY (coin, interval)
    )""",
)

# The rollup queue holds each bucket once. One entry per changed minute made an hour of 200
# coins 12,000 entries for 2,400 buckets, and a rollup spent half its time de-duplicating and
# deleting them. Rolling a bucket deletes its entry in the transaction that reads it, so a set
# loses nothing: a minute changed later queues the bucket again. (``ON CONFLICT DO NOTHING``, not
# ``INSERT OR IGNORE``: a trigger's OR clause is overridden by the firing upsert's ABORT.)
_V4 = (
    """DELETE FROM pending_rollups WHERE change_id NOT IN (
        SELECT min(change_id) FROM pending_rollups GROUP BY interval, coin, bucket_ms)""",
    "DROP INDEX pending_rollups_by_bucket",
    "CREATE UNIQUE INDEX pending_rollups_by_bucket ON pending_rollups (interval, coin, bucket_ms)",
    "DROP TRIGGER candles_closed_inserted",
    "DROP TRIGGER candles_closed_updated",
    """CREATE TRIGGER candles_closed_inserted AFTER INSERT ON candles
    WHEN NEW.interval = '1m' AND NEW.closed = 1
    BEGIN
        INSERT INTO pending_features (coin, open_time_ms) VALUES (NEW.coin, NEW.open_time_ms);
        INSERT INTO pending_rollups (coin, interval, bucket_ms)
            VALUES (NEW.coin, '5m', NEW.open_time_ms - NEW.open_time_ms % 300000) ON CONFLICT DO NOTHING;
    END""",
    """CREATE TRIGGER candles_closed_updated AFTER UPDATE ON candles
    WHEN NEW.interval = '1m' AND NEW.closed = 1 AND (
        OLD.closed = 0 OR OLD.open IS NOT NEW.open OR OLD.high IS NOT NEW.high
        OR OLD.low IS NOT NEW.low OR OLD.close IS NOT NEW.close
        OR OLD.volume IS NOT NEW.volume OR OLD.trades IS NOT NEW.trades)
    BEGIN
        INSERT INTO pending_features (coin, open_time_ms) VALUES (NEW.coin, NEW.open_time_ms);
        INSERT INTO pending_rollups (coin, interval, bucket_ms)
            VALUES (NEW.coin, '5m', NEW.open_time_ms - NEW.open_time_ms % 300000) ON CONFLICT DO NOTHING;
    END""",
)

# Confirmed vs unverified (SPEC §8). A closed minute is ``confirmed = 1`` only once its final
# state is known: the same unbroken socket went on to the coin's next bucket, or candleSnapshot
# returned it closed. Rows stored before this migration become unverified (the streamer's start
# queues the unconfirmed minutes of its warm-start horizon for REST repair).
# ``candle_repairs`` is the durable repair queue: one row per minute the streamer owes to REST
# (``unverified``: stored, final state unknown; ``missing``: not stored; ``rejected``: its frame
# carried impossible values), written in the transaction of the rows that revealed it and
# deleted in the transaction that repairs it. ``candle_gaps`` gains ``no_trades``: a minute
# candleSnapshot has no candle for while a later one exists (SQLite cannot alter a CHECK, so the
# table is rebuilt).
_V5 = (
    "ALTER TABLE candles ADD COLUMN confirmed INTEGER NOT NULL DEFAULT 0",
    # Closed but unconfirmed minutes only: the dashboard's count and the start's horizon scan.
    "CREATE INDEX candles_unverified ON candles (open_time_ms) WHERE closed = 1 AND confirmed = 0",
    """CREATE TABLE candle_repairs (
        coin TEXT NOT NULL,
        interval TEXT NOT NULL,
        open_time_ms INTEGER NOT NULL,
        reason TEXT NOT NULL CHECK (reason IN ('unverified', 'missing', 'rejected')),
        queued_at_ms INTEGER NOT NULL,
        PRIMARY KEY (coin, interval, open_time_ms)
    ) WITHOUT ROWID""",
    """CREATE TABLE candle_gaps_v5 (
        coin TEXT NOT NULL,
        interval TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('detected', 'filled', 'unfillable', 'no_trades')),
        missing_buckets INTEGER NOT NULL,
        detected_at_ms INTEGER NOT NULL,
        resolved_at_ms INTEGER,
        PRIMARY KEY (coin, interval, start_ms)
    )""",
    "INSERT INTO candle_gaps_v5 SELECT coin, interval, start_ms, end_ms, status, missing_buckets, detected_at_ms, resolved_at_ms FROM candle_gaps",
    "DROP TABLE candle_gaps",
    "ALTER TABLE candle_gaps_v5 RENAME TO candle_gaps",
)

# The rollup queue holds hours, not 5-minute buckets. An hour of 200 coins queued 2,400 entries,
# each stored twice (the rowid table and its unique index), read, deleted and re-queued upward one
# by one: with a temp batch table per level, the queue cost more than the rollup it scheduled
# (``bench/rollups.py``: 150 ms an hour, the 5m level 120 ms of it). Now a ``1h`` entry is one
# per coin and hour, keyed without a rowid, and ``[from_ms, to_ms)`` spans the 5-minute buckets
# whose minutes changed and are not rolled yet (empty once they are: the hour alone is left).
# A ``1d`` entry is a day to roll from its hours (an empty span: no minutes of its own).
_V6 = (
    """CREATE TABLE pending_rollups_v6 (
        interval TEXT NOT NULL,
        coin TEXT NOT NULL,
        bucket_ms INTEGER NOT NULL,
        from_ms INTEGER NOT NULL,
        to_ms INTEGER NOT NULL,
        PRIMARY KEY (interval, coin, bucket_ms)
    ) WITHOUT ROWID""",
    # Queued 5m buckets become their hour, spanning them; a queued hour becomes its hour with an
    # empty span; a queued day stays a day.
    """INSERT INTO pending_rollups_v6 (interval, coin, bucket_ms, from_ms, to_ms)
        SELECT '1h', coin, bucket_ms - bucket_ms % 3600000,
            coalesce(min(CASE interval WHEN '5m' THEN bucket_ms END), bucket_ms - bucket_ms % 3600000),
            coalesce(max(CASE interval WHEN '5m' THEN bucket_ms + 300000 END), bucket_ms - bucket_ms % 3600000)
        FROM pending_rollups WHERE interval IN ('5m', '1h') GROUP BY coin, bucket_ms - bucket_ms % 3600000""",
    """INSERT INTO pending_rollups_v6 (interval, coin, bucket_ms, from_ms, to_ms)
        SELECT DISTINCT '1d', coin, bucket_ms, bucket_ms, bucket_ms FROM pending_rollups WHERE interval = '1d'""",
    "DROP TRIGGER candles_closed_inserted",
    "DROP TRIGGER candles_closed_updated",
    "DROP TABLE pending_rollups",
    "ALTER TABLE pending_rollups_v6 RENAME TO pending_rollups",
    # A changed closed minute widens its hour's span to its 5-minute bucket: one key probe, and
    # a write only when the hour was not queued or its span did not hold that bucket yet.
    """CREATE TRIGGER candles_closed_inserted AFTER INSERT ON candles
    WHEN NEW.interval = '1m' AND NEW.closed = 1
    BEGIN
        INSERT INTO pending_features (coin, open_time_ms) VALUES (NEW.coin, NEW.open_time_ms);
        INSERT INTO pending_rollups (interval, coin, bucket_ms, from_ms, to_ms)
            VALUES ('1h', NEW.coin, NEW.open_time_ms - NEW.open_time_ms % 3600000,
                NEW.open_time_ms - NEW.open_time_ms % 300000, NEW.open_time_ms - NEW.open_time_ms % 300000 + 300000)
            ON CONFLICT DO UPDATE SET from_ms = min(from_ms, excluded.from_ms), to_ms = max(to_ms, excluded.to_ms)
            WHERE excluded.from_ms < from_ms OR excluded.to_ms > to_ms;
    END""",
    """CREATE TRIGGER candles_closed_updated AFTER UPDATE ON candles
    WHEN NEW.interval = '1m' AND NEW.closed = 1 AND (
        OLD.closed = 0 OR OLD.open IS NOT NEW.open OR OLD.high IS NOT NEW.high
        OR OLD.low IS NOT NEW.low OR OLD.close IS NOT NEW.close
        OR OLD.volume IS NOT NEW.volume OR OLD.trades IS NOT NEW.trades)
    BEGIN
        INSERT INTO pending_features (coin, open_time_ms) VALUES (NEW.coin, NEW.open_time_ms);
        INSERT INTO pending_rollups (interval, coin, bucket_ms, from_ms, to_ms)
            VALUES ('1h', NEW.coin, NEW.open_time_ms - NEW.open_time_ms % 3600000,
                NEW.open_time_ms - NEW.open_time_ms % 300000, NEW.open_time_ms - NEW.open_time_ms % 300000 + 300000)
            ON CONFLICT DO UPDATE SET from_ms = min(from_ms, excluded.from_ms), to_ms = max(to_ms, excluded.to_ms)
            WHERE excluded.from_ms < from_ms OR excluded.to_ms > to_ms;
    END""",
)

# Untracked Polymarket markets (registry ``POLYMARKET_UNSEEN_AFTER``): a market the summary reports
# closed, or that discovery has not found for a while, moves here from the tracked registry, so the
# summary stops asking for it while its history stays (first and last seen, the term that found
# it, when and why it was untracked; its last summary row stays in ``polymarket_markets``). A
# market discovery finds again moves back. Rows go after ``POLYMARKET_UNTRACKED_RETENTION``.
_V7 = (
    """CREATE TABLE polymarket_untracked_markets (
        market_id TEXT PRIMARY KEY,
        search_term TEXT NOT NULL,
        first_seen_at_ms INTEGER NOT NULL,
        last_seen_at_ms INTEGER NOT NULL,
        untracked_at_ms INTEGER NOT NULL,
        reason TEXT NOT NULL CHECK (reason IN ('closed', 'not_found'))
    )""",
    "CREATE INDEX polymarket_untracked_markets_at ON polymarket_untracked_markets (untracked_at_ms)",
)

# Reading the memory (SPEC §11, issue 15). A rollup carries ``confirmed_minutes`` (its confirmed
# 1-minute rows), so a bar composed from rollups says whether every minute behind it is confirmed,
# as one composed from minutes does; existing rollups count theirs from the minutes still stored.
# ``archived_days`` stamps each UTC day of a dataset (``candles``: closed 1-minute rows;
# ``funding``) written to the Parquet archive: its row count and checksum as written. A change to
# a stamped day (a minute written, revised, closed or confirmed; a funding hour upserted) deletes
# its stamp in the same statement, so a stamp always means "the archive holds this day exactly as
# the memory does": readers take stamped days from the archive, maintenance prunes only stamped
# days, and a day whose stamp went is archived again. A confirmation alone (values unchanged)
# now queues its hour for rolling too, so ``confirmed_minutes`` follows the repairs.
_CHANGED_VALUES = """OLD.open IS NOT NEW.open OR OLD.high IS NOT NEW.high OR OLD.low IS NOT NEW.low
        OR OLD.close IS NOT NEW.close OR OLD.volume IS NOT NEW.volume OR OLD.trades IS NOT NEW.trades"""
_QUEUE_HOUR = """INSERT INTO pending_rollups (interval, coin, bucket_ms, from_ms, to_ms)
            VALUES ('1h', NEW.coin, NEW.open_time_ms - NEW.open_time_ms % 3600000,
                NEW.open_time_ms - NEW.open_time_ms % 300000, NEW.open_time_ms - NEW.open_time_ms % 300000 + 300000)
            ON CONFLICT DO UPDATE SET from_ms = min(from_ms, excluded.from_ms), to_ms = max(to_ms, excluded.to_ms)
            WHERE excluded.from_ms < from_ms OR excluded.to_ms > to_ms;"""
_UNSTAMP_MINUTE = "DELETE FROM archived_days WHERE dataset = 'candles' AND day_ms = NEW.open_time_ms - NEW.open_time_ms % 86400000;"
_UNSTAMP_FUNDING = "DELETE FROM archived_days WHERE dataset = 'funding' AND day_ms = NEW.hour_ms - NEW.hour_ms % 86400000;"
_V8 = (
    "ALTER TABLE candle_rollups ADD COLUMN confirmed_minutes INTEGER NOT NULL DEFAULT 0",
    """UPDATE candle_rollups SET confirmed_minutes = (
        SELECT count(*) FROM candles AS c WHERE c.coin = candle_rollups.coin AND c.interval = '1m'
        AND c.open_time_ms >= candle_rollups.open_time_ms AND c.open_time_ms < candle_rollups.open_time_ms + 300000
        AND c.closed = 1 AND c.confirmed = 1) WHERE interval = '5m'""",
    """UPDATE candle_rollups SET confirmed_minutes = (
        SELECT coalesce(sum(f.confirmed_minutes), 0) FROM candle_rollups AS f WHERE f.coin = candle_rollups.coin
        AND f.interval = '5m' AND f.open_time_ms >= candle_rollups.open_time_ms
        AND f.open_time_ms < candle_rollups.open_time_ms + 3600000) WHERE interval = '1h'""",
    """UPDATE candle_rollups SET confirmed_minutes = (
        SELECT coalesce(sum(h.confirmed_minutes), 0) FROM candle_rollups AS h WHERE h.coin = candle_rollups.coin
        AND h.interval = '1h' AND h.open_time_ms >= candle_rollups.open_time_ms
        AND h.open_time_ms < candle_rollups.open_time_ms + 86400000) WHERE interval = '1d'""",
    """CREATE TABLE archived_days (
        dataset TEXT NOT NULL CHECK (dataset IN ('candles', 'funding')),
        day_ms INTEGER NOT NULL,
        rows INTEGER NOT NULL,
        checksum TEXT NOT NULL,
        archived_at_ms INTEGER NOT NULL,
        PRIMARY KEY (dataset, day_ms)
    ) WITHOUT ROWID""",
    "DROP TRIGGER candles_closed_inserted",
    "DROP TRIGGER candles_closed_updated",
    f"""CREATE TRIGGER candles_closed_inserted AFTER INSERT ON candles
    WHEN NEW.interval = '1m' AND NEW.closed = 1
    BEGIN
        INSERT INTO pending_features (coin, open_time_ms) VALUES (NEW.coin, NEW.open_time_ms);
        {_QUEUE_HOUR}
        {_UNSTAMP_MINUTE}
    END""",
    f"""CREATE TRIGGER candles_closed_updated AFTER UPDATE ON candles
    WHEN NEW.interval = '1m' AND NEW.closed = 1 AND (OLD.closed = 0 OR {_CHANGED_VALUES})
    BEGIN
        INSERT INTO pending_features (coin, open_time_ms) VALUES (NEW.coin, NEW.open_time_ms);
        {_QUEUE_HOUR}
        {_UNSTAMP_MINUTE}
    END""",
    # Confirmed (or, never in practice, unconfirmed) with the same values: features are unchanged.
    f"""CREATE TRIGGER candles_confirmation_updated AFTER UPDATE ON candles
    WHEN NEW.interval = '1m' AND NEW.closed = 1 AND OLD.closed = 1 AND OLD.confirmed IS NOT NEW.confirmed
        AND NOT ({_CHANGED_VALUES})
    BEGIN
        {_QUEUE_HOUR}
        {_UNSTAMP_MINUTE}
    END""",
    f"""CREATE TRIGGER funding_inserted AFTER INSERT ON funding
    BEGIN
        {_UNSTAMP_FUNDING}
    END""",
    f"""CREATE TRIGGER funding_updated AFTER UPDATE ON funding
    WHEN OLD.funding_rate IS NOT NEW.funding_rate OR OLD.premium IS NOT NEW.premium
        OR OLD.settled IS NOT NEW.settled OR OLD.source_time_ms IS NOT NEW.source_time_ms
    BEGIN
        {_UNSTAMP_FUNDING}
    END""",
)

# Data quality (SPEC §12). ``check_results`` holds the latest outcome of each asset check, so
# the Dagster-free health surfaces (dashboard, /metrics, the monitor) see what Dagster's checks
# found; Dagster's event log keeps the history. ``funding_revisions`` records every change to a
# settled funding hour (a trigger, so no writer can forget it): settled hours never change, and
# the funding check says which did. ``ingestion_runs.data_latest_ms`` is the channel's newest data
# timestamp when the run ended: the admin page draws the data lag of each run from it.
_V9 = (
    """CREATE TABLE check_results (
        source TEXT NOT NULL,
        channel TEXT NOT NULL,
        check_name TEXT NOT NULL,
        passed INTEGER NOT NULL,
        blocking INTEGER NOT NULL,
        severity TEXT NOT NULL CHECK (severity IN ('WARN', 'ERROR')),
        evaluated_at_ms INTEGER NOT NULL,
        checked INTEGER NOT NULL,
        failing INTEGER NOT NULL,
        summary TEXT NOT NULL,
        problems TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (source, channel, check_name)
    ) WITHOUT ROWID""",
    """CREATE TABLE funding_revisions (
        coin TEXT NOT NULL,
        hour_ms INTEGER NOT NULL,
        revised_at_ms INTEGER NOT NULL,
        old_rate REAL NOT NULL,
        new_rate REAL NOT NULL,
        PRIMARY KEY (coin, hour_ms, revised_at_ms)
    ) WITHOUT ROWID""",
    """CREATE TRIGGER funding_settled_revised AFTER UPDATE ON funding
    WHEN OLD.settled = 1 AND OLD.funding_rate IS NOT NEW.funding_rate
    BEGIN
        INSERT OR REPLACE INTO funding_revisions (coin, hour_ms, revised_at_ms, old_rate, new_rate)
        VALUES (NEW.coin, NEW.hour_ms, NEW.ingested_at_ms, OLD.funding_rate, NEW.funding_rate);
    END""",
    "ALTER TABLE ingestion_runs ADD COLUMN data_latest_ms INTEGER",
)


@dataclass(frozen=True)
class Migration:
    """One step forward from version 9 on: the same change, in each engine's text."""

    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


FORWARD: tuple[Migration, ...] = ()
"""Migrations after the PostgreSQL baseline (version 10 on), for both engines."""

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, *(m.sqlite for m in FORWARD))
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: Any, now_ms: int) -> None:
    """Bring the memory to ``SCHEMA_VERSION``; refuse a memory from a newer program.

    The version is re-read under the write lock (SQLite's, or PostgreSQL's advisory write lock),
    so two processes opening a fresh memory at once apply each migration exactly once.
    """
    if refuse_newer_schema(conn) == SCHEMA_VERSION:
        return
    on_postgres = dialect_of(conn) is Dialect.POSTGRES
    if on_postgres:
        conn.begin_write()
    else:
        conn.execute("BEGIN IMMEDIATE")
    try:
        version = refuse_newer_schema(conn)
        if on_postgres:
            _migrate_postgres(conn, version, now_ms)
        else:
            _migrate_sqlite(conn, version, now_ms)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _migrate_sqlite(conn: Any, version: int, now_ms: int) -> None:
    for statements in MIGRATIONS[version:]:
        for statement in statements:
            conn.execute(statement)
    if version == 0:
        conn.execute("INSERT INTO memory_info (key, value) VALUES ('created_at_ms', ?)", (str(now_ms),))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _migrate_postgres(conn: Any, version: int, now_ms: int) -> None:
    if version == SCHEMA_VERSION:
        return  # another process migrated it while this one waited for the lock
    if version == 0:
        for statement in schema_postgres.BASELINE:
            conn.execute(statement)
        conn.execute("INSERT INTO memory_info (key, value) VALUES ('created_at_ms', ?)", (str(now_ms),))
        version = schema_postgres.BASELINE_VERSION
    for migration in FORWARD[version - schema_postgres.BASELINE_VERSION :]:
        for statement in migration.postgres:
            conn.execute(statement)
    conn.execute(
        "INSERT INTO memory_info (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (schema_postgres.VERSION_KEY, str(SCHEMA_VERSION)),
    )


def refuse_newer_schema(conn: Any) -> int:
    """The memory's schema version (0: no memory yet); :class:`MarketMemoryError` if a newer
    program wrote it."""
    if dialect_of(conn) is Dialect.POSTGRES:
        version = _postgres_version(conn)
        where = conn.target.redacted
    else:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        where = conn.execute("PRAGMA database_list").fetchone()[2] if version > SCHEMA_VERSION else ""
    if version > SCHEMA_VERSION:
        raise MarketMemoryError(
            f"the market memory {where} has schema version {version}, newer than the "
            f"{SCHEMA_VERSION} this program knows; upgrade market before using it"
        )
    return version


def _postgres_version(conn: Any) -> int:
    if conn.execute("SELECT to_regclass('memory_info')").fetchone()[0] is None:
        return 0
    row = conn.execute("SELECT value FROM memory_info WHERE key = ?", (schema_postgres.VERSION_KEY,)).fetchone()
    if row is None:
        raise MarketMemoryError(
            f"the database {conn.target.redacted} has a memory_info table but no schema version; "
            "it is not a market memory this program made"
        )
    return int(row[0])
