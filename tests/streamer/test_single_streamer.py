"""One streamer per market memory: ``market stream`` run twice on one memory the way an operator
would (offline), and ``market up`` beside a running streamer. End-to-end process tests: they poll
with a deadline."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from market_assets.clock import wall_clock_ms

from ..conftest import MARKET
from .processes import poll, stop

REFUSED_WITHIN_S = 15.0
"""``market`` imports, starts its in-process replay, then meets the lock: seconds, even loaded."""


def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MARKET_DB", "MARKET_OFFLINE")}
    return env | {"MARKET_PROFILE": "local", "DAGSTER_HOME": str(tmp_path / "dagster_home")}


def market(memory_path: Path, *args: str) -> list[str]:
    return [str(MARKET), "--db", str(memory_path), "--offline", *args]


def start_stream(memory_path: Path, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(market(memory_path, "stream"), env=env, stdout=sink, stderr=sink)


def last_write_ms(memory_path: Path) -> int:
    """When the newest candle row was written (0 before any)."""
    try:
        conn = sqlite3.connect(f"file:{memory_path}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return 0  # not created yet
    try:
        return int(conn.execute("SELECT max(ingested_at_ms) FROM candles").fetchone()[0] or 0)
    except sqlite3.OperationalError:
        return 0  # not migrated yet
    finally:
        conn.close()


def writes_after(memory_path: Path, since_ms: int, what: str) -> None:
    poll(lambda: last_write_ms(memory_path) > since_ms, 45, what)


def test_a_second_streamer_exits_1_with_one_line_and_the_lock_dies_with_the_first(tmp_path: Path) -> None:
    memory_path = tmp_path / "market.db"
    log = tmp_path / "streamers.log"
    env = environment(tmp_path)
    first = start_stream(memory_path, log, env)
    try:
        writes_after(memory_path, 0, "the first streamer's rows")
        asked = time.monotonic()
        second = subprocess.run(market(memory_path, "stream"), env=env, capture_output=True, text=True, timeout=60)
        assert time.monotonic() - asked < REFUSED_WITHIN_S
        assert second.returncode == 1, second.stderr[-2000:]
        assert second.stderr.splitlines() == [
            f"market stream: another streamer (pid {first.pid}) is already writing {memory_path}"
        ]
        refused_at = wall_clock_ms()
        writes_after(memory_path, refused_at, "the first streamer writing on")
        assert first.poll() is None

        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        restarted_at = wall_clock_ms()
        third = start_stream(memory_path, log, env)
        try:
            writes_after(memory_path, restarted_at, "a new streamer's rows, with no lock file deleted by hand")
            assert third.poll() is None
        finally:
            code = stop(third)
        assert code == 0, log.read_text()[-2000:]
    finally:
        stop(first)


def test_market_up_is_refused_while_a_streamer_holds_the_memory_and_starts_nothing(tmp_path: Path) -> None:
    memory_path = tmp_path / "market.db"
    log = tmp_path / "streamer.log"
    env = environment(tmp_path)
    streamer = start_stream(memory_path, log, env)
    try:
        writes_after(memory_path, 0, "the streamer's rows")
        up = subprocess.Popen(market(memory_path, "up"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = up.communicate(timeout=REFUSED_WITHIN_S)
        finally:
            stop(up)  # refused, it is gone; otherwise its SIGTERM stops whatever it started
        assert up.returncode == 1, err[-2000:]
        assert err.splitlines() == [f"market up: another streamer (pid {streamer.pid}) is already writing {memory_path}"]
        assert out == ""  # no banner, no "started <child>" line
        assert not (tmp_path / "dagster_home").exists()  # not even `dagster instance migrate` ran
        assert streamer.poll() is None
    finally:
        code = stop(streamer)
    assert code == 0, log.read_text()[-2000:]
