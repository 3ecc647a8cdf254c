"""Health evaluation: the SPEC §4 contract as a pure function of (registry, latest runs, latest
check results, now).

A channel whose latest check results include a failing *blocking* check is ``failed``, whatever
its runs say (SPEC §12: it counts as failed for alerting): its data is wrong, and what depends on it
is held. ``run_status`` keeps what the runs alone say (the catch-up sensor re-runs a channel by
it); :func:`explain` names the check and its summary. Non-blocking checks never change the status
(the dashboard warns about them, ``check_failed``).

Where ``ageSec`` is measured from:

* a completed run (``succeeded`` or ``failed``): from ``finished_at`` — how long ago the channel
  last delivered (or last tried to);
* a ``running`` run: from ``started_at`` — how long it has been in flight, so a run killed
  mid-way ages like any other and turns ``stale`` past the threshold.

``ageSec`` is whole seconds, floored, never negative (a clock a little behind a writer's reads
0). Statuses compare that same integer with ``staleAfterSec``: a run is within the threshold
while ``ageSec <= staleAfterSec`` and stale from ``staleAfterSec + 1``, so the document a
monitor reads is always consistent with itself.

Sharded streamers (``market stream --shard I/N``) each record their own windows of one channel,
marked with their ``I/N``. When the channel's latest run is a shard's, the channel is judged by
*every* shard's latest window (:class:`ShardHealth`), each as a channel of its own: it is ``ok``
only when all N reported within the threshold, otherwise the worst shard's status (``failed``
over ``stale``), with ``ageSec`` the oldest shard's age. N is the one the shards' own windows
report (the latest run's), so a shard that never comes back stays missing however long it is
gone; a shard with no window in :data:`SHARD_LOOKBACK_MS` is ``stale`` and at least that old (and
at least as old as the latest run: when every shard is gone, ``ageSec`` is the latest run's).
The row's optional ``detail`` names the shards that are not well (``shard 2/3: no window for
7 min``); it is left out otherwise, so an unsharded memory's document is unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum

import msgspec

from market_assets.memory import runs
from market_assets.memory.checks import CheckResult, failing_results
from market_assets.memory.connection import MemoryConnection, snapshot
from market_assets.memory.runs import RunRecord, RunStatus
from market_assets.memory.shards import SHARD_KEY, Shard, latest_shard_windows
from market_assets.registry import REGISTRY, Channel


class Status(StrEnum):
    OK = "ok"
    RUNNING = "running"
    MISSING = "missing"
    FAILED = "failed"
    STALE = "stale"


SHARD_LOOKBACK_MS = 3_600_000
"""How far back each shard's latest window is looked for (N windows a minute are read)."""

BAD_STATUSES = frozenset({Status.MISSING, Status.FAILED, Status.STALE})
"""Any of these makes the document's ``ok`` false."""


class Severity(IntEnum):
    """How bad a channel is, for ranking and for ``market check``'s exit code (higher is worse).

    ``failed`` outranks ``stale`` (SPEC §6): a source is refusing or the code is broken, while
    stale may be a slow source. ``missing`` is a setup/configuration failure (nothing has ever
    run) and sits between them.
    """

    OK = 0
    STALE = 3
    MISSING = 4
    FAILED = 5


SEVERITY = {
    Status.OK: Severity.OK,
    Status.RUNNING: Severity.OK,
    Status.STALE: Severity.STALE,
    Status.MISSING: Severity.MISSING,
    Status.FAILED: Severity.FAILED,
}


class HealthRow(msgspec.Struct, rename="camel", omit_defaults=True):
    """One channel of the health document; field order is the SPEC's key order, then the
    optional ``detail`` (present only when shards are not all well)."""

    source: str
    channel: str
    status: str
    expected_cadence_sec: int
    stale_after_sec: int
    age_sec: int | None
    rows_written: int | None
    detail: str | None = None
    """Which shards are missing, late or failed, and how."""


class HealthDocument(msgspec.Struct):
    ok: bool
    rows: list[HealthRow]


@dataclass(frozen=True, slots=True)
class ShardHealth:
    """One shard of a sharded channel, judged by its latest window as a channel would be."""

    shard: Shard
    status: Status
    age_sec: int | None
    """``None``: no window in :data:`SHARD_LOOKBACK_MS`."""
    run: RunRecord | None

    @property
    def coins(self) -> int | None:
        """Coins the shard followed in its latest window (its metadata's ``coins``)."""
        if self.run is None:
            return None
        coins = self.run.metadata.get("coins")
        return coins if isinstance(coins, int) else None

    def reason(self) -> str:
        """Why this shard is not well, in a few words; empty when it is."""
        if self.run is None:
            return f"shard {self.shard}: no window in the last {SHARD_LOOKBACK_MS // 60_000} min"
        if self.status is Status.FAILED:
            return f"shard {self.shard}: latest window failed {self.age_sec}s ago: {_first_line(self.run.error)}"
        if self.status is Status.STALE:
            return f"shard {self.shard}: no window for {_duration(self.age_sec or 0)}"
        return ""


@dataclass(frozen=True, slots=True)
class ChannelHealth:
    """A channel's evaluation, with the run behind it for the human-readable outputs."""

    channel: Channel
    status: Status
    age_sec: int | None
    run: RunRecord | None
    run_status: Status
    """What the latest run alone says (every shard's latest window, when sharded); ``status`` is
    ``failed`` instead while a blocking check fails."""
    failed_checks: tuple[CheckResult, ...] = ()
    """The checks whose latest result failed, blocking or not (by name)."""
    shards: tuple[ShardHealth, ...] = ()
    """Every shard of the latest run's layout, by index; empty for an unsharded channel."""

    @property
    def detail(self) -> str | None:
        """The shards that are not well, each with why; ``None`` when all are (or unsharded)."""
        reasons = [why for shard in self.shards if (why := shard.reason())]
        return "; ".join(reasons) or None

    @property
    def blocking_failures(self) -> tuple[CheckResult, ...]:
        """The failed checks that make the channel ``failed``."""
        return tuple(r for r in self.failed_checks if r.blocking)

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.status]

    def row(self) -> HealthRow:
        return HealthRow(
            source=self.channel.source,
            channel=self.channel.name,
            status=self.status.value,
            expected_cadence_sec=self.channel.expected_cadence_sec,
            stale_after_sec=self.channel.stale_after_sec,
            age_sec=self.age_sec,
            rows_written=self._rows_written(),
            detail=self.detail,
        )

    def _rows_written(self) -> int | None:
        """The latest run's rows; sharded, the sum of every shard's latest window."""
        if self.shards:
            return sum(shard.run.rows_written for shard in self.shards if shard.run is not None)
        return None if self.run is None else self.run.rows_written


@dataclass(frozen=True, slots=True)
class HealthReport:
    channels: tuple[ChannelHealth, ...]

    @property
    def ok(self) -> bool:
        return not any(c.status in BAD_STATUSES for c in self.channels)

    @property
    def severity(self) -> Severity:
        return max((c.severity for c in self.channels), default=Severity.OK)

    def document(self) -> HealthDocument:
        return HealthDocument(ok=self.ok, rows=[c.row() for c in self.channels])


def evaluate_channel(
    channel: Channel,
    run: RunRecord | None,
    now_ms: int,
    results: Sequence[CheckResult] = (),
    shard_windows: Mapping[Shard, RunRecord] | None = None,
) -> ChannelHealth:
    """The channel judged by its latest run and the latest ``results`` of its checks; when the
    latest run is a shard's, by the latest window of each shard in ``shard_windows``."""
    failed_checks = tuple(r for r in results if not r.passed)
    if run is None:
        return _judged(channel, Status.MISSING, None, None, failed_checks)
    layout = shard_of_run(run)
    if layout is None:
        status, age = _by_run(channel, run, now_ms)
        return _judged(channel, status, age, run, failed_checks)
    windows = shard_windows or {}
    shards = []
    for index in range(1, layout.count + 1):
        shard = Shard(index, layout.count)
        window = windows.get(shard)
        if window is None:
            shards.append(ShardHealth(shard, Status.STALE, None, None))
        else:
            shards.append(ShardHealth(shard, *_by_run(channel, window, now_ms), window))
    # A shard with no window in the lookback is at least that old, and older than the latest run.
    unseen_sec = max(SHARD_LOOKBACK_MS // 1000, _by_run(channel, run, now_ms)[1])
    worst = max(shards, key=lambda s: (SEVERITY[s.status], unseen_sec if s.age_sec is None else s.age_sec))
    age = unseen_sec if worst.age_sec is None else worst.age_sec
    return _judged(channel, worst.status, age, run, failed_checks, tuple(shards))


def shard_of_run(run: RunRecord) -> Shard | None:
    """The shard that recorded ``run``; ``None`` for any other run. The key's text is looked for
    before the metadata is decoded: health reads one run per channel per request."""
    if f'"{SHARD_KEY}"' not in run.metadata_json:
        return None
    return Shard.of_metadata(run.metadata.get(SHARD_KEY))


def _by_run(channel: Channel, run: RunRecord, now_ms: int) -> tuple[Status, int]:
    """What one run says of its channel (or of its shard), and its age."""
    if run.status is RunStatus.RUNNING or run.finished_at_ms is None:
        age = _age_sec(run.started_at_ms, now_ms)
        within = Status.RUNNING
    else:
        age = _age_sec(run.finished_at_ms, now_ms)
        within = Status.OK
    if run.status is RunStatus.FAILED:
        return Status.FAILED, age
    return (within if age <= channel.stale_after_sec else Status.STALE), age


def evaluate_health(
    registry: Sequence[Channel],
    latest_runs: Mapping[tuple[str, str], RunRecord],
    now_ms: int,
    check_results: Sequence[CheckResult] = (),
    shard_windows: Mapping[tuple[str, str], Mapping[Shard, RunRecord]] | None = None,
) -> HealthReport:
    """Every registered channel, in registry order, judged by its latest run (or, sharded, its
    shards' latest windows: :func:`read_shard_windows`) and the latest results of its checks at
    ``now_ms``."""
    windows = shard_windows or {}
    by_channel: dict[tuple[str, str], list[CheckResult]] = {}
    for result in check_results:
        by_channel.setdefault((result.source, result.channel), []).append(result)
    return HealthReport(
        tuple(
            evaluate_channel(
                channel,
                latest_runs.get((channel.source, channel.name)),
                now_ms,
                by_channel.get((channel.source, channel.name), ()),
                windows.get((channel.source, channel.name)),
            )
            for channel in registry
        )
    )


def read_health(
    conn: MemoryConnection, now_ms: int, registry: Sequence[Channel] = REGISTRY
) -> HealthReport:
    """Evaluate the memory behind ``conn`` at ``now_ms``: the latest runs and the failing check
    results, read in one snapshot (a check recorded between two reads can't pair with runs it never
    saw). Only failing results are read (usually none): building every stored result's row cost
    ~67 µs for 17 checks, a whole health read's worth; the failing ones alone ~14 µs."""
    with snapshot(conn):
        latest = runs.latest_runs(conn, ((c.source, c.name) for c in registry))
        failing = failing_results(conn)
        shard_windows = read_shard_windows(conn, latest, now_ms)
    return evaluate_health(registry, latest, now_ms, failing, shard_windows)


def read_shard_windows(
    conn: MemoryConnection, latest: Mapping[tuple[str, str], RunRecord], now_ms: int
) -> dict[tuple[str, str], dict[Shard, RunRecord]]:
    """Every shard's latest window, for each channel whose latest run is a shard's (no read at
    all for the others)."""
    layouts = {key: shard for key, run in latest.items() if (shard := shard_of_run(run)) is not None}
    return {
        key: latest_shard_windows(conn, *key, now_ms - SHARD_LOOKBACK_MS, layout.count)
        for key, layout in layouts.items()
    }


def encode_document(document: HealthDocument) -> bytes:
    """The health document's one JSON encoding, shared by the CLI and the API (byte-identical)."""
    return msgspec.json.encode(document)


def explain(health: ChannelHealth, memory_age_sec: int) -> str:
    """Why a channel is not healthy, in one line for a person; empty for a healthy channel.

    A failing blocking check comes first, named with its summary (the first problem: coin, minute,
    value); what the runs say follows when they are bad too.

    ``missing`` is always a setup/configuration failure: the channel has never recorded a run.
    On a memory younger than the channel's stale threshold that is the expected state of a fresh
    deploy whose scheduler or streamer is not running (yet); past it, the channel has never run.
    """
    reasons = [f"blocking check {r.check_name} {r.summary}" for r in health.blocking_failures]
    if health.shards:
        if detail := health.detail:
            reasons.append(detail)
    elif why := _run_reason(health, memory_age_sec):
        reasons.append(why)
    return "; ".join(reasons)


def _run_reason(health: ChannelHealth, memory_age_sec: int) -> str:
    """What the latest run alone says is wrong; empty when nothing."""
    channel = health.channel
    run = health.run
    if health.run_status is Status.MISSING:
        if memory_age_sec <= channel.stale_after_sec:
            return (
                f"setup/configuration failure: no run yet on this fresh memory "
                f"(created {memory_age_sec}s ago); is {channel.producer.value} running?"
            )
        return (
            f"setup/configuration failure: no run in the {memory_age_sec}s since the memory "
            f"was created; {channel.producer.value} is not running or not configured"
        )
    if health.run_status is Status.FAILED and run is not None:
        return f"latest run failed {health.age_sec}s ago: {_first_line(run.error)}"
    if health.run_status is Status.STALE and run is not None:
        what = "still running since" if run.status is RunStatus.RUNNING else "last run finished"
        return (
            f"{what} {health.age_sec}s ago, over its {channel.stale_after_sec}s stale threshold "
            f"(cadence {channel.expected_cadence_sec}s)"
        )
    return ""


def _judged(
    channel: Channel,
    by_runs: Status,
    age_sec: int | None,
    run: RunRecord | None,
    failed_checks: tuple[CheckResult, ...],
    shards: tuple[ShardHealth, ...] = (),
) -> ChannelHealth:
    status = Status.FAILED if any(r.blocking for r in failed_checks) else by_runs
    return ChannelHealth(channel, status, age_sec, run, by_runs, failed_checks, shards)


def _duration(seconds: int) -> str:
    """``7 min`` (whole minutes from one up), else ``45 s``."""
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"


def _age_sec(since_ms: int, now_ms: int) -> int:
    return max(0, (now_ms - since_ms) // 1000)


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else "no error text recorded"
