"""Wall time of one scheduled funding + Polymarket + DefiLlama materialization, offline,
split into our work (the channel functions the assets call) and Dagster's overhead.

    .venv/bin/python bench/dagster_run.py [--repeat 3]

Against the loopback replay (local profile). Our work is measured by running the same channel
functions directly on a fresh memory; Dagster's overhead is what ``materialize`` adds on top
(run storage, event log, step orchestration) in the same process and run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dagster as dg  # noqa: E402

from market_assets.defs.defillama.assets import macro_asset  # noqa: E402
from market_assets.defs.hyperliquid.funding import funding_asset  # noqa: E402
from market_assets.defs.polymarket.assets import discovery_asset, summary_asset  # noqa: E402
from market_assets.defs.resources import MarketMemory  # noqa: E402
from market_assets.ingest import defillama, funding, polymarket  # noqa: E402
from market_assets.ingest.runner import run_channel  # noqa: E402
from market_assets.registry import DEFILLAMA_MACRO, FUNDING, POLYMARKET_DISCOVERY, POLYMARKET_SUMMARY  # noqa: E402
from market_assets.replay import ReplayConfig, ReplayThread  # noqa: E402
from market_assets.settings import Settings  # noqa: E402

from figures import report  # noqa: E402

CHANNELS = [
    (FUNDING, funding.collect, funding.store),
    (POLYMARKET_DISCOVERY, polymarket.collect_discovery, polymarket.store_discovery),
    (POLYMARKET_SUMMARY, polymarket.collect_summary, polymarket.store_summary),
    (DEFILLAMA_MACRO, defillama.collect, defillama.store),
]
ASSETS = [funding_asset, discovery_asset, summary_asset, macro_asset]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with ReplayThread(ReplayConfig(enforce_weight=False)) as replay, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(
            MARKET_REPLAY_HTTP=replay.http_url, MARKET_REPLAY_WS=replay.ws_url, MARKET_PROFILE="local"
        )
        ours, whole = [], []
        for i in range(args.repeat):
            db = Path(tmp) / f"direct-{i}.db"
            settings = Settings.from_env(db_path=db)
            ours.append(timed(lambda: [run_channel(c, settings, collect, store) for c, collect, store in CHANNELS]))
            memory = MarketMemory(db_path=str(Path(tmp) / f"dagster-{i}.db"))
            with dg.instance_for_test() as instance:
                whole.append(
                    timed(lambda: dg.materialize(ASSETS, resources={"memory": memory}, instance=instance))
                )
    our_s, whole_s = statistics.median(ours), statistics.median(whole)
    print(f"one materialization of {len(ASSETS)} assets (median of {args.repeat}, fresh memory each time)")
    print(f"  our work (channel functions, direct): {our_s * 1000:8.0f} ms")
    print(f"  through dagster.materialize:          {whole_s * 1000:8.0f} ms")
    print(f"  Dagster overhead:                     {(whole_s - our_s) * 1000:8.0f} ms  ({whole_s / our_s:.2f}x our work)")
    report("dagster_run", "one materialization through Dagster / our work alone", whole_s / our_s, "x",
           goal="none of its own", baseline=f"our work {our_s * 1000:.0f} ms", limit=None)


if __name__ == "__main__":
    main()
