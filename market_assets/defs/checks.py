"""The quality catalog as Dagster asset checks: one per ``QualityCheck``, shown on its asset.

Each channel's checks are one ``multi_asset_check`` (one op, one step): a run evaluates them
from a single snapshot of the memory (``evaluate_all``) instead of starting a process per check,
and ``can_subset`` keeps every check executable on its own from the UI. A channel job selects
its asset with ``AssetSelection.assets``, which includes the checks on it, so every scheduled
materialization is followed by its checks in the same run.

Every evaluation, in a run or by the candles sensor, is also recorded in the memory's
``check_results`` for the Dagster-free health surfaces.
"""

# No ``from __future__ import annotations``: Dagster reads the op's ``context`` annotation as a
# class, not a string.
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import dagster as dg

from market_assets.clock import Clock, wall_clock_ms
from market_assets.defs.automation import asset_key
from market_assets.defs.resources import MarketMemory
from market_assets.quality.catalog import evaluate_and_record
from market_assets.quality.outcome import CheckOutcome, Problem, QualityCheck
from market_assets.registry import Channel


def _at(at_ms: int | None) -> str:
    if at_ms is None:
        return "(whole)"
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cell(text: object) -> str:
    return "" if text is None else str(text).replace("|", "\\|").replace("\n", " ")


def problems_table(problems: Sequence[Problem]) -> str:
    """The listed problems as a Markdown table, times in UTC (the UI renders it)."""
    lines = ["| subject | at | at_ms | what | value |", "|---|---|---|---|---|"]
    lines += [
        f"| {_cell(p.subject)} | {_at(p.at_ms)} | {_cell(p.at_ms)} | {_cell(p.what)} | {_cell(p.value)} |"
        for p in problems
    ]
    return "\n".join(lines)


def outcome_metadata(outcome: CheckOutcome) -> dict[str, dg.MetadataValue]:
    """What failed and where: counts, the summary line, the listed problems (JSON, and a table
    when there are any) and the check's other facts."""
    metadata: dict[str, dg.MetadataValue] = {
        "failing": dg.MetadataValue.int(outcome.failing),
        "checked": dg.MetadataValue.int(outcome.checked),
        "summary": dg.MetadataValue.text(outcome.summary()),
        "problems": dg.MetadataValue.json([p.as_json() for p in outcome.problems]),
    }
    if outcome.problems:
        metadata["problems_table"] = dg.MetadataValue.md(problems_table(outcome.problems))
    if outcome.details:
        metadata["details"] = dg.MetadataValue.json(dict(outcome.details))
    return metadata


def severity(check: QualityCheck) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity(check.severity.value)


def check_result(check: QualityCheck, outcome: CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset_key(check.channel),
        check_name=check.name,
        passed=outcome.passed,
        severity=severity(check),
        description=outcome.summary(),
        metadata=outcome_metadata(outcome),
    )


def check_spec(check: QualityCheck) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        check.name,
        asset=asset_key(check.channel),
        description=check.description,
        blocking=check.blocking,
        metadata={"severity": check.severity.value},
    )


def checks_op_name(channel: Channel) -> str:
    return f"{channel.source}_{channel.name}_checks"


def channel_checks(
    channel: Channel, checks: Sequence[QualityCheck], *, clock: Clock = wall_clock_ms
) -> dg.AssetChecksDefinition:
    """The asset checks of one channel, as one subsettable op."""
    if len({check.name for check in checks}) != len(checks) or any(check.channel is not channel for check in checks):
        raise ValueError(f"{channel.key}: check names must be unique and the checks its own")

    @dg.multi_asset_check(
        name=checks_op_name(channel),
        specs=[check_spec(check) for check in checks],
        can_subset=True,
        description=f"Data-quality checks of {channel.key}, evaluated against the market memory.",
    )
    def evaluate(context: dg.AssetCheckExecutionContext, memory: MarketMemory) -> Iterator[dg.AssetCheckResult]:
        selected = {key.name for key in context.selected_asset_check_keys}
        chosen = [check for check in checks if check.name in selected]
        with memory.connect() as conn:
            outcomes = evaluate_and_record(conn, chosen, clock())
        for check, outcome in outcomes.items():
            yield check_result(check, outcome)

    return evaluate


def asset_checks(checks: Sequence[QualityCheck], *, clock: Clock = wall_clock_ms) -> list[dg.AssetChecksDefinition]:
    """One ``channel_checks`` per channel that has checks, in the catalog's order."""
    channels = list(dict.fromkeys(check.channel for check in checks))
    return [
        channel_checks(channel, [check for check in checks if check.channel is channel], clock=clock)
        for channel in channels
    ]
