"""SQL of the Hyperliquid tables fed by Dagster assets: the perp universe and funding.

Prices and rates arrive as ``Decimal`` (exact source text); this is where storage decides: REAL,
whose shortest repr round-trips up to 15 significant digits, which every Hyperliquid rate and
price we have recorded fits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import NamedTuple

from market_assets.memory.connection import MemoryConnection, write_transaction


class UniverseRow(NamedTuple):
    coin: str
    dex: str
    asset_index: int
    sz_decimals: int | None
    max_leverage: int | None
    is_delisted: bool


class FundingRow(NamedTuple):
    coin: str
    hour_ms: int
    """The funding time floored to the hour (source times carry ms jitter)."""
    funding_rate: Decimal
    premium: Decimal | None
    settled: bool
    """True for fundingHistory rows; False for the current hour read from the asset contexts."""
    source_time_ms: int


def upsert_universe(conn: MemoryConnection, rows: Sequence[UniverseRow], now_ms: int) -> int:
    """Record a listing of one or more dexes; a coin of those dexes absent from it is delisted."""
    dexes = sorted({row.dex for row in rows})
    with write_transaction(conn):
        conn.executemany(
            "INSERT INTO hyperliquid_universe "
            "(coin, dex, asset_index, sz_decimals, max_leverage, is_delisted, updated_at_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (coin) DO UPDATE SET dex = excluded.dex, asset_index = excluded.asset_index, "
            "sz_decimals = excluded.sz_decimals, max_leverage = excluded.max_leverage, "
            "is_delisted = excluded.is_delisted, updated_at_ms = excluded.updated_at_ms",
            [(*row[:5], int(row.is_delisted), now_ms) for row in rows],
        )
        for dex in dexes:
            conn.execute(
                "UPDATE hyperliquid_universe SET is_delisted = 1, updated_at_ms = ? "
                "WHERE dex = ? AND updated_at_ms < ? AND is_delisted = 0",
                (now_ms, dex, now_ms),
            )
    return len(rows)


def listed_coins(conn: MemoryConnection) -> list[str]:
    """Coins of the perp universe that are not delisted, in asset-index order."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT coin FROM hyperliquid_universe WHERE is_delisted = 0 ORDER BY dex, asset_index"
        )
    ]


def upsert_funding(conn: MemoryConnection, rows: Iterable[FundingRow], now_ms: int) -> int:
    """Upsert funding rows in one transaction. A settled rate is never replaced by an estimate."""
    params = [
        (
            row.coin,
            row.hour_ms,
            float(row.funding_rate),
            None if row.premium is None else float(row.premium),
            int(row.settled),
            row.source_time_ms,
            now_ms,
        )
        for row in rows
    ]
    with write_transaction(conn):
        conn.executemany(
            "INSERT INTO funding "
            "(coin, hour_ms, funding_rate, premium, settled, source_time_ms, ingested_at_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (coin, hour_ms) DO UPDATE SET funding_rate = excluded.funding_rate, "
            "premium = excluded.premium, settled = excluded.settled, "
            "source_time_ms = excluded.source_time_ms, ingested_at_ms = excluded.ingested_at_ms "
            "WHERE funding.settled = 0 OR excluded.settled = 1",
            params,
        )
    return len(params)


def last_settled_funding_hours(conn: MemoryConnection) -> dict[str, int]:
    """Per coin, the newest settled funding hour stored (where fundingHistory resumes)."""
    return dict(
        conn.execute("SELECT coin, MAX(hour_ms) FROM funding WHERE settled = 1 GROUP BY coin").fetchall()
    )
