"""One benchmark figure: what was measured, its goal, and the baseline it was measured against.

Every benchmark calls ``report`` once per goal it is judged by. The line is printed, and when
``bench/all.py`` runs the benchmark (``MARKET_BENCH_FIGURES`` names a file) it is also appended
there as JSON, so ``make bench`` can end with one table of every figure.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Literal

FIGURES_ENV = "MARKET_BENCH_FIGURES"


@dataclass(frozen=True)
class Figure:
    bench: str
    name: str
    value: float
    unit: str
    goal: str
    """The goal as read by a person, e.g. ``>= 0.8x`` or ``<= 64 MB``."""
    baseline: str
    """The yardstick measured in the same run, with its figure, e.g. ``executemany 30,400 rows/s``."""
    passed: bool | None
    """``None`` for a figure shown for information, with no goal of its own."""

    @property
    def verdict(self) -> str:
        return "info" if self.passed is None else "pass" if self.passed else "FALLS SHORT"


def report(bench: str, name: str, value: float, unit: str, *, goal: str, baseline: str,
           limit: float | None, direction: Literal["max", "min"] = "max") -> Figure:
    """Print and record one figure; it passes if ``value <= limit`` (``max``) or ``>= limit``
    (``min``); with no limit it is information."""
    passed = None if limit is None else value <= limit if direction == "max" else value >= limit
    figure = Figure(bench, name, value, unit, goal, baseline, passed)
    print(f"FIGURE {name}: {value:,.3g} {unit} (goal {goal}; baseline {baseline}) {figure.verdict}", flush=True)
    if path := os.environ.get(FIGURES_ENV):
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(figure)) + "\n")
    return figure


def read(path: str) -> list[Figure]:
    with open(path, encoding="utf-8") as lines:
        return [Figure(**json.loads(line)) for line in lines if line.strip()]
