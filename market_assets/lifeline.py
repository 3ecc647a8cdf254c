"""``python -m market_assets.lifeline``: ends the supervisor's process groups if the supervisor dies.

The supervisor starts each child in its own session (its own process group), so a terminal's
Ctrl-C reaches only ``market up``, which then stops every tree in order. If ``market up`` is
SIGKILLed it cannot do that. ``PR_SET_PDEATHSIG`` would reach the direct children only: Linux
clears it on fork, so Dagster's code servers and run workers (children of the daemon) would live
on. This small process, in a session of its own, holds the read end of a pipe from the
supervisor: ``+PGID`` adds a group, ``-PGID`` forgets a group the supervisor stopped itself. End
of file with groups still listed means the supervisor is gone: each group gets SIGTERM, and
SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

KILL_AFTER_SEC = 5.0


def follow(groups: set[int], line: str) -> None:
    """Apply one line of the pipe to the groups still to end."""
    line = line.strip()
    if line.startswith("+"):
        groups.add(int(line[1:]))
    elif line.startswith("-"):
        groups.discard(int(line[1:]))


def end_groups(groups: set[int], *, kill_after_sec: float = KILL_AFTER_SEC) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        living = {group for group in groups if _signal_group(group, sig)}
        if not living or sig == signal.SIGKILL:
            return
        deadline = time.monotonic() + kill_after_sec
        while time.monotonic() < deadline and any(_signal_group(group, 0) for group in living):
            time.sleep(0.1)
        groups = living


def _signal_group(group: int, sig: int) -> bool:
    """Whether the group still had a process to signal."""
    with contextlib.suppress(PermissionError):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return False
    return True


def main() -> None:
    # A Ctrl-C meant for the supervisor must not end the lifeline while the supervisor stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    groups: set[int] = set()
    for line in sys.stdin:
        follow(groups, line)
    end_groups(groups)


if __name__ == "__main__":
    main()
