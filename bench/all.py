"""``make bench``: every benchmark in turn, then one table of every figure it is judged by.

    .venv/bin/python bench/all.py [--only NAME ...]

Each benchmark runs in its own process (as ``.venv/bin/python bench/NAME.py`` would) and records
its figures through :func:`figures.report`: the figure, its goal, the baseline measured in the
same run, and whether it passes. The table ends the run; the exit status is 1 if a benchmark
failed to run or a figure falls short of its goal. ``bench/README.md`` says what each measures
and why its baseline is the right yardstick.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import FIGURES_ENV, Figure, read

HERE = Path(__file__).resolve().parent
BENCHES = ["stream_throughput", "confirmation_cost", "wal", "rollups", "api", "health", "parse", "features", "dagster_run",
           "read", "checks", "admin_page", "postgres"]
"""In the order they run: the goals issue 13 names first, then issue 15's, then issue 16's, then issue 17's."""


def table(figures: list[Figure], failed: list[str]) -> str:
    rows = [("benchmark", "figure", "measured", "goal", "baseline (same run)", "verdict")]
    rows += [(f.bench, f.name, f"{f.value:,.3g} {f.unit}", f.goal, f.baseline, f.verdict) for f in figures]
    rows += [(name, "(the benchmark did not run to its end)", "-", "-", "-", "FAILED") for name in failed]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=BENCHES, help="run these benchmarks only")
    args = parser.parse_args()
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        path = str(Path(scratch) / "figures.jsonl")
        open(path, "w").close()
        for name in args.only or BENCHES:
            print(f"== bench/{name}.py", flush=True)
            started = time.monotonic()
            code = subprocess.run([sys.executable, str(HERE / f"{name}.py")], env={**os.environ, FIGURES_ENV: path}).returncode
            print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
            if code != 0 and not any(f.bench == name for f in read(path)):
                failed.append(name)
        figures = read(path)
    print("\n== summary\n" + table(figures, failed))
    short = [f for f in figures if f.passed is False]
    print(f"\n{len(figures)} figures: {sum(f.passed is True for f in figures)} pass, {len(short)} fall short, "
          f"{sum(f.passed is None for f in figures)} information; {len(failed)} benchmarks failed to run")
    return 1 if short or failed else 0


if __name__ == "__main__":
    sys.exit(main())
