"""Sharded streamers over one replay (SPEC §13): the shards' coins are the universe, none twice;
each shard warms up, repairs and records only its own; every stored minute equals the replay's
series; a killed shard makes candles health name it while the other's coins stay fresh, and its
restart records only its own window left open."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from market_assets import fixtures
from market_assets.health import Status, explain, read_health
from market_assets.memory import open_memory
from market_assets.memory.candles import candles_of
from market_assets.memory.repairs import backlog
from market_assets.memory.runs import RunRecord, runs_of
from market_assets.memory.shards import (
    LAYOUT_LOCK,
    STREAMER_LOCK_CLASS,
    Shard,
    hold_session,
    shard_lock_key,
)
from market_assets.memory.target import MemoryTarget, PostgresUrl
from market_assets.registry import CANDLES
from market_assets.replay import ReplayServers
from market_assets.replay.catalog import Catalog
from market_assets.sources.hyperliquid import parse_meta_and_asset_ctxs
from streamer.lock import KEEP_EVERY_S
from streamer.universe import universe_of
from streamer.windows import ENDED_UNCLOSED

from .conftest import (
    MINUTE_MS,
    assert_complete_and_exact,
    streamer_config,
    streaming,
    wait_settled,
    wait_simulated,
)
from .processes import STOP_DEADLINE_S, poll, replay_now, standalone_replay, stop

pytestmark = pytest.mark.anyio

RECORDED = parse_meta_and_asset_ctxs(fixtures.fixture_bytes(fixtures.HL_META_AND_CTXS))
WARM_START_MINUTES = 30
SERIES = Catalog.load().series
"""The standalone replay's series (the catalog's, as ``python -m market_assets.replay`` serves it)."""
FIRST, SECOND = Shard(1, 2), Shard(2, 2)


def windows(target: MemoryTarget) -> list[RunRecord]:
    with open_memory(target) as conn:
        return runs_of(conn, CANDLES.source, CANDLES.name)


def newest_minute(target: MemoryTarget, coin: str) -> int | None:
    with open_memory(target) as conn:
        rows = candles_of(conn, coin, "1m")
    return max((row.open_time_ms for row in rows), default=None)


async def test_two_shards_follow_the_universe_between_them_and_store_it_exactly(
    replay: ReplayServers, memory_target: MemoryTarget
) -> None:
    config = streamer_config(max_coins=6, warm_start_minutes=WARM_START_MINUTES)
    universe = universe_of([RECORDED], 6).coins
    async with streaming(replay, memory_target, replace(config, shard=FIRST)) as first:
        await wait_simulated(replay, 120)
        # Alone, the first shard stored, queued and repaired nothing of the second's coins.
        with open_memory(memory_target) as conn:
            queued = {entry.coin for entry in backlog(conn, "1m")}
            stored = {coin for coin in universe if candles_of(conn, coin, "1m")}
        assert stored == set(first.universe.coins)
        assert queued <= set(first.universe.coins)
        async with streaming(replay, memory_target, replace(config, shard=SECOND)) as second:
            await wait_settled(replay, memory_target, universe, at_least_s=240, at_most_s=900)
        through_ms = replay.clock.now_ms()

    assert first.universe.coins and second.universe.coins
    assert set(first.universe.coins).isdisjoint(second.universe.coins)  # no coin twice
    assert sorted(first.universe.coins + second.universe.coins) == sorted(universe)  # the universe, between them
    assert set(first.pool.coins) == set(first.universe.coins) and set(second.pool.coins) == set(second.universe.coins)
    settled = assert_complete_and_exact(memory_target, replay.catalog.series, universe, through_ms=through_ms)
    assert min(settled.values()) >= WARM_START_MINUTES  # each shard warmed its own coins up

    recorded = windows(memory_target)
    by_shard = {str(shard): [w for w in recorded if w.metadata.get("shard") == str(shard)] for shard in (FIRST, SECOND)}
    assert len(recorded) == sum(len(found) for found in by_shard.values())  # every window names its shard
    for shard, streamer in ((FIRST, first), (SECOND, second)):
        own = by_shard[str(shard)]
        assert own and own[-1].metadata["coins"] == len(streamer.universe.coins)  # its own count, not the universe's
        assert sorted(w.run_id for w in own) == sorted(streamer.windows.recorded)
    with open_memory(memory_target) as conn:
        candles = read_health(conn, through_ms).channels[0]
    assert (candles.status, [(str(s.shard), s.status) for s in candles.shards]) == (
        Status.OK, [("1/2", Status.OK), ("2/2", Status.OK)]
    )


# One shard killed: processes, as `market stream --shard I/N` runs on two hosts -------------------

SPEED = 100.0


def start_shard(replay: dict[str, Any], memory_path: MemoryTarget, shard: Shard, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MARKET_DB": str(memory_path),
        "MARKET_REPLAY_HTTP": replay["http"],
        "MARKET_REPLAY_WS": replay["ws"],
        "MARKET_PROFILE": "local",
        "MARKET_WARM_START_MINUTES": str(WARM_START_MINUTES),
        "MARKET_HOME": str(log.parent),  # this "host"'s folder: its weight ledger beside a PostgreSQL memory
    }
    command = [sys.executable, "-m", "streamer", "--shard", str(shard)]
    command += ["--clock-speed", str(replay["speed"]), "--replay-control", replay["control"]]
    with log.open("ab") as sink:
        return subprocess.Popen(command, env=env, stdout=sink, stderr=sink)


@contextmanager
def running(*processes: subprocess.Popen[bytes]) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            stop(process)


def shard_windows(memory_path: MemoryTarget, shard: Shard) -> list[RunRecord]:
    if isinstance(memory_path, Path) and not memory_path.exists():
        return []
    try:
        return [w for w in windows(memory_path) if w.metadata.get("shard") == str(shard)]
    except Exception:  # noqa: BLE001 -- a memory still being created and migrated
        return []


def test_a_killed_shard_is_named_by_health_while_the_other_stays_fresh(tmp_path: Path) -> None:
    memory_path = tmp_path / "market.db"
    local = universe_of([RECORDED], 5)  # the local profile's coins
    own = {shard: local.share(shard).coins for shard in (FIRST, SECOND)}
    with standalone_replay(SPEED) as replay:
        first = start_shard(replay, memory_path, FIRST, tmp_path / "shard1.log")
        second = start_shard(replay, memory_path, SECOND, tmp_path / "shard2.log")
        with running(first, second):
            poll(lambda: all(shard_windows(memory_path, s) for s in (FIRST, SECOND)), 60, "a window of each shard")
            again = subprocess.run(
                [sys.executable, "-m", "streamer", "--shard", "2/2"],
                env={**os.environ, "MARKET_DB": str(memory_path)}, capture_output=True, text=True, timeout=60, check=False,
            )
            assert (again.returncode, again.stderr.splitlines()) == (
                1, [f"market stream: another streamer of shard 2/2 (pid {second.pid}) is already writing {memory_path}"]
            )

            second.send_signal(signal.SIGKILL)
            second.wait(timeout=10)
            killed_ms = replay_now(replay)
            late_ms = killed_ms + CANDLES.stale_after_sec * 1000 + 2 * MINUTE_MS
            poll(lambda: replay_now(replay) > late_ms, 60, "the killed shard to be late")
            now_ms = replay_now(replay)
            with open_memory(memory_path) as conn:
                candles = read_health(conn, now_ms).channels[0]
            assert candles.status is Status.STALE
            assert [(str(s.shard), s.status) for s in candles.shards] == [("1/2", Status.OK), ("2/2", Status.STALE)]
            late_min = (now_ms - shard_windows(memory_path, SECOND)[-1].finished_at_ms) // 60_000  # type: ignore[operator]
            assert explain(candles, memory_age_sec=3600) == f"shard 2/2: no window for {late_min} min"
            for coin in own[FIRST]:  # the other shard's coins stay fresh: streamed on long after the kill
                assert (newest_minute(memory_path, coin) or 0) >= late_ms - MINUTE_MS, coin
            for coin in own[SECOND]:  # the killed shard's are not followed by anyone
                assert (newest_minute(memory_path, coin) or 0) < killed_ms + MINUTE_MS, coin

            restarted = start_shard(replay, memory_path, SECOND, tmp_path / "shard2.log")
            with running(restarted):
                def healthy() -> bool:
                    with open_memory(memory_path) as conn:
                        return read_health(conn, replay_now(replay)).channels[0].status is Status.OK

                poll(healthy, 60, "health ok again once the restarted shard recorded a window")
                # Every minute up to now, the killed shard's gap included: a condition that stays true
                # once met, however far the (100x) replay runs on while it is read.
                through_ms = replay_now(replay)
                poll(lambda: _complete(memory_path, local.coins, through_ms), 60, "every minute stored exactly")
            assert stop(restarted) == 0
        assert stop(first) == 0

    left_open = [w for w in windows(memory_path) if w.error == ENDED_UNCLOSED]
    assert [w.metadata.get("shard") for w in left_open] == ["2/2"]  # recorded by shard 2 itself, once
    assert_complete_and_exact(memory_path, SERIES, local.coins, through_ms=through_ms)


def _complete(memory_path: Path, coins: tuple[str, ...], through_ms: int) -> bool:
    try:
        assert_complete_and_exact(memory_path, SERIES, coins, through_ms=through_ms)
    except AssertionError:
        return False
    return True


def test_on_postgresql_a_second_streamer_of_a_shard_is_refused_by_the_server_s_lock(
    tmp_path: Path, postgres_url: PostgresUrl
) -> None:
    """Hosts share no file: the lock is the server's, and the refusal names the holder's host and pid."""
    with standalone_replay(SPEED) as replay:
        first = start_shard(replay, postgres_url, FIRST, tmp_path / "shard1.log")
        with running(first):
            poll(lambda: bool(shard_windows(postgres_url, FIRST)), 60, "a window of the shard")
            env = {**os.environ, "MARKET_DB": postgres_url, "MARKET_HOME": str(tmp_path / "other-host")}
            again = subprocess.run(
                [sys.executable, "-m", "streamer", "--shard", "1/2"],
                env=env, capture_output=True, text=True, timeout=60, check=False,
            )
            holder = f"market streamer of shard 1/2 pid {first.pid} on {socket.gethostname()}"
            assert (again.returncode, again.stderr.splitlines()) == (
                1, [f"market stream: {holder} is already writing {postgres_url.redacted}"]
            )
            other = start_shard(replay, postgres_url, SECOND, tmp_path / "shard2.log")
            with running(other):
                poll(lambda: bool(shard_windows(postgres_url, SECOND)), 60, "a window of the other shard beside it")
                assert first.poll() is None and other.poll() is None
            assert stop(other) == 0
        assert stop(first) == 0


def own_coin(shard: Shard) -> str:
    """The first of the local profile's coins that ``shard`` follows."""
    return universe_of([RECORDED], 5).share(shard).coins[0]


def _lock_session(url: PostgresUrl, name: str) -> int | None:
    """The server pid of the session named ``name`` holding a streamer lock, if one does."""
    with open_memory(url) as conn:
        backends = {backend for key, backend in conn.execute(
            "SELECT l.objid::bigint, a.pid FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = ? AND a.application_name = ?",
            (STREAMER_LOCK_CLASS, name[:63])).fetchall() if key == shard_lock_key(FIRST)}
    return backends.pop() if len(backends) == 1 else None


@contextmanager
def _first_shard_streaming(tmp_path: Path, url: PostgresUrl) -> Iterator[tuple[subprocess.Popen[bytes], str, int]]:
    """Shard 1 of 2 streaming on ``url`` from its own replay: the process, its session's name and
    the server pid of the session holding its lock. The process is stopped after the block."""
    with standalone_replay(SPEED) as replay:
        first = start_shard(replay, url, FIRST, tmp_path / "shard1.log")
        with running(first):
            poll(lambda: bool(shard_windows(url, FIRST)), 60, "a window of the shard")
            name = f"market streamer of shard 1/2 pid {first.pid} on {socket.gethostname()}"
            session = _lock_session(url, name)
            assert session is not None
            yield first, name, session


def test_on_postgresql_a_shard_whose_lock_session_the_server_dropped_takes_its_lock_again(
    tmp_path: Path, postgres_url: PostgresUrl
) -> None:
    """A server restart or a cut network ends the lock's session, and with it the lock, while the
    streamer runs on: it takes the lock again on a new session and streams on."""
    with _first_shard_streaming(tmp_path, postgres_url) as (first, name, dropped):
        with open_memory(postgres_url) as conn:
            assert conn.execute("SELECT pg_terminate_backend(?)", (dropped,)).fetchone()[0]
        poll(lambda: _lock_session(postgres_url, name) not in (None, dropped), 3 * KEEP_EVERY_S,
             "the lock held again by a new session of the same streamer")
        written = newest_minute(postgres_url, own_coin(FIRST))
        poll(lambda: (newest_minute(postgres_url, own_coin(FIRST)) or 0) > (written or 0), 60,
             "minutes written after the lock was taken again")
        assert first.poll() is None
        assert stop(first) == 0


def test_on_postgresql_a_shard_whose_lock_another_streamer_took_meanwhile_stops_and_says_who(
    tmp_path: Path, postgres_url: PostgresUrl
) -> None:
    """Between the session's end and the next check another streamer of the shard took the lock:
    the first stops within one check (:data:`KEEP_EVERY_S`), exit 1, naming the holder."""
    rival = f"market streamer of shard 1/2 pid {os.getpid()} on {socket.gethostname()}"
    with _first_shard_streaming(tmp_path, postgres_url) as (first, _, dropped):
        with open_memory(postgres_url) as conn:
            hold_session(conn, rival)
            conn.execute("SELECT pg_terminate_backend(?)", (dropped,))
            # Blocking, not try: queued before the dropped session ends, granted as it ends,
            # before the streamer can even notice.
            conn.execute("SELECT pg_advisory_lock_shared(?, ?)", (STREAMER_LOCK_CLASS, LAYOUT_LOCK))
            conn.execute("SELECT pg_advisory_lock(?, ?)", (STREAMER_LOCK_CLASS, shard_lock_key(FIRST)))
            assert first.wait(timeout=3 * KEEP_EVERY_S + STOP_DEADLINE_S) == 1
        said = (tmp_path / "shard1.log").read_text().splitlines()
        assert said[-1] == (f"market stream: the server dropped this streamer's lock and {rival} is already writing "
                            f"{postgres_url.redacted}")
