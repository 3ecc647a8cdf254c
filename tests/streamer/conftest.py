"""The streamer against the real loopback replay servers, on a shared accelerated clock.

Replay time runs 100x faster: a simulated minute is 0.6 s of test time, the server's 60 s idle
cut 0.6 s, the streamer's 30 s ping period 0.3 s — wide enough margins for a loaded 2-core CI.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from market_assets.memory import open_memory
from market_assets.memory.candles import candles_of
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.target import MemoryTarget, PostgresUrl
from market_assets.replay import ReplayServers
from market_assets.replay.series import SyntheticSeries
from streamer.config import StreamerConfig
from streamer.service import Endpoints, Streamer

T0_MS = 1_795_000_000_000
SPEED = 100.0
MINUTE_MS = 60_000


LOCK_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""
"""Another process holding the memory's write lock for ``argv[2]`` real seconds."""


@pytest.fixture
def replay_speed() -> float:
    return SPEED


LEDGER_WORKER = Path(__file__).parents[1] / "ledger_worker.py"


def lock_holder(memory: MemoryTarget, seconds: float) -> list[str]:
    """The command of another process holding the memory's write lock for ``seconds`` real
    seconds, printing ``locked`` once it holds it: SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's
    advisory write lock (``tests/ledger_worker.py``)."""
    if isinstance(memory, PostgresUrl):
        return [sys.executable, str(LEDGER_WORKER), memory, "lock", str(seconds)]
    return [sys.executable, "-c", LOCK_HOLDER, str(memory), str(seconds)]


@pytest.fixture
def memory_path(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MemoryTarget:
    """The streamer's memory: a SQLite file; or, in a test marked :data:`on_both_engines`, once
    a SQLite file and once a PostgreSQL database (its host's weight ledger then in ``tmp_path``)."""
    if getattr(request, "param", "sqlite") == "postgres":
        monkeypatch.setenv("MARKET_HOME", str(tmp_path / "home"))
        url: PostgresUrl = request.getfixturevalue("postgres_url")
        return url
    return tmp_path / "market.db"


on_both_engines = pytest.mark.parametrize("memory_path", ["sqlite", "postgres"], indirect=True)
"""Runs a streamer test on SQLite and on PostgreSQL: the fault tests chosen to cover each kind
of fault on both (a few; each PostgreSQL run costs seconds of the suite)."""


def streamer_config(**changes: object) -> StreamerConfig:
    """Defaults, except a flush every simulated second (10 ms of test time) and no warm start
    (a fresh memory owes nothing before the first frame; the warm-start tests ask for one)."""
    return replace(StreamerConfig(flush_interval_s=1.0, warm_start_minutes=0), **changes)  # type: ignore[arg-type]


@asynccontextmanager
async def streaming(replay: ReplayServers, memory_path: MemoryTarget, config: StreamerConfig) -> AsyncIterator[Streamer]:
    """A streamer running against ``replay`` for the length of the block, then shut down as on
    SIGTERM (flush, record the window, close the sockets)."""
    streamer = Streamer(
        memory_path,
        Endpoints(replay.endpoints.hyperliquid_api, replay.endpoints.hyperliquid_ws),
        config,
        replay.clock,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(streamer.run(stop))
    started = asyncio.create_task(streamer.started.wait())
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    try:
        yield streamer
    finally:
        stop.set()
        await task


async def wait_simulated(replay: ReplayServers, seconds: float) -> None:
    await replay.clock.sleep(seconds)


async def wait_settled(
    replay: ReplayServers, memory_path: MemoryTarget, coins: Iterable[str], *, at_least_s: float, at_most_s: float
) -> None:
    """Wait ``at_least_s`` simulated seconds, then on until every closed minute of ``coins`` before
    the newest closed one is confirmed, or ``at_most_s`` have passed. A reconnect costs real time
    (a simulated 100 s on a loaded CI machine), so a fixed wait would race it; the assertions that
    follow still judge every minute."""
    await wait_simulated(replay, at_least_s)
    waited = at_least_s
    while waited < at_most_s:
        settled_ms = replay.clock.now_ms() // MINUTE_MS * MINUTE_MS - MINUTE_MS
        with open_memory(memory_path) as conn:
            owed = any(
                t < settled_ms and t not in confirmed_minutes(conn, coin) for coin in coins for t in closed_rows(conn, coin)
            )
        if not owed:
            return
        await wait_simulated(replay, 10)
        waited += 10


def closed_rows(conn: MemoryConnection, coin: str) -> dict[int, tuple[object, ...]]:
    """Closed buckets of ``coin`` as stored (REAL prices: ``candles_of`` returns them as read)."""
    return {
        row.open_time_ms: (row.open, row.high, row.low, row.close, row.volume, row.trades)
        for row in candles_of(conn, coin, "1m")
        if row.closed
    }


def confirmed_minutes(conn: MemoryConnection, coin: str) -> set[int]:
    return {row.open_time_ms for row in candles_of(conn, coin, "1m") if row.confirmed}


def expected(series: SyntheticSeries, coin: str, open_ms: int) -> tuple[object, ...]:
    """The replay's final state of a bucket, as the memory stores it (REAL, exact for 5 digits)."""
    c = series.candle(coin, "1m", open_ms, open_ms + MINUTE_MS - 1)
    assert c is not None
    return (float(c["o"]), float(c["h"]), float(c["l"]), float(c["c"]), float(c["v"]), int(c["n"]))


def assert_confirmed_are_exact(memory_path: MemoryTarget, series: SyntheticSeries, coins: Iterable[str]) -> int:
    """At no moment is a partial minute stored as confirmed: every confirmed minute equals the
    replay's final state (o/h/l/c/v/n). Returns how many were checked."""
    checked = 0
    with open_memory(memory_path) as conn:
        for coin in coins:
            rows = closed_rows(conn, coin)
            confirmed = confirmed_minutes(conn, coin)
            wrong = sorted(t for t in confirmed if rows[t] != expected(series, coin, t))
            assert wrong == [], f"{coin}: {len(wrong)} confirmed minutes differ from the replay's series, first {wrong[:1]}"
            checked += len(confirmed)
    return checked


def assert_complete_and_exact(
    memory_path: MemoryTarget, series: SyntheticSeries, coins: Iterable[str], *, through_ms: int
) -> dict[str, int]:
    """Every closed minute of every coin, from its first stored one up to the minute before
    ``through_ms``'s, is stored, confirmed and equal to the replay's series (o/h/l/c/v/n); the
    newest minute or two (a stop leaves them for the next start to confirm) may still be
    unverified, and nothing confirmed is ever wrong. Returns the settled minutes per coin."""
    coins = list(coins)
    assert_confirmed_are_exact(memory_path, series, coins)
    settled_ms = through_ms - through_ms % MINUTE_MS - MINUTE_MS
    counts: dict[str, int] = {}
    with open_memory(memory_path) as conn:
        for coin in coins:
            rows = closed_rows(conn, coin)
            assert rows, f"{coin}: nothing stored"
            first = min(rows)
            wanted = range(first, settled_ms, MINUTE_MS)
            missing = [t for t in wanted if t not in rows]
            assert missing == [], f"{coin}: {len(missing)} closed minutes missing, first {missing[:1]}"
            wrong = [t for t in wanted if rows[t] != expected(series, coin, t)]
            assert wrong == [], f"{coin}: {len(wrong)} minutes differ from the replay's series, first {wrong[:1]}"
            confirmed = confirmed_minutes(conn, coin)
            unverified = [t for t in wanted if t not in confirmed]
            assert unverified == [], f"{coin}: {len(unverified)} settled minutes still unverified, first {unverified[:1]}"
            counts[coin] = len(wanted)
    return counts
