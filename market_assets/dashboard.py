"""The ingestion dashboard (SPEC §5): every channel's health row, flat, plus its volume,
coverage, lag and run signals, and the warnings derived from them: ``warnings`` lists their names,
``warningDetails`` holds a line a person reads for each.

Evaluation is pure — :func:`evaluate_dashboard` is a function of (registry, facts read from the
memory, now) — and each warning is a small function of its signal and its threshold from the
registry (``Channel.warnings``). :func:`read_dashboard` gathers the facts in one read snapshot.

The candles row also says how faithful the streamed minutes are (SPEC §8): unverified minutes and
minutes nobody traded in over the last 24 hours, the repair queue, and what the streamer's windows
of the last hour corrected and rejected. Other rows carry ``null`` there.

Two facts are counted apart: total rows and the last 24 hours' rows and subjects need a scan of
the channel's whole table (625 ms and 35 ms for 10M candles), so a caller may pass
:class:`~market_assets.memory.dashboard.VolumeCounts` counted a little earlier; the document says
when (``volumesCountedAtMs``). Such a count covers only the rows settled by then (data older than
an hour before it); every newer row is read with the last hour, at ``now``, and added to both
totals. So the three counts never contradict each other — rows of the last hour ≤ of the last
24 hours ≤ in all — however old the count: a live hour beside an older count once read
35 > 20 = 20. The last 24 hours' subjects are at least the live ones since the settled part.
Everything else is index seeks, read at ``now``.

Each row lists the latest result of every asset check of its channel (``checks``, from the memory's
``check_results``, written by the Dagster checks and by ``market checks``) and raises
``check_failed`` when any of them failed; a failing *blocking* check also makes the row's status
``failed`` (SPEC §12, :mod:`market_assets.health`).

A channel streamed by shards (``market stream --shard I/N``) lists them (``shards``): each shard's
coins, the age and status of its latest window, judged as health judges them; the row's status is
the worst shard's, and its ``stale`` warning names the shards that are late.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import msgspec

from market_assets.health import (
    ChannelHealth,
    ShardHealth,
    Status,
    evaluate_health,
    read_shard_windows,
)
from market_assets.memory import dashboard as sql
from market_assets.memory import runs
from market_assets.memory.checks import CheckResult, latest_results
from market_assets.memory.connection import MemoryConnection, snapshot
from market_assets.memory.dashboard import (
    RecentCounts,
    RecentRuns,
    VolumeCounts,
    WindowTallies,
)
from market_assets.memory.repairs import Fidelity, fidelity
from market_assets.memory.runs import RunQuery, RunRecord, RunStatus
from market_assets.memory.shards import Shard
from market_assets.registry import (
    REGISTRY,
    Channel,
    ExpectedSubjects,
    WarningThresholds,
)

ENDED = (RunStatus.SUCCEEDED, RunStatus.FAILED)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
MINUTE_MS = 60_000
"""Unverified rows are 1-minute candles: a minute closes this long after it opens."""


class WarningCode(StrEnum):
    STALE = "stale"
    DATA_LAG = "data_lag"
    ZERO_ROWS_LAST_RUN = "zero_rows_last_run"
    LOW_COVERAGE = "low_coverage"
    RECENT_FAILURES = "recent_failures"
    THROTTLED = "throttled"
    UNVERIFIED_CANDLES = "unverified_candles"
    PARTIAL_RUN = "partial_run"
    CHECK_FAILED = "check_failed"


SUBJECTS_NAMED = 3
"""How many of a partial run's failed subjects its warning names (the count says the rest)."""


PROBLEMS_SHOWN = 3
"""How many problems of a failing check its dashboard entry lists (its summary names the first;
``market checks --json`` lists every one kept): enough to see a pattern, little to send."""


class Finding(msgspec.Struct, frozen=True):
    """One warning: its name and a line a person reads."""

    code: WarningCode
    message: str


class RunSummary(msgspec.Struct, rename="camel"):
    run_id: int
    status: str
    started_at_ms: int
    finished_at_ms: int | None
    age_sec: int
    """Since the run finished (since it started, for one still running)."""
    duration_sec: float | None
    rows_written: int
    retries: int
    throttles: int
    error: str | None


class CheckProblem(msgspec.Struct, rename="camel"):
    """One thing a check found wrong, and where."""

    subject: str
    """The coin, market, chain or peg."""
    at_ms: int | None
    """The minute, bucket, hour or day it concerns (``None``: the subject as a whole)."""
    what: str
    value: str | int | float | bool | None


class _StoredProblem(msgspec.Struct):
    """A problem as ``check_results.problems`` keeps it (``Problem.as_json``)."""

    subject: str
    at_ms: int | None
    what: str
    value: str | int | float | bool | None = None


_STORED_PROBLEMS = msgspec.json.Decoder(list[_StoredProblem])
"""Typed decoding: 20 stored problems in ~5 µs, where ``json.loads`` and dicts took ~25 µs."""


def stored_problems(problems_json: str) -> list[_StoredProblem]:
    """The stored problems; a non-finite value (``json.dumps`` writes ``Infinity``, which strict
    JSON refuses) read as its text, as the checks name one."""
    try:
        return _STORED_PROBLEMS.decode(problems_json)
    except msgspec.DecodeError:
        loaded = json.loads(problems_json)
        return [
            _StoredProblem(p["subject"], p["at_ms"], p["what"], _finite_or_text(p.get("value")))
            for p in loaded
        ]


def _finite_or_text(value: object) -> str | int | float | bool | None:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


class CheckRow(msgspec.Struct, rename="camel"):
    """The latest result of one asset check of the channel (SPEC §12)."""

    name: str
    passed: bool
    blocking: bool
    """A failing blocking check makes the channel ``failed`` (alerting) and holds what depends on it."""
    severity: str
    """``ERROR`` (the stored data is wrong) or ``WARN`` (worth a look)."""
    evaluated_at_ms: int
    checked: int
    """Rows (or subjects, buckets) examined."""
    failing: int
    summary: str
    """One line: what was checked and, when it failed, the first problem."""
    problems: list[CheckProblem]
    """The first problems of a failing check (at most ``PROBLEMS_SHOWN``); empty when it passed."""


class Thresholds(msgspec.Struct, rename="camel"):
    """The registry's warning thresholds of the channel, so a reader sees why it warns."""

    data_lag_sec: int
    min_coverage: float
    recent_window_sec: int
    recent_failures: int
    throttles: int
    unverified_after_sec: int | None


class ShardRow(msgspec.Struct, rename="camel"):
    """One streamer shard of the channel, by its latest window."""

    shard: str
    """``I/N``."""
    coins: int | None
    """Coins it followed in that window (``None``: no window in the last hour)."""
    window_age_sec: int | None
    """Since that window ended (``None``: no window in the last hour)."""
    status: str
    """As health judges the shard: ``ok``, ``stale`` (late or gone) or ``failed``."""
    detail: str | None
    """Why it is not ``ok``, in a few words."""


def shard_row(shard: ShardHealth) -> ShardRow:
    return ShardRow(str(shard.shard), shard.coins, shard.age_sec, shard.status.value, shard.reason() or None)


class DashboardRow(msgspec.Struct, rename="camel"):
    """A channel's health row (SPEC §4's keys, flat, in its order) followed by its signals."""

    source: str
    channel: str
    status: str
    expected_cadence_sec: int
    stale_after_sec: int
    age_sec: int | None
    rows_written: int | None
    """Rows of the latest run, as in the health row (0 for one still running)."""
    total_rows: int
    rows_last_hour: int
    rows_last_24h: int = msgspec.field(name="rowsLast24h")
    subjects_last_hour: int
    subjects_last_24h: int = msgspec.field(name="subjectsLast24h")
    expected_subjects: int | None
    """Subjects the registry expects (capped by the profile); ``None``: no expectation."""
    coverage: float | None
    """Subjects seen in the last hour over the expected ones, at most 1."""
    latest_data_ms: int | None
    data_lag_sec: int | None
    last_run: RunSummary | None
    """The latest run that has ended: its rows, age, duration, retries and throttles."""
    last_success_ms: int | None
    recent_window_sec: int
    recent_runs: int
    recent_failures: int
    recent_retries: int
    recent_throttles: int
    last_failure: RunSummary | None
    """The latest failed run in the recent window, with its error text."""
    counters: dict[str, float]
    """Numeric metadata of the last run: for candles, the streamer's counters of its window."""
    details: dict[str, str]
    """The last run's other scalar metadata (search terms, unreported series …)."""
    unverified_minutes: int | None
    """Candles only: closed minutes stored unverified (final state unknown, queued for REST
    repair) that opened in the last 24 hours."""
    oldest_unverified_ms: int | None
    """Candles only: open time of the oldest of them."""
    repair_queue: int | None
    """Candles only: minutes queued for REST repair, of any age and reason."""
    corrected_minutes: int | None
    """Candles only: stored minutes a REST repair found with different values, summed over the
    streamer windows started in the last hour."""
    no_trade_minutes: int | None
    """Candles only: minutes candleSnapshot shows nobody traded in (``no_trades``, never a gap)
    that opened in the last 24 hours."""
    rejected_frames: dict[str, int] | None
    """Candles only: candle frames refused where they were parsed, per reason (``non_finite``,
    ``negative``, ``low_above_high`` …), summed over the streamer windows started in the last hour."""
    checks: list[CheckRow]
    """The latest result of each asset check of the channel, by name (empty: none evaluated yet)."""
    thresholds: Thresholds
    warnings: list[WarningCode]
    """The names of the warnings raised, in SPEC §5's order."""
    warning_details: dict[WarningCode, str]
    """A line a person reads for each raised warning, keyed by its name."""
    shards: list[ShardRow]
    """The streamer shards of the channel's latest window's layout, by index (empty: unsharded)."""


class DashboardDocument(msgspec.Struct, rename="camel"):
    ok: bool
    generated_at_ms: int
    volumes_counted_at_ms: int
    rows: list[DashboardRow]


@dataclass(frozen=True, slots=True)
class FidelityFacts:
    """How faithful the streamed candles are: what the memory holds and what the windows tallied."""

    held: Fidelity
    """Unverified and no-trade minutes of the last 24 hours, and the repair queue."""
    last_hour: WindowTallies
    """Corrected minutes and rejected frames of the windows started in the last hour."""


@dataclass(frozen=True, slots=True)
class ChannelFacts:
    """What the memory says about one channel, read in one snapshot (``volumes`` maybe earlier)."""

    live: RecentCounts
    """Rows newer than the settled part of ``volumes``, and the last hour's among them."""
    volumes: VolumeCounts
    expected_subjects: int | None
    last_finished: RunRecord | None
    last_success: RunRecord | None
    recent: RecentRuns
    last_failure: RunRecord | None
    fidelity: FidelityFacts | None
    """Channels the registry gives an ``unverified_candles`` threshold only (the candles)."""
    checks: tuple[CheckResult, ...]
    """The latest result of each asset check of the channel."""


def stale_warning(health: ChannelHealth) -> Finding | None:
    if health.status is not Status.STALE:
        return None
    if health.shards:
        return Finding(WarningCode.STALE, f"{health.detail}, over the {health.channel.stale_after_sec}s stale threshold")
    return Finding(
        WarningCode.STALE,
        f"latest run {health.age_sec}s old, over the {health.channel.stale_after_sec}s stale threshold",
    )


def data_lag_warning(lag_sec: int | None, thresholds: WarningThresholds) -> Finding | None:
    if lag_sec is None or lag_sec <= thresholds.data_lag_sec:
        return None
    return Finding(WarningCode.DATA_LAG, f"newest data is {lag_sec}s old, over {thresholds.data_lag_sec}s")


def zero_rows_warning(last_finished: RunRecord | None) -> Finding | None:
    """A run that succeeded without writing a row delivered nothing (a failed one is counted
    by ``recent_failures``)."""
    if last_finished is None or last_finished.status is not RunStatus.SUCCEEDED or last_finished.rows_written:
        return None
    return Finding(WarningCode.ZERO_ROWS_LAST_RUN, f"run {last_finished.run_id} succeeded with 0 rows")


def low_coverage_warning(coverage: float | None, seen: int, expected: int | None, thresholds: WarningThresholds) -> Finding | None:
    if coverage is None or coverage >= thresholds.min_coverage:
        return None
    return Finding(
        WarningCode.LOW_COVERAGE,
        f"{seen} of {expected} expected subjects in the last hour ({coverage:.0%}, minimum {thresholds.min_coverage:.0%})",
    )


def recent_failures_warning(failures: int, thresholds: WarningThresholds) -> Finding | None:
    if failures < thresholds.recent_failures:
        return None
    runs_word = "run" if failures == 1 else "runs"
    return Finding(WarningCode.RECENT_FAILURES, f"{failures} failed {runs_word} in the last {thresholds.recent_window_sec}s")


def throttled_warning(throttles: int, thresholds: WarningThresholds) -> Finding | None:
    if throttles < thresholds.throttles:
        return None
    requests_word = "request" if throttles == 1 else "requests"
    return Finding(
        WarningCode.THROTTLED, f"{throttles} throttled {requests_word} (HTTP 429) in the last {thresholds.recent_window_sec}s"
    )


def unverified_warning(held: Fidelity | None, thresholds: WarningThresholds, now_ms: int) -> Finding | None:
    """An unverified minute that closed longer ago than the threshold: repairs are stuck or behind."""
    limit_sec = thresholds.unverified_after_sec
    if held is None or held.oldest_unverified_ms is None or limit_sec is None:
        return None
    closed_ms = held.oldest_unverified_ms + MINUTE_MS
    if now_ms - closed_ms <= limit_sec * 1000:
        return None
    minutes_word = "minute" if held.unverified_minutes == 1 else "minutes"
    return Finding(
        WarningCode.UNVERIFIED_CANDLES,
        f"{held.unverified_minutes} unverified {minutes_word} in the last 24 h; the oldest, opened "
        f"{_utc(held.oldest_unverified_ms)}, closed {_age_sec(closed_ms, now_ms)}s ago, over {limit_sec}s",
    )


def partial_run_warning(last_finished: RunRecord | None) -> Finding | None:
    """A run that succeeded while some of its subjects failed (``subject_errors`` in its metadata,
    ``{subject: one-line error}``): the others were kept, these are missing. A run where every
    subject failed is ``failed`` and counted by ``recent_failures``."""
    if last_finished is None or last_finished.status is not RunStatus.SUCCEEDED:
        return None
    errors = last_finished.metadata.get("subject_errors")
    if not isinstance(errors, dict) or not errors:
        return None
    named = "; ".join(f"{subject}: {error}" for subject, error in sorted(errors.items())[:SUBJECTS_NAMED])
    more = len(errors) - SUBJECTS_NAMED
    subjects_word = "subject" if len(errors) == 1 else "subjects"
    return Finding(
        WarningCode.PARTIAL_RUN,
        f"run {last_finished.run_id} wrote {last_finished.rows_written} rows but {len(errors)} {subjects_word} "
        f"failed: {named}" + (f" (and {more} more)" if more > 0 else ""),
    )


def check_failed_warning(checks: Sequence[CheckResult]) -> Finding | None:
    """Every failing check of the channel, blocking ones first, each with its summary."""
    failed = sorted((c for c in checks if not c.passed), key=lambda c: (not c.blocking, c.check_name))
    if not failed:
        return None
    return Finding(
        WarningCode.CHECK_FAILED,
        "; ".join(f"{c.check_name} ({'blocking' if c.blocking else c.severity.lower()}): {c.summary}" for c in failed),
    )


def check_row(result: CheckResult) -> CheckRow:
    problems = [] if result.passed else stored_problems(result.problems_json)[:PROBLEMS_SHOWN]
    return CheckRow(
        name=result.check_name,
        passed=result.passed,
        blocking=result.blocking,
        severity=result.severity,
        evaluated_at_ms=result.evaluated_at_ms,
        checked=result.checked,
        failing=result.failing,
        summary=result.summary,
        problems=[CheckProblem(p.subject, p.at_ms, p.what, p.value) for p in problems],
    )


def coverage_of(seen: int, expected: int | None) -> float | None:
    if not expected:
        return None
    return min(1.0, round(seen / expected, 4))


def evaluate_channel(health: ChannelHealth, facts: ChannelFacts, now_ms: int) -> DashboardRow:
    channel = health.channel
    thresholds = channel.warnings
    live, volumes = facts.live, facts.volumes
    latest_ms = live.latest_ms if live.latest_ms is not None else volumes.latest_ms
    lag_sec = None if latest_ms is None else _age_sec(latest_ms, now_ms)
    seen = live.last_hour.subjects
    coverage = coverage_of(seen, facts.expected_subjects)
    held = None if facts.fidelity is None else facts.fidelity.held
    tallies = None if facts.fidelity is None else facts.fidelity.last_hour
    findings = (
        stale_warning(health),
        data_lag_warning(lag_sec, thresholds),
        zero_rows_warning(facts.last_finished),
        low_coverage_warning(coverage, seen, facts.expected_subjects, thresholds),
        recent_failures_warning(facts.recent.failures, thresholds),
        throttled_warning(facts.recent.throttles, thresholds),
        unverified_warning(held, thresholds, now_ms),
        partial_run_warning(facts.last_finished),
        check_failed_warning(facts.checks),
    )
    raised = [finding for finding in findings if finding is not None]
    counters, details = _split_metadata(facts.last_finished)
    health_row = health.row()
    return DashboardRow(
        source=health_row.source,
        channel=health_row.channel,
        status=health_row.status,
        expected_cadence_sec=health_row.expected_cadence_sec,
        stale_after_sec=health_row.stale_after_sec,
        age_sec=health_row.age_sec,
        rows_written=health_row.rows_written,
        total_rows=volumes.settled_rows + live.rows,
        rows_last_hour=live.last_hour.rows,
        rows_last_24h=volumes.settled_last_day + live.rows,
        subjects_last_hour=seen,
        subjects_last_24h=max(volumes.last_day_subjects, live.subjects),
        expected_subjects=facts.expected_subjects,
        coverage=coverage,
        latest_data_ms=latest_ms,
        data_lag_sec=lag_sec,
        last_run=_summary(facts.last_finished, now_ms),
        last_success_ms=None if facts.last_success is None else facts.last_success.finished_at_ms,
        recent_window_sec=thresholds.recent_window_sec,
        recent_runs=facts.recent.runs,
        recent_failures=facts.recent.failures,
        recent_retries=facts.recent.retries,
        recent_throttles=facts.recent.throttles,
        last_failure=_summary(facts.last_failure, now_ms),
        counters=counters,
        details=details,
        unverified_minutes=None if held is None else held.unverified_minutes,
        oldest_unverified_ms=None if held is None else held.oldest_unverified_ms,
        repair_queue=None if held is None else held.repair_queue,
        corrected_minutes=None if tallies is None else tallies.corrected_minutes,
        no_trade_minutes=None if held is None else held.no_trade_minutes,
        rejected_frames=None if tallies is None else tallies.rejected_frames,
        checks=[check_row(result) for result in facts.checks],
        thresholds=Thresholds(
            thresholds.data_lag_sec,
            thresholds.min_coverage,
            thresholds.recent_window_sec,
            thresholds.recent_failures,
            thresholds.throttles,
            thresholds.unverified_after_sec,
        ),
        warnings=[finding.code for finding in raised],
        warning_details={finding.code: finding.message for finding in raised},
        shards=[shard_row(shard) for shard in health.shards],
    )


def evaluate_dashboard(
    registry: Sequence[Channel],
    facts: Mapping[Channel, ChannelFacts],
    latest_runs: Mapping[tuple[str, str], RunRecord],
    now_ms: int,
    shard_windows: Mapping[tuple[str, str], Mapping[Shard, RunRecord]] | None = None,
) -> DashboardDocument:
    """Every registered channel, in registry order, at ``now_ms``."""
    report = evaluate_health(
        registry, latest_runs, now_ms, [r for c in registry for r in facts[c].checks], shard_windows
    )
    rows = [evaluate_channel(health, facts[health.channel], now_ms) for health in report.channels]
    counted = min((facts[c].volumes.counted_at_ms for c in registry), default=now_ms)
    return DashboardDocument(ok=report.ok, generated_at_ms=now_ms, volumes_counted_at_ms=counted, rows=rows)


def count_volumes(
    conn: MemoryConnection, now_ms: int, registry: Sequence[Channel] = REGISTRY
) -> dict[Channel, VolumeCounts]:
    """The whole-table counts of every channel at ``now_ms`` (the slow part; see the module doc)."""
    with snapshot(conn):
        return {c: sql.volume_counts(conn, c.data, now_ms - DAY_MS, now_ms - HOUR_MS, now_ms) for c in registry}


def read_dashboard(
    conn: MemoryConnection,
    now_ms: int,
    *,
    volumes: Mapping[Channel, VolumeCounts] | None = None,
    max_coins: int | None = None,
    registry: Sequence[Channel] = REGISTRY,
) -> DashboardDocument:
    """The dashboard of the memory behind ``conn`` at ``now_ms``.

    ``volumes`` counted earlier are used as they are (counted now when absent); ``max_coins``
    caps the perp universe a capped profile is expected to cover.
    """
    if volumes is None:
        volumes = count_volumes(conn, now_ms, registry)
    with snapshot(conn):
        asked = {c: _run_queries(c, now_ms) for c in registry}
        answers = iter(runs.latest_runs_of(conn, [q for queries in asked.values() for q in queries]))
        found = {c: tuple(next(answers) for _ in queries) for c, queries in asked.items()}
        latest = {(c.source, c.name): run for c, (run, *_) in found.items() if run is not None}
        recent = dict(zip(registry, sql.recent_runs_of(conn, [(c.source, c.name, _since(c, now_ms)) for c in registry]),
                          strict=True))
        checks = _checks_by_channel(latest_results(conn))
        facts = {c: _facts(conn, c, now_ms, volumes[c], max_coins, checks, found[c][1:], recent[c]) for c in registry}
        shard_windows = read_shard_windows(conn, latest, now_ms)
    return evaluate_dashboard(registry, facts, latest, now_ms, shard_windows)


def _checks_by_channel(results: Sequence[CheckResult]) -> dict[tuple[str, str], tuple[CheckResult, ...]]:
    grouped: dict[tuple[str, str], list[CheckResult]] = {}
    for result in results:
        grouped.setdefault((result.source, result.channel), []).append(result)
    return {key: tuple(found) for key, found in grouped.items()}


def _run_queries(channel: Channel, now_ms: int) -> tuple[RunQuery, RunQuery, RunQuery, RunQuery]:
    """The runs the dashboard shows of ``channel``: its latest, then what :func:`_facts` takes.
    A streamer window in flight is skipped by the second: the last run that ended says what
    was written."""
    return (
        RunQuery(channel.source, channel.name),
        RunQuery(channel.source, channel.name, ENDED),
        RunQuery(channel.source, channel.name, (RunStatus.SUCCEEDED,)),
        RunQuery(channel.source, channel.name, (RunStatus.FAILED,), _since(channel, now_ms)),
    )


def _since(channel: Channel, now_ms: int) -> int:
    """The start of the channel's recent window (its failures and retries are counted since)."""
    return now_ms - channel.warnings.recent_window_sec * 1000


def _facts(
    conn: MemoryConnection,
    channel: Channel,
    now_ms: int,
    volumes: VolumeCounts,
    max_coins: int | None,
    checks: Mapping[tuple[str, str], tuple[CheckResult, ...]],
    found: Sequence[RunRecord | None],
    recent: sql.RecentRuns,
) -> ChannelFacts:
    """``found``: the last finished, last successful and last failed runs (:func:`_run_queries`);
    ``recent``: the runs of the recent window, both read for every channel at once."""
    last_finished, last_success, last_failure = found
    expected = None
    if channel.expected_subjects is not None:
        expected = sql.expected_subjects(conn, channel.expected_subjects)
        if channel.expected_subjects is ExpectedSubjects.PERP_UNIVERSE and max_coins is not None:
            expected = min(expected, max_coins)
    faithful = None
    if channel.warnings.unverified_after_sec is not None:
        faithful = FidelityFacts(
            held=fidelity(conn, now_ms - DAY_MS, channel.data.scope["interval"]),
            last_hour=sql.window_tallies(conn, channel.source, channel.name, now_ms - HOUR_MS),
        )
    return ChannelFacts(
        live=sql.recent_counts(conn, channel.data, volumes.settled_before_ms, now_ms - HOUR_MS),
        volumes=volumes,
        expected_subjects=expected,
        last_finished=last_finished,
        last_success=last_success,
        recent=recent,
        last_failure=last_failure,
        fidelity=faithful,
        checks=checks.get((channel.source, channel.name), ()),
    )


def _summary(run: RunRecord | None, now_ms: int) -> RunSummary | None:
    if run is None:
        return None
    duration = None if run.finished_at_ms is None else (run.finished_at_ms - run.started_at_ms) / 1000
    return RunSummary(
        run_id=run.run_id,
        status=run.status.value,
        started_at_ms=run.started_at_ms,
        finished_at_ms=run.finished_at_ms,
        age_sec=_age_sec(run.finished_at_ms or run.started_at_ms, now_ms),
        duration_sec=duration,
        rows_written=run.rows_written,
        retries=run.retries,
        throttles=run.throttles,
        error=run.error,
    )


def _split_metadata(run: RunRecord | None) -> tuple[dict[str, float], dict[str, str]]:
    """Numbers are counters; other scalars are details; nested values (per-coin maps) are left out."""
    counters: dict[str, float] = {}
    details: dict[str, str] = {}
    if run is None:
        return counters, details
    for key, value in run.metadata.items():
        if isinstance(value, bool):
            details[key] = str(value).lower()
        elif isinstance(value, (int, float)):
            counters[key] = value
        elif isinstance(value, str):
            details[key] = value
    return counters, details


def _age_sec(since_ms: int, now_ms: int) -> int:
    return max(0, (now_ms - since_ms) // 1000)


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
