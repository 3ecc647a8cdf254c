"""A small asyncio process supervisor for ``market up``.

Why not honcho or supervisord: honcho stops the whole set when one child exits (no restart),
and supervisord is a daemon with its own config and control socket, where ``market up`` must
stay a foreground command that Ctrl-C ends cleanly. What we need is small: start children in
their own sessions (so a signal reaches a child's whole tree, e.g. Dagster's code servers),
write each one's output to its own log file, restart a crashed child with capped exponential
backoff, record each restart on the console, and on SIGINT/SIGTERM stop every tree: first the
children that must drain (the Dagster daemon: its runs finish or are canceled), then every child
in reverse order of start, escalating to SIGKILL after a grace period. A lifeline process
(:mod:`market_assets.lifeline`) ends every tree if the supervisor itself is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from market_assets.logs import RotatingLog, log_path
from market_assets.redact import redact

RESTART_DELAY_FIRST_SEC = 1.0
RESTART_DELAY_MAX_SEC = 60.0
STABLE_AFTER_SEC = 60.0
"""A child that ran this long before exiting restarts from the first delay again."""
STOP_GRACE_SEC = 15.0

Say = Callable[[str], None]
"""Prints one console line on behalf of a child."""
Drain = Callable[[Say, threading.Event], Awaitable[None]]
"""Awaited once the child's own process has exited on SIGTERM and before the rest of its tree is
stopped; the event is set when the operator asks a second time to stop, meaning now."""
Background = Callable[[Callable[[str, str], None]], Coroutine[Any, Any, None]]
"""A task that runs while the children do and prints console lines (name, line)."""


@dataclass(frozen=True)
class Child:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    drain: Drain | None = None
    echo: Callable[[str], bool] | None = None
    """Which of the child's output lines also go to the console (all go to its log file)."""


def restart_delay(consecutive_crashes: int) -> float:
    """1 s, 2 s, 4 s … capped at a minute."""
    return min(RESTART_DELAY_MAX_SEC, RESTART_DELAY_FIRST_SEC * 2 ** max(0, consecutive_crashes - 1))


@dataclass
class ChildState:
    child: Child
    log: RotatingLog
    process: asyncio.subprocess.Process | None = None
    groups: list[int] = field(default_factory=list)
    """Every process group this child was started in; a crashed child may leave processes behind."""
    relay: asyncio.Task[None] | None = None
    """Copies the current process's output to the log (and the console lines it echoes)."""
    restarts: int = 0
    consecutive_crashes: int = 0
    last_line: str = ""


class Supervisor:
    def __init__(
        self,
        children: Sequence[Child],
        *,
        log_dir: Path,
        out: TextIO = sys.stdout,
        background: Sequence[Background] = (),
    ) -> None:
        self.states = [ChildState(child, RotatingLog(log_path(log_dir, child.name))) for child in children]
        self.out = out
        self.background = background
        self._stopping = asyncio.Event()
        self._hurry = threading.Event()
        self._lifeline: asyncio.subprocess.Process | None = None

    def log(self, name: str, line: str) -> None:
        self.out.write(f"{time.strftime('%H:%M:%S')} {name:>14} | {line}\n")
        self.out.flush()

    async def run(self) -> int:
        """Supervise until SIGINT/SIGTERM, then stop every child; returns 0 after a clean stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)
        self._lifeline = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "market_assets.lifeline", stdin=asyncio.subprocess.PIPE, start_new_session=True
        )
        watchers = [asyncio.create_task(self._keep_running(state)) for state in self.states]
        helpers = [asyncio.create_task(task(self.log)) for task in self.background]
        await self._stopping.wait()
        draining = [state for state in self.states if state.child.drain]
        self.log("up", "stopping every process" + (" (a second Ctrl-C cancels in-flight runs at once)" if draining else ""))
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*(self._drain(state) for state in draining))
        # In reverse order of start: a child stops before what it reads from (the streamer before
        # the offline replay it streams from, which would otherwise be a warning at every stop).
        for state in reversed(self.states):
            await self._stop(state)
        for task in (*watchers, *helpers):
            task.cancel()
        await asyncio.gather(*watchers, *helpers, return_exceptions=True)
        # The last lines a child wrote before it exited are still in its pipe.
        relays = [state.relay for state in self.states if state.relay is not None]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*relays, return_exceptions=True), STOP_GRACE_SEC)
        for state in self.states:
            state.log.close()
        assert self._lifeline.stdin is not None
        self._lifeline.stdin.close()
        await self._lifeline.wait()
        return 0

    def stop(self) -> None:
        self._stopping.set()

    def _on_signal(self) -> None:
        if self._stopping.is_set():
            self._hurry.set()
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
            state.log.note(f"exited with code {code} after {ran:.1f}s; restart #{state.restarts} in {delay:.0f}s")
            self.log(
                "up",
                f"{state.child.name} exited with code {code} after {ran:.1f}s"
                + (f": {state.last_line}" if state.last_line else "")
                + f"; restart #{state.restarts} in {delay:.0f}s (full log: {state.log.path})",
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
        state.groups.append(state.process.pid)
        self._tell_lifeline(f"+{state.process.pid}")
        state.log.note(f"started (pid {state.process.pid}): {redact(' '.join(child.argv))}")
        self.log("up", f"started {child.name} (pid {state.process.pid}, log {state.log.path})")
        state.relay = asyncio.create_task(self._relay(state, state.process))

    async def _relay(self, state: ChildState, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            # A child may print a URL with its token (a webhook's error); no log file keeps it.
            line = redact(raw.decode(errors="replace").rstrip())
            state.log.write(line)
            if line.strip():
                state.last_line = line.strip()
                if state.child.echo is not None and state.child.echo(line):
                    self.log(state.child.name, line.strip())

    async def _drain(self, state: ChildState) -> None:
        """SIGTERM to the child's own process only, so what it started (Dagster's run workers)
        goes on while the child's drain decides their end; then the drain."""
        process, drain = state.process, state.child.drain
        assert drain is not None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), STOP_GRACE_SEC)
        await drain(lambda line: self.log(state.child.name, line), self._hurry)

    async def _stop(self, state: ChildState) -> None:
        process = state.process
        if process is None:
            return
        for group in state.groups:
            _signal_group(group, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SEC
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), STOP_GRACE_SEC)
        while any(_group_alive(group) for group in state.groups) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if any(_group_alive(group) for group in state.groups):
            self.log("up", f"{state.child.name} ignored SIGTERM for {STOP_GRACE_SEC:.0f}s; killing it")
        # Whatever the child left in its session (grandchildren) goes with it.
        for group in state.groups:
            _signal_group(group, signal.SIGKILL)
            self._tell_lifeline(f"-{group}")
        await process.wait()
        state.log.note(f"stopped (exit {process.returncode})")
        self.log("up", f"stopped {state.child.name} (exit {process.returncode})")

    def _tell_lifeline(self, line: str) -> None:
        if self._lifeline is not None and self._lifeline.stdin is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                self._lifeline.stdin.write(line.encode() + b"\n")


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)


def _group_alive(group: int) -> bool:
    """Any process left in the group that is not a zombie waiting for its parent to reap it."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(_member_running(pid, group) for pid in _pids())


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _member_running(pid: int, group: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    state, pgrp = fields[0], int(fields[2])
    return pgrp == group and state != "Z"
