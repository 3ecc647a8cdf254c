"""What a check is and what it found."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from market_assets.memory.connection import MemoryConnection
from market_assets.registry import CHECK_PROBLEMS_LISTED, Channel

JsonScalar = str | int | float | bool | None


class Severity(StrEnum):
    """Dagster's ``AssetCheckSeverity`` values: an ERROR of a blocking check holds what depends
    on the data and counts as ``failed`` for alerting; a WARN is shown, never blocks."""

    WARN = "WARN"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing a check found wrong, and where."""

    subject: str
    """The coin, market, chain or peg."""
    at_ms: int | None
    """The minute, bucket, hour or day it concerns (``None``: the subject as a whole)."""
    what: str
    """A line a person reads: ``"low 101.5 above high 100.0"``."""
    value: JsonScalar = None
    """The offending value, when one number says it."""

    def as_json(self) -> dict[str, JsonScalar]:
        """Strict JSON: a non-finite value is written as its text (``"inf"``), as browsers and
        msgspec refuse ``Infinity``/``NaN``."""
        value = self.value
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        return {"subject": self.subject, "at_ms": self.at_ms, "what": self.what, "value": value}


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """A check's verdict over what it examined."""

    checked: int
    """Rows (or subjects, buckets) examined."""
    problems: Sequence[Problem]
    """The failing ones, oldest first; at most ``CHECK_PROBLEMS_LISTED`` kept (``failing`` counts all)."""
    failing: int = -1
    """How many failed in all; -1: ``len(problems)``."""
    details: dict[str, JsonScalar] = field(default_factory=dict)
    """Other facts worth showing beside the verdict (the sampled coin, the window)."""

    def __post_init__(self) -> None:
        if self.failing < 0:
            object.__setattr__(self, "failing", len(self.problems))
        object.__setattr__(self, "problems", tuple(self.problems[:CHECK_PROBLEMS_LISTED]))

    @property
    def passed(self) -> bool:
        return self.failing == 0

    def summary(self) -> str:
        """One line: what was checked and, when it failed, the first problem."""
        if self.passed:
            return f"passed: {self.checked:,} checked"
        first = self.problems[0] if self.problems else None
        where = "" if first is None else f"; first: {first.subject}" + (
            "" if first.at_ms is None else f" at {utc_minute(first.at_ms)}"
        ) + f": {first.what}"
        return f"failed: {self.failing:,} of {self.checked:,}{where}"


def utc_minute(ms: int) -> str:
    """A time as a person reads it in a summary (the problems keep the exact epoch ms)."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


Evaluate = Callable[[MemoryConnection, int], CheckOutcome]
"""``(connection, now_ms) -> outcome``: a read of the memory at the given clock, no writes."""


@dataclass(frozen=True, slots=True)
class QualityCheck:
    """One asset check: its name (unique per channel), what it means and how it is evaluated."""

    channel: Channel
    name: str
    description: str
    """What the check means and what to do when it fails (shown in the Dagster UI)."""
    evaluate: Evaluate
    severity: Severity = Severity.ERROR
    """ERROR: the stored data is wrong; WARN: worth a look (a jump that may be real)."""
    blocking: bool = False
    """Failing holds what depends on the data (SPEC §12) and counts as ``failed`` for alerting."""

    def __post_init__(self) -> None:
        if self.blocking and self.severity is not Severity.ERROR:
            raise ValueError(f"{self.key}: a blocking check fails with ERROR (Dagster blocks on ERROR only)")

    @property
    def key(self) -> str:
        return f"{self.channel.key}:{self.name}"
