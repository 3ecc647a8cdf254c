"""Every asset check of the platform, per channel (SPEC §12)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from market_assets.memory.checks import CheckResult
from market_assets.memory.connection import snapshot
from market_assets.quality import (
    candles,
    defillama,
    features,
    funding,
    polymarket,
    rollups,
)
from market_assets.quality.outcome import CheckOutcome, QualityCheck
from market_assets.registry import Channel

CHECKS: tuple[QualityCheck, ...] = (
    *candles.CHECKS,
    *rollups.CHECKS,
    *features.CHECKS,
    *funding.CHECKS,
    *polymarket.CHECKS,
    *defillama.CHECKS,
)


def checks_of(channel: Channel) -> tuple[QualityCheck, ...]:
    return tuple(check for check in CHECKS if check.channel is channel)


def result_of(check: QualityCheck, outcome: CheckOutcome, now_ms: int) -> CheckResult:
    """The row the memory keeps for ``outcome``."""
    return CheckResult(
        source=check.channel.source,
        channel=check.channel.name,
        check_name=check.name,
        passed=outcome.passed,
        blocking=check.blocking,
        severity=check.severity.value,
        evaluated_at_ms=now_ms,
        checked=outcome.checked,
        failing=outcome.failing,
        summary=outcome.summary(),
        problems_json=json.dumps([p.as_json() for p in outcome.problems]),
    )


def evaluate_all(conn: sqlite3.Connection, checks: Sequence[QualityCheck], now_ms: int) -> dict[QualityCheck, CheckOutcome]:
    """Each check's outcome at ``now_ms``, every one read from the same snapshot of the memory."""
    with snapshot(conn):
        return {check: check.evaluate(conn, now_ms) for check in checks}
