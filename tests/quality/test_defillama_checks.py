"""The DefiLlama checks: a stored zero volume, a day lost without a word, a 'total' stablecoin
subject and a chain's TVL tripling turn them red; the real ingest's run over the replay keeps them green."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from market_assets.fixtures import fixture_bytes
from market_assets.ingest import defillama
from market_assets.ingest.defillama import (
    DAY_MS,
    MacroBatch,
    tvl_history_points,
    utc_day,
)
from market_assets.ledger import Ledger
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.defillama import SeriesPoint, upsert_series
from market_assets.memory.runs import BACKFILL_KEY
from market_assets.memory.target import MemoryTarget
from market_assets.quality.catalog import checks_of
from market_assets.quality.defillama import (
    no_zero_volumes_or_fees,
    stablecoin_supply_per_peg,
    tvl_jumps,
)
from market_assets.quality.outcome import CheckOutcome, Severity
from market_assets.registry import DEFILLAMA_MACRO
from market_assets.replay import ReplayServers
from market_assets.settings import Settings
from market_assets.sources.defillama import parse_historical_tvl
from market_assets.sources.http import RequestStats
from tests.conftest import T0_MS, FrozenClock

TODAY = utc_day(T0_MS)
NOON = TODAY + DAY_MS // 2
WINDOW_DAYS = DEFILLAMA_MACRO.quality.window_sec * 1000 // DAY_MS


def problems(outcome: CheckOutcome) -> list[tuple[str, int | None, object]]:
    return [(p.subject, p.at_ms, p.value) for p in outcome.problems]


def point(series: str, subject: str, day: int, value: str) -> SeriesPoint:
    return SeriesPoint(series, subject, day, Decimal(value))


def ingest_run(conn: MemoryConnection, clock: FrozenClock, at_ms: int, batch: MacroBatch, **metadata: Any) -> None:
    """One defillama/macro run at ``at_ms`` storing ``batch`` as the runner does (its details in
    the run's metadata), lasting a minute."""
    clock.now_ms = at_ms
    with Ledger(conn, clock).run(DEFILLAMA_MACRO, metadata=metadata or None) as run:
        rows = defillama.store(conn, batch, at_ms)
        run.metadata.update({"rows": rows, **batch.details()})
        clock.now_ms = at_ms + 60_000


def volume_and_fees(day: int) -> list[SeriesPoint]:
    return [point("dex_volume", "total", day, "2.1e9"), point("fees", "total", day, "5.5e7")]


def test_the_channel_has_its_three_checks_and_tvl_jumps_only_warns() -> None:
    checks = {c.name: c for c in checks_of(DEFILLAMA_MACRO)}
    assert list(checks) == ["no_zero_volumes_or_fees", "stablecoin_supply_per_peg", "tvl_jumps"]
    assert checks["tvl_jumps"].severity is Severity.WARN and not checks["tvl_jumps"].blocking


@pytest.mark.anyio
async def test_a_real_ingest_run_over_the_replay_passes_every_check(
    conn: MemoryConnection, clock: FrozenClock, memory_target: MemoryTarget, replay: ReplayServers
) -> None:
    settings = Settings(db_path=memory_target, endpoints=replay.endpoints)
    batch = await defillama.collect(conn, settings, RequestStats(), NOON)
    assert not batch.unreported and not batch.subject_errors
    ingest_run(conn, clock, NOON, batch)
    counts = batch.counts()
    assert counts["dex_volume"] == counts["fees"] == 1 and counts["stablecoin_supply"] >= 10 and counts["tvl"] > 400
    zero = no_zero_volumes_or_fees(conn, NOON + 3_600_000)
    assert zero.passed and zero.checked == 2  # today's two points; the other days had no run to judge
    assert zero.details["days_without_point_or_run"] == 2 * (WINDOW_DAYS - 1)
    pegs = stablecoin_supply_per_peg(conn, NOON + 3_600_000)
    assert pegs.passed and pegs.checked == counts["stablecoin_supply"]
    assert tvl_jumps(conn, NOON + 3_600_000).passed


def test_a_stored_zero_volume_is_named_by_series_and_day(conn: MemoryConnection) -> None:
    upsert_series(conn, volume_and_fees(TODAY - DAY_MS) + volume_and_fees(TODAY), NOON)
    upsert_series(conn, [point("dex_volume", "total", TODAY - 2 * DAY_MS, "0"), point("fees", "total", TODAY, "-1")], NOON)
    outcome = no_zero_volumes_or_fees(conn, NOON)
    assert problems(outcome) == [("dex_volume/total", TODAY - 2 * DAY_MS, 0.0), ("fees/total", TODAY, -1.0)]


def test_a_day_without_a_point_after_a_run_that_said_nothing_is_named(conn: MemoryConnection, clock: FrozenClock) -> None:
    yesterday = TODAY - DAY_MS
    ingest_run(conn, clock, yesterday + 3_600_000, MacroBatch(volume_and_fees(yesterday)))
    ingest_run(conn, clock, NOON, MacroBatch(volume_and_fees(TODAY)))
    assert no_zero_volumes_or_fees(conn, NOON + 120_000).passed
    conn.execute("DELETE FROM defillama_series WHERE series = 'fees' AND ts_ms = ?", (yesterday,))  # the seeded fault
    outcome = no_zero_volumes_or_fees(conn, NOON + 120_000)
    assert problems(outcome) == [("fees/total", yesterday, None)]
    assert "run 1 of that day succeeded" in outcome.problems[0].what


def test_a_day_the_runs_withheld_or_failed_is_explained(conn: MemoryConnection, clock: FrozenClock) -> None:
    withheld_day, failed_day, errored_day, no_run_day = (TODAY - d * DAY_MS for d in (1, 2, 3, 4))
    # DefiLlama sent 0 for the volume (the ingest withholds it: unreported/dex_volume) and null for fees.
    ingest_run(conn, clock, withheld_day + 3_600_000, MacroBatch([], unreported={"dex_volume": "zero", "fees": "null"}))
    ingest_run(conn, clock, errored_day + 3_600_000, MacroBatch([], subject_errors={"dex_volume": "HTTP 502", "fees": "timeout"}))
    clock.now_ms = failed_day + 3_600_000
    with pytest.raises(RuntimeError), Ledger(conn, clock).run(DEFILLAMA_MACRO):
        raise RuntimeError("disk full")
    # A backfill stores only total TVL: it says nothing about volumes.
    ingest_run(conn, clock, no_run_day + 3_600_000, MacroBatch([]), **{BACKFILL_KEY: "2026-11-14..2026-11-14"})
    outcome = no_zero_volumes_or_fees(conn, NOON)
    assert outcome.passed and outcome.details["runs"] == 3 and outcome.checked == 2 * 3


def test_a_run_across_midnight_judges_neither_day(conn: MemoryConnection, clock: FrozenClock) -> None:
    clock.now_ms = TODAY - 30_000
    with Ledger(conn, clock).run(DEFILLAMA_MACRO):
        clock.now_ms = TODAY + 30_000  # collected after midnight: today's point, none for yesterday
    assert no_zero_volumes_or_fees(conn, NOON).passed


def test_a_stablecoin_subject_summed_across_pegs_is_named(conn: MemoryConnection) -> None:
    upsert_series(conn, [point("stablecoin_supply", "peggedUSD", TODAY, "2.05e11"), point("stablecoin_supply", "peggedEUR", TODAY, "5.1e8")], NOON)
    assert stablecoin_supply_per_peg(conn, NOON).passed
    upsert_series(conn, [point("stablecoin_supply", "total", TODAY - DAY_MS, "2.06e11"), point("stablecoin_supply", "peggedJPY", TODAY, "0")], NOON)
    outcome = stablecoin_supply_per_peg(conn, NOON)
    assert problems(outcome) == [("total", TODAY - DAY_MS, 2.06e11), ("peggedJPY", TODAY, 0.0)]
    assert outcome.checked == 4


def tvl(day: int, **chains: str) -> list[SeriesPoint]:
    return [point("tvl", chain, day, value) for chain, value in chains.items()]


def test_a_chain_tripling_or_falling_to_a_third_is_warned_with_its_factor(conn: MemoryConnection) -> None:
    d = [TODAY - k * DAY_MS for k in range(4, -1, -1)]
    upsert_series(conn, tvl(d[0], Ethereum="6.0e10", Base="3.0e9", Sui="1.2e9"), NOON)
    upsert_series(conn, tvl(d[1], Ethereum="6.1e10", Base="3.1e9", Sui="1.0e9"), NOON)
    upsert_series(conn, tvl(d[2], Ethereum="2.0e11", Base="2.9e9"), NOON)  # Ethereum x3.28; Sui's day missing
    upsert_series(conn, tvl(d[3], Ethereum="6.2e10", Base="3.0e9", Sui="2.9e8"), NOON)  # Sui /3.45 over the gap
    upsert_series(conn, tvl(d[4], Ethereum="6.3e10", Base="8.9e9"), NOON)  # Base x2.97: within the bound
    outcome = tvl_jumps(conn, NOON)
    assert [(s, t, round(float(str(v)), 2)) for s, t, v in problems(outcome)] == [
        ("Ethereum", d[2], 3.28), ("Ethereum", d[3], 3.23), ("Sui", d[3], 3.45),
    ]
    assert "rose from 61,000,000,000" in outcome.problems[0].what and "fell" in outcome.problems[2].what


def test_a_tiny_chain_tripling_under_the_floor_is_not_judged(conn: MemoryConnection) -> None:
    floor = DEFILLAMA_MACRO.quality.floor
    assert floor > 0
    upsert_series(conn, tvl(TODAY - DAY_MS, Tiny=str(floor / 10), Rising=str(floor * 0.3)), NOON)
    upsert_series(conn, tvl(TODAY, Tiny=str(floor * 0.95), Rising=str(floor * 1.2)), NOON)  # x9.5 under it; x4 across it
    outcome = tvl_jumps(conn, NOON)
    assert [(s, t) for s, t, _ in problems(outcome)] == [("Rising", TODAY)]
    assert outcome.checked == 1 and outcome.details["under_floor"] == 1


def test_tvl_from_or_to_zero_is_a_jump_with_no_factor(conn: MemoryConnection) -> None:
    upsert_series(conn, tvl(TODAY - DAY_MS, Gone="5.0e6", Dead="0"), NOON)
    upsert_series(conn, tvl(TODAY, Gone="0", Dead="0"), NOON)
    assert problems(tvl_jumps(conn, NOON)) == [("Gone", TODAY, None)]


def test_a_year_of_recorded_total_tvl_has_no_jump(conn: MemoryConnection) -> None:
    history = parse_historical_tvl(fixture_bytes("defillama/v2_historicalChainTvl_2022-09-10_to_2023-09-09.json"))
    upsert_series(conn, tvl_history_points(history), NOON)
    days = [p.date_ms for p in history]
    checked = 0
    for now in days[WINDOW_DAYS::WINDOW_DAYS]:  # every week of the year, each over its window
        outcome = tvl_jumps(conn, now + 3_600_000)
        assert outcome.passed, outcome.problems
        checked += outcome.checked
    assert checked >= 350
