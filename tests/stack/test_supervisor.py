"""The supervisor restarts a crashed child with backoff, and stops every child's tree cleanly."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
import time
from pathlib import Path

from market_assets.supervisor import RESTART_DELAY_MAX_SEC, Child, Supervisor, restart_delay

PY = sys.executable


def alive(pid: int) -> bool:
    """Running, not a zombie (this container's PID 1 reaps orphans late)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_restart_delays_double_and_are_capped() -> None:
    assert [restart_delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert restart_delay(30) == RESTART_DELAY_MAX_SEC


def test_a_crashing_child_is_restarted_with_backoff_and_recorded() -> None:
    out = io.StringIO()
    supervisor = Supervisor([Child("crasher", [PY, "-c", "print('boom'); raise SystemExit(3)"])], out=out)

    async def scenario() -> None:
        task = asyncio.create_task(supervisor.run())
        await asyncio.sleep(4.5)  # crashes at ~0 s, restarts after 1 s, crashes, restarts after 2 s
        supervisor.stop()
        assert await task == 0

    asyncio.run(scenario())
    log = out.getvalue()
    delays = re.findall(r"crasher exited with code 3 after [\d.]+s; restart #\d+ in (\d+)s", log)
    assert len(delays) >= 2 and delays == ["1", "2", "4"][: len(delays)]
    assert supervisor.states[0].restarts == len(delays)  # every crash recorded
    assert log.count("| boom") == log.count("started crasher")


def test_sigterm_stops_every_child_and_its_descendants(tmp_path: Path) -> None:
    """``market up``'s supervisor as a process: SIGTERM ends it with 0 and leaves nothing behind."""
    pids = tmp_path / "pids"
    grandchild = f"import os, time; open({str(pids)!r}, 'a').write(str(os.getpid()) + chr(10)); time.sleep(600)"
    parent = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {grandchild!r}]); time.sleep(600)"
    )
    script = (
        "import asyncio, sys\n"
        "from market_assets.supervisor import Child, Supervisor\n"
        f"children = [Child('a', [sys.executable, '-c', {parent!r}]), Child('b', [sys.executable, '-c', {parent!r}])]\n"
        "sys.exit(asyncio.run(Supervisor(children).run()))\n"
    )
    process = subprocess.Popen([PY, "-c", script], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not (pids.exists() and len(pids.read_text().split()) == 2):
        assert time.monotonic() < deadline, "grandchildren did not start"
        time.sleep(0.1)
    process.terminate()
    assert process.wait(timeout=30) == 0
    assert not [pid for pid in map(int, pids.read_text().split()) if alive(pid)]
    assert "stopped a" in process.stdout.read()
