"""The supervisor restarts a crashed child with backoff, keeps each child's output in its log
file, stops every child's tree cleanly, and its children die with it when it is SIGKILLed."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from market_assets.stack import streamer_warning
from market_assets.supervisor import RESTART_DELAY_MAX_SEC, Child, Supervisor, restart_delay

PY = sys.executable


def alive(pid: int) -> bool:
    """Running, not a zombie (this container's PID 1 reaps orphans late)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_until(deadline_s: float, what: str, probe) -> None:
    deadline = time.monotonic() + deadline_s
    while not probe():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def test_restart_delays_double_and_are_capped() -> None:
    assert [restart_delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert restart_delay(30) == RESTART_DELAY_MAX_SEC


def test_a_crashing_child_is_restarted_with_backoff_its_cause_on_the_console_its_output_in_its_log(
    tmp_path: Path,
) -> None:
    out = io.StringIO()
    crasher = "import sys; print('line one'); print('Traceback ...'); print('ValueError: boom'); sys.exit(3)"
    supervisor = Supervisor([Child("crasher", [PY, "-c", crasher])], log_dir=tmp_path / "logs", out=out)

    async def scenario() -> None:
        task = asyncio.create_task(supervisor.run())
        await asyncio.sleep(4.5)  # crashes at ~0 s, restarts after 1 s, crashes, restarts after 2 s
        supervisor.stop()
        assert await task == 0

    asyncio.run(scenario())
    console = out.getvalue()
    log_file = tmp_path / "logs" / "crasher.log"
    delays = re.findall(
        rf"crasher exited with code 3 after [\d.]+s: ValueError: boom; restart #\d+ in (\d+)s \(full log: {re.escape(str(log_file))}\)",
        console,
    )
    assert len(delays) >= 2 and delays == ["1", "2", "4"][: len(delays)]
    assert supervisor.states[0].restarts == len(delays)  # every crash recorded
    assert "line one" not in console and "Traceback" not in console  # the output is in the log only
    log = log_file.read_text().splitlines()
    assert log.count("line one") == log.count("ValueError: boom") == console.count("started crasher")


def test_the_streamers_warnings_reach_the_console_one_line_each_the_rest_its_log_only_tokens_in_neither(tmp_path: Path) -> None:
    out = io.StringIO()
    lines = [
        "2026-12-01 10:00:00,001 INFO streamer.service: streaming 5 coins",
        "2026-12-01 10:00:01,002 WARNING streamer.connection: socket 0: [Errno 111] Connect call failed",
        "2026-12-01 10:00:02,003 ERROR streamer.writer: flush of 12 rows failed, kept for retry: disk I/O error",
        "2026-12-01 10:00:03,004 WARNING streamer.alerts: POST https://hooks.slack.com/services/T0/B0/s3cr3t refused",
    ]
    script = "import time; print(" + repr("\n".join(lines)) + ", flush=True); time.sleep(600)"
    supervisor = Supervisor([Child("streamer", [PY, "-c", script], echo=streamer_warning)],
                            log_dir=tmp_path / "logs", out=out)

    async def scenario() -> None:
        task = asyncio.create_task(supervisor.run())
        deadline = time.monotonic() + 20
        while "refused" not in out.getvalue():
            assert time.monotonic() < deadline, out.getvalue()
            await asyncio.sleep(0.1)
        supervisor.stop()
        assert await task == 0

    asyncio.run(scenario())
    console = [line.split(" | ", 1)[1] for line in out.getvalue().splitlines() if " streamer | " in line]
    redacted = [*lines[:3], lines[3].replace("T0/B0/s3cr3t", "***")]
    assert console == redacted[1:]
    assert (tmp_path / "logs" / "streamer.log").read_text().splitlines()[1:5] == redacted
    assert "s3cr3t" not in out.getvalue() + (tmp_path / "logs" / "streamer.log").read_text()


@pytest.fixture
def pids_file(tmp_path: Path) -> Iterator[Path]:
    """Where the test's grandchildren write their PIDs; any still running at the end are killed."""
    path = tmp_path / "pids"
    try:
        yield path
    finally:
        for pid in map(int, path.read_text().split() if path.exists() else []):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def supervisor_script(pids: Path) -> str:
    """A supervisor of two children that each start a grandchild; every one writes its PID."""
    record = f"import os; open({str(pids)!r}, 'a').write(str(os.getpid()) + chr(10))"
    grandchild = f"import time; {record}; time.sleep(600)"
    parent = (
        f"import subprocess, sys, time; {record}; "
        f"subprocess.Popen([sys.executable, '-c', {grandchild!r}]); time.sleep(600)"
    )
    return (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from market_assets.supervisor import Child, Supervisor\n"
        f"children = [Child('a', [sys.executable, '-c', {parent!r}]), Child('b', [sys.executable, '-c', {parent!r}])]\n"
        f"sys.exit(asyncio.run(Supervisor(children, log_dir=Path({str(pids.parent / 'logs')!r})).run()))\n"
    )


def start_supervisor(pids: Path) -> tuple[subprocess.Popen[str], list[int]]:
    process = subprocess.Popen([PY, "-c", supervisor_script(pids)], stdout=subprocess.PIPE, text=True)
    try:
        wait_until(20, "children and grandchildren to start", lambda: pids.exists() and len(pids.read_text().split()) == 4)
    except AssertionError:
        process.kill()
        raise
    return process, list(map(int, pids.read_text().split()))


def test_sigterm_stops_every_child_and_its_descendants(pids_file: Path) -> None:
    """``market up``'s supervisor as a process: SIGTERM ends it with 0 and leaves nothing behind."""
    process, pids = start_supervisor(pids_file)
    process.terminate()
    assert process.wait(timeout=30) == 0
    assert not [pid for pid in pids if alive(pid)]
    assert "stopped a" in process.stdout.read()


def test_children_and_their_children_die_with_a_sigkilled_supervisor(pids_file: Path) -> None:
    """Before the lifeline, SIGKILL of ``market up`` left every child and grandchild running."""
    process, pids = start_supervisor(pids_file)
    process.kill()
    process.wait(timeout=10)
    wait_until(15, "every child and grandchild to die", lambda: not [pid for pid in pids if alive(pid)])


def test_a_second_ctrl_c_cuts_the_drain_short(tmp_path: Path) -> None:
    """The first SIGINT starts the drain (runs get their grace); the second says: now."""
    script = (
        "import asyncio, sys, threading\n"
        "from pathlib import Path\n"
        "from market_assets.supervisor import Child, Supervisor\n"
        "async def drain(say, hurry):\n"
        "    say('draining')\n"
        "    hurried = await asyncio.to_thread(hurry.wait, 120)\n"
        "    say('hurried' if hurried else 'grace over')\n"
        "child = Child('daemon', [sys.executable, '-c', 'import time; time.sleep(600)'], drain=drain)\n"
        f"sys.exit(asyncio.run(Supervisor([child], log_dir=Path({str(tmp_path / 'logs')!r})).run()))\n"
    )
    process = subprocess.Popen([PY, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_until(20, "the child to start", lambda: (tmp_path / "logs" / "daemon.log").exists())
        os.killpg(process.pid, signal.SIGINT)
        assert process.stdout is not None
        lines = []
        while not any("draining" in line for line in lines):
            lines.append(process.stdout.readline())
        started = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert time.monotonic() - started < 20  # not the drain's 120 s
        assert "daemon | hurried" in "".join(lines) + process.stdout.read()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
