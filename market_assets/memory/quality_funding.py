"""SQL of the funding checks (``market_assets.quality.funding``): reads only.

Every read seeks each coin's rows through the loose index scan of ``funding`` (its key leads with
the coin), so a check over two days costs the hours of those days, not the year the table keeps.
"""

from __future__ import annotations

from typing import NamedTuple

from market_assets.memory.connection import MemoryConnection
from market_assets.memory.dialect import ORDERED_JOIN, dialect_of
from market_assets.memory.rollups import SUBJECTS_OF

_COINS = SUBJECTS_OF.format(table="funding", column="coin")


class CoinHours(NamedTuple):
    """One coin's settled hours in a window, and what says where its expected hours start and end."""

    coin: str
    listed: bool
    """In the perp universe and not delisted: the funding ingest follows it now."""
    last_before: int | None
    """Its newest settled hour before the window; ``None``: its settled hours start in the window."""
    hours: tuple[int, ...]
    """Its settled hours in the window, oldest first."""


class FundingRate(NamedTuple):
    coin: str
    hour_ms: int
    funding_rate: float
    settled: bool


class Revision(NamedTuple):
    coin: str
    hour_ms: int
    revised_at_ms: int
    old_rate: float
    new_rate: float


def settled_hours(conn: MemoryConnection, since_ms: int, until_ms: int) -> list[CoinHours]:
    """Every coin with a stored funding row: its settled hours in ``[since_ms, until_ms)``."""
    coins = conn.execute(
        _COINS
        + """SELECT s.subject,
                EXISTS (SELECT 1 FROM hyperliquid_universe AS u WHERE u.coin = s.subject AND u.is_delisted = 0),
                (SELECT max(f.hour_ms) FROM funding AS f
                    WHERE f.coin = s.subject AND f.hour_ms < :since AND f.settled = 1)
            FROM subjects AS s WHERE s.subject IS NOT NULL ORDER BY s.subject""",
        {"since": since_ms},
    ).fetchall()
    join = ORDERED_JOIN[dialect_of(conn)]
    hours: dict[str, list[int]] = {}
    for coin, hour_ms in conn.execute(
        _COINS
        + f"""SELECT f.coin, f.hour_ms FROM subjects AS s {join} funding AS f
                ON f.coin = s.subject AND f.hour_ms >= :since AND f.hour_ms < :until
            WHERE s.subject IS NOT NULL AND f.settled = 1 ORDER BY f.coin, f.hour_ms""",
        {"since": since_ms, "until": until_ms},
    ):
        hours.setdefault(coin, []).append(int(hour_ms))
    return [
        CoinHours(coin, bool(listed), None if last is None else int(last), tuple(hours.get(coin, ())))
        for coin, listed, last in coins
    ]


def rows_in_window(conn: MemoryConnection, since_ms: int, until_ms: int, *, settled_only: bool = False) -> int:
    """How many funding rows (settled and current, or settled only) ``[since_ms, until_ms)`` holds."""
    return int(
        conn.execute(
            _COINS
            + f"""SELECT count(*) FROM subjects AS s {ORDERED_JOIN[dialect_of(conn)]} funding AS f
                    ON f.coin = s.subject AND f.hour_ms >= :since AND f.hour_ms < :until
                WHERE s.subject IS NOT NULL AND (f.settled = 1 OR :settled_only = 0)""",
            {"since": since_ms, "until": until_ms, "settled_only": settled_only},
        ).fetchone()[0]
    )


def rates_beyond(conn: MemoryConnection, since_ms: int, until_ms: int, bound: float) -> list[FundingRate]:
    """Rows of ``[since_ms, until_ms)`` whose rate is not within ``[-bound, bound]`` (an infinity
    included: neither engine stores a NaN), oldest hour first."""
    rows = conn.execute(
        _COINS
        + f"""SELECT f.coin, f.hour_ms, f.funding_rate, f.settled FROM subjects AS s {ORDERED_JOIN[dialect_of(conn)]} funding AS f
                ON f.coin = s.subject AND f.hour_ms >= :since AND f.hour_ms < :until
            WHERE s.subject IS NOT NULL AND NOT (abs(f.funding_rate) <= :bound)
            ORDER BY f.hour_ms, f.coin""",
        {"since": since_ms, "until": until_ms, "bound": bound},
    ).fetchall()
    return [FundingRate(coin, int(hour), float(rate), bool(settled)) for coin, hour, rate, settled in rows]


def revisions_between(conn: MemoryConnection, since_ms: int, until_ms: int) -> list[Revision]:
    """Changes to settled hours recorded (by the ``funding_settled_revised`` trigger) in
    ``[since_ms, until_ms]``, oldest hour first."""
    rows = conn.execute(
        """SELECT coin, hour_ms, revised_at_ms, old_rate, new_rate FROM funding_revisions
            WHERE revised_at_ms >= ? AND revised_at_ms <= ? ORDER BY hour_ms, coin, revised_at_ms""",
        (since_ms, until_ms),
    ).fetchall()
    return [Revision(coin, int(hour), int(at), float(old), float(new)) for coin, hour, at, old, new in rows]
