"""``python -m market_assets.replay``: run the replay servers until interrupted.

Prints one JSON line with the URLs (``http``, ``ws``, ``control``, and every source's base URL
under ``endpoints``) once both servers accept connections, so a supervisor can read it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import sys

from market_assets import fixtures
from market_assets.replay.server import LOOPBACK, ReplayConfig, ReplayServers
from market_assets.sources.timing import AcceleratedClock, SystemClock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m market_assets.replay", description=__doc__)
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--http-port", type=int, default=0)
    parser.add_argument("--ws-port", type=int, default=0)
    parser.add_argument("--speed", type=float, default=1.0, help="run the replay clock this many times faster")
    parser.add_argument("--start-ms", type=int, default=None, help="replay clock start (epoch ms; default now)")
    parser.add_argument("--tick", type=float, default=5.0, help="clock seconds between candle updates")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic candle walk")
    parser.add_argument(
        "--universe",
        default=fixtures.HL_META_AND_CTXS,
        choices=[fixtures.HL_META_AND_CTXS, fixtures.HL_META_AND_CTXS_2024],
        help="recorded metaAndAssetCtxs to serve and stream",
    )
    parser.add_argument("--no-weight-limit", action="store_true", help="never answer 429 for the weight budget")
    args = parser.parse_args(argv)
    clock = (
        SystemClock()
        if args.speed == 1.0 and args.start_ms is None
        else AcceleratedClock(args.speed, args.start_ms)
    )
    config = ReplayConfig(
        host=args.host,
        http_port=args.http_port,
        ws_port=args.ws_port,
        clock=clock,
        tick_s=args.tick,
        universe=args.universe,
        seed=args.seed,
        enforce_weight=not args.no_weight_limit,
    )
    asyncio.run(_serve(config))
    return 0


async def _serve(config: ReplayConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    replay = ReplayServers(config)
    await replay.start()
    print(
        json.dumps(
            {
                "http": replay.http_url,
                "ws": replay.ws_url,
                "control": f"{replay.http_url}/_replay",
                "endpoints": dataclasses.asdict(replay.endpoints),
            }
        ),
        flush=True,
    )
    await stop.wait()
    await replay.stop()


if __name__ == "__main__":
    sys.exit(main())
