"""``python -m streamer``: ``market stream`` without the CLI, for supervisors and process tests.

``--clock-speed N --replay-control URL`` runs the streamer on an accelerated clock that reads
the same time as a replay started with ``python -m market_assets.replay --speed N`` (``URL`` is
the ``control`` address it prints): the streamer reads the replay's clock once at start and
runs at the same speed from there. Only meaningful in offline mode, against that replay.
"""

from __future__ import annotations

import argparse
import sys
import time

import httpx

from market_assets.settings import Settings
from market_assets.sources.timing import AcceleratedClock, AsyncClock
from streamer.cli import run_stream


def replay_clock(speed: float, control_url: str) -> AcceleratedClock:
    """An accelerated clock in step with the replay's: its ``now`` when asked, plus half the
    round trip at ``speed``."""
    sent = time.monotonic()
    now_ms = int(httpx.get(f"{control_url.rstrip('/')}/clock", timeout=10).json()["now_ms"])
    half_trip_ms = (time.monotonic() - sent) / 2 * 1000 * speed
    return AcceleratedClock(speed, now_ms + int(half_trip_ms))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamer", description=__doc__)
    parser.add_argument("--clock-speed", type=float, default=None, help="run this many times faster than real time")
    parser.add_argument("--replay-control", default=None, help="the replay's control URL, to share its clock")
    parser.add_argument("--shard", default=None, metavar="I/N", help="follow only shard I of N (default: MARKET_STREAM_SHARD)")
    args = parser.parse_args(argv)
    clock: AsyncClock | None = None
    if args.clock_speed is not None:
        if args.replay_control is None:
            parser.error("--clock-speed needs --replay-control: the streamer must read the replay's time")
        clock = replay_clock(args.clock_speed, args.replay_control)
    return run_stream(Settings.from_env(), shard=args.shard, clock=clock)


if __name__ == "__main__":
    sys.exit(main())
