"""The two functions the ``market`` CLI calls: the probe, and the stream's clean stop."""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from market_assets.memory import open_memory
from market_assets.memory.runs import RunStatus, runs_of
from market_assets.replay import ReplayConfig, ReplayThread
from market_assets.settings import Profile, Settings
from market_assets.sources.timing import AcceleratedClock
from streamer.cli import EXIT_NOTHING_WRITTEN, EXIT_OK, run_probe

from .conftest import SPEED, T0_MS, streamer_config


def test_the_probe_streams_for_its_duration_writes_rows_and_windows_and_prints_a_summary(tmp_path: Path) -> None:
    clock = AcceleratedClock(SPEED, T0_MS)
    with ReplayThread(ReplayConfig(clock=clock)) as replay:
        settings = Settings(db_path=tmp_path / "market.db", endpoints=replay.endpoints, profile=Profile.LOCAL)
        out = io.StringIO()
        code = run_probe(settings, 130_000, config=streamer_config(max_coins=settings.max_coins), clock=clock, out=out)
    summary = out.getvalue()
    assert code == EXIT_OK, summary
    assert "coins streamed      5 on 1 socket(s)" in summary and "succeeded" in summary
    with open_memory(settings.db_path) as conn:
        windows = runs_of(conn, "hyperliquid", "candles")
        closed = dict(conn.execute("SELECT coin, count(*) FROM candles WHERE closed = 1 GROUP BY coin").fetchall())
    # 130 s from 40 s into a minute: three windows, or two when a loaded machine takes the first
    # flush (which opens the first window) past the minute's end.
    assert len(windows) >= 2 and {w.status for w in windows} == {RunStatus.SUCCEEDED}
    assert len(closed) == 5 and min(closed.values()) >= 1  # 130 s hold at least one whole minute


def test_a_probe_that_cannot_reach_the_socket_says_so_in_its_exit_code(tmp_path: Path) -> None:
    clock = AcceleratedClock(SPEED, T0_MS)
    with ReplayThread(ReplayConfig(clock=clock)) as replay:
        settings = Settings(
            db_path=tmp_path / "market.db",
            endpoints=replace(replay.endpoints, hyperliquid_ws="ws://127.0.0.1:9/ws"),
            profile=Profile.LOCAL,
        )
        code = run_probe(settings, 30_000, config=streamer_config(max_coins=1), clock=clock, out=io.StringIO())
    assert code == EXIT_NOTHING_WRITTEN


def test_the_streamer_s_log_lines_carry_no_url_secret() -> None:
    """Whatever an error quotes (an exception naming its URL), the streamer's stderr masks it."""
    program = (
        "import logging; from streamer.cli import _log_to_stderr; _log_to_stderr(); "
        "logging.getLogger('streamer.service').warning("
        "'universe unreadable: %s', 'GET https://ops:SEKRET@api.example/info?token=SEKRET2 refused')"
    )
    shown = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert "universe unreadable: GET https://" in shown.stderr and "/info?token=" in shown.stderr
    assert "SEKRET" not in shown.stderr
