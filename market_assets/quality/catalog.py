"""Every asset check of the platform, per channel (SPEC §12)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from market_assets.memory.checks import CheckResult, record_results
from market_assets.memory.connection import MemoryConnection, snapshot
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


def evaluate_all(conn: MemoryConnection, checks: Sequence[QualityCheck], now_ms: int) -> dict[QualityCheck, CheckOutcome]:
    """Each check's outcome at ``now_ms``, every one read from the same snapshot of the memory."""
    with snapshot(conn):
        return {check: check.evaluate(conn, now_ms) for check in checks}


KNOWN = frozenset((check.channel.source, check.channel.name, check.name) for check in CHECKS)
"""Every check's stored key: results of any other check are retired when results are recorded."""


def record(conn: MemoryConnection, outcomes: Mapping[QualityCheck, CheckOutcome], now_ms: int) -> None:
    """Keep ``outcomes`` in ``check_results``; results of checks the catalog no longer holds are
    dropped in the same transaction."""
    record_results(conn, [result_of(check, outcome, now_ms) for check, outcome in outcomes.items()], known=KNOWN)


def evaluate_and_record(
    conn: MemoryConnection, checks: Sequence[QualityCheck], now_ms: int
) -> dict[QualityCheck, CheckOutcome]:
    """Each check's outcome at ``now_ms`` (one snapshot), kept in ``check_results``."""
    outcomes = evaluate_all(conn, checks, now_ms)
    record(conn, outcomes, now_ms)
    return outcomes
