"""A small asyncio process supervisor for ``market up``.

Why not honcho or supervisord: honcho stops the whole set when one child exits (no restart),
and supervisord is a daemon with its own config and control socket, where ``market up`` must
stay a foreground command that Ctrl-C ends cleanly. What we need is small: start children in
their own sessions (so a signal reaches a child's whole tree, e.g. Dagster's code servers),
prefix their output, restart a crashed child with capped exponential backoff, record each
restart, and on SIGINT/SIGTERM stop every tree, escalating to SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

RESTART_DELAY_FIRST_SEC = 1.0
RESTART_DELAY_MAX_SEC = 60.0
STABLE_AFTER_SEC = 60.0
"""A child that ran this long before exiting restarts from the first delay again."""
STOP_GRACE_SEC = 15.0


@dataclass(frozen=True)
class Child:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None


def restart_delay(consecutive_crashes: int) -> float:
    """1 s, 2 s, 4 s … capped at a minute."""
    return min(RESTART_DELAY_MAX_SEC, RESTART_DELAY_FIRST_SEC * 2 ** max(0, consecutive_crashes - 1))


@dataclass
class ChildState:
    child: Child
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    consecutive_crashes: int = 0


class Supervisor:
    def __init__(self, children: Sequence[Child], *, out: TextIO = sys.stdout) -> None:
        self.states = [ChildState(child) for child in children]
        self.out = out
        self._stopping = asyncio.Event()

    def log(self, name: str, line: str) -> None:
        self.out.write(f"{time.strftime('%H:%M:%S')} {name:>10} | {line}\n")
        self.out.flush()

    async def run(self) -> int:
        """Supervise until SIGINT/SIGTERM, then stop every child; returns 0 after a clean stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopping.set)
        watchers = [asyncio.create_task(self._keep_running(state)) for state in self.states]
        await self._stopping.wait()
        self.log("up", "stopping every process")
        await asyncio.gather(*(self._stop(state) for state in self.states))
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        return 0

    def stop(self) -> None:
        self._stopping.set()

    async def _keep_running(self, state: ChildState) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            await self._start(state)
            assert state.process is not None
            code = await state.process.wait()
            if self._stopping.is_set():
                return
            ran = time.monotonic() - started
            state.consecutive_crashes = 1 if ran >= STABLE_AFTER_SEC else state.consecutive_crashes + 1
            state.restarts += 1
            delay = restart_delay(state.consecutive_crashes)
            self.log(
                "up",
                f"{state.child.name} exited with code {code} after {ran:.1f}s; "
                f"restart #{state.restarts} in {delay:.0f}s",
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _start(self, state: ChildState) -> None:
        child = state.child
        state.process = await asyncio.create_subprocess_exec(
            *child.argv,
            env={**os.environ, **child.env},
            cwd=child.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self.log("up", f"started {child.name} (pid {state.process.pid})")
        asyncio.create_task(self._relay(child.name, state.process))

    async def _relay(self, name: str, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            self.log(name, raw.decode(errors="replace").rstrip())

    async def _stop(self, state: ChildState) -> None:
        process = state.process
        if process is None or process.returncode is not None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_SEC)
        except TimeoutError:
            self.log("up", f"{state.child.name} ignored SIGTERM for {STOP_GRACE_SEC:.0f}s; killing it")
            _signal_group(process.pid, signal.SIGKILL)
            await process.wait()
        # Whatever the child left in its session (grandchildren) goes with it.
        _signal_group(process.pid, signal.SIGKILL)
        self.log("up", f"stopped {state.child.name} (exit {process.returncode})")


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
