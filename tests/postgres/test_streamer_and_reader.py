"""Two hosts on one PostgreSQL memory (issue 17): ``market stream`` writing the replay's minutes
while a strategy's process reads them through the read API, again and again. Every read is one
snapshot of committed minutes: no forming minute, each verified bar the replay's own values, and
no lock error, however the reads and the streamer's flushes interleave."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from market_assets.memory import connect
from market_assets.memory.target import PostgresUrl
from market_assets.replay.catalog import Catalog
from tests.postgres import read_worker
from tests.streamer.conftest import T0_MS, expected
from tests.streamer.processes import (
    poll,
    replay_now,
    standalone_replay,
    start_streamer,
    stop,
)

SPEED = 100.0
"""Replay minutes per real minute: a simulated minute every 0.6 s."""
READ_SECONDS = 25.0
"""How long the strategy host reads: ~40 replay minutes, ~60 reads of each interval."""
SERIES = Catalog.load().series
MINUTE_MS = 60_000


@pytest.mark.realtime  # mostly waiting on the replay's clock
def test_a_reader_on_another_host_sees_only_whole_committed_minutes_equal_to_the_replay(
    tmp_path: Path, postgres_url: PostgresUrl
) -> None:
    connect(postgres_url).close()  # the memory exists before either host starts
    reads = tmp_path / "reads"
    for folder in (reads, tmp_path / "streamer-host", tmp_path / "reader-host"):
        folder.mkdir()
    with standalone_replay(SPEED) as replay:
        streamer = start_streamer(replay, postgres_url, tmp_path / "streamer-host" / "streamer.log")
        reader = None
        try:
            poll(lambda: replay_now(replay) > T0_MS + 3 * MINUTE_MS, 60, "the replay's first minutes")
            reader = subprocess.Popen(
                [sys.executable, read_worker.__file__, postgres_url, str(tmp_path / "archive"), replay["control"],
                 str(reads), str(READ_SECONDS), str(T0_MS)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env={**{k: v for k, v in os.environ.items() if not k.startswith("MARKET_")},
                     "PYTHONPATH": str(Path(__file__).parents[2]), "MARKET_HOME": str(tmp_path / "reader-host")},
            )
            _, errors = reader.communicate(timeout=READ_SECONDS + 60)
            assert reader.returncode == 0, errors
            assert streamer.poll() is None, "the streamer stopped while it was read"
        finally:
            if reader is not None:
                stop(reader)
            stop(streamer)
    assert "lock" not in errors.lower() and "busy" not in errors.lower(), errors

    checked, verified, seen_minutes = 0, 0, []
    for path in sorted(reads.glob("read-*.arrow")):
        table = pa.ipc.open_file(str(path)).read_all()
        as_of = int(table.schema.metadata[b"as_of"])
        interval = path.stem.rsplit("-", 1)[1]
        width = MINUTE_MS * (1 if interval == "1m" else 5)
        for bar in table.to_pylist():
            open_ms = int(bar["open_time"].timestamp() * 1000)
            assert open_ms + width <= as_of, f"{path.name}: a bar not closed by its read's as_of"
            if interval == "1m":
                assert bar["minutes"] == 1 and bar["complete"], f"{path.name}: {bar}"
            if bar["verified"] and bar["complete"]:
                truth = [expected(SERIES, bar["coin"], t) for t in range(open_ms, open_ms + width, MINUTE_MS)]
                assert (bar["open"], bar["high"], bar["low"], bar["close"], bar["trades"]) == (
                    truth[0][0], max(t[1] for t in truth), min(t[2] for t in truth), truth[-1][3], sum(t[5] for t in truth)
                ), f"{path.name}: {bar['coin']} {interval} at {open_ms}"
                assert abs(bar["volume"] - sum(t[4] for t in truth)) <= 1e-9 * max(1.0, bar["volume"])
                verified += 1
            checked += 1
        if interval == "1m":
            seen_minutes.append(table.num_rows)
    assert len(seen_minutes) >= 10, "too few reads while the streamer wrote"
    assert seen_minutes[-1] > seen_minutes[0], "no read saw the streamer's later minutes"
    assert verified > 0.5 * checked, f"only {verified} of {checked} bars verified"
