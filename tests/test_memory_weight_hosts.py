"""The Hyperliquid weight budget is per IP, so per host: with a PostgreSQL memory that several hosts
share, each host keeps its own budget ledger in its own folder, and the processes of one host
share that one."""

from __future__ import annotations

from pathlib import Path

import pytest

from market_assets.memory import connect
from market_assets.memory.target import PostgresUrl
from market_assets.memory.weight import (
    POSTGRES_LEDGER_NAME,
    private_weight_ledger,
    weight_ledger_path,
)
from market_assets.sources.ratelimit import (
    HYPERLIQUID_WEIGHT_PER_MINUTE,
    SharedWeightLimiter,
    shared_budget,
)
from market_assets.sources.timing import VirtualClock

from .conftest import T0_MS

pytestmark = pytest.mark.anyio
CALL_WEIGHT = 20
"""An info request's base weight: 60 of them fill a minute's 1,200."""


async def spend(limiter: SharedWeightLimiter, clock: VirtualClock, calls: int) -> int:
    """Make ``calls`` requests of the base weight; how many ms of simulated time they waited."""
    started = clock.now_ms()
    for _ in range(calls):
        async with limiter.reserve("metaAndAssetCtxs"):
            pass
    return clock.now_ms() - started


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


async def test_two_hosts_on_one_postgres_memory_each_get_a_full_budget_and_one_host_s_processes_share_one(
    postgres_url: PostgresUrl, tmp_path: Path
) -> None:
    connect(postgres_url).close()
    clock = VirtualClock(T0_MS)
    host_a, host_b = tmp_path / "host-a", tmp_path / "host-b"
    a_streamer, a_dagster = shared_budget(postgres_url, clock, host_a), shared_budget(postgres_url, clock, host_a)
    b_streamer = shared_budget(postgres_url, clock, host_b)
    full = HYPERLIQUID_WEIGHT_PER_MINUTE // CALL_WEIGHT

    assert await spend(a_streamer, clock, full) == 0  # host A's whole minute
    assert await spend(b_streamer, clock, full) == 0  # host B has its own: no wait at all
    assert (a_streamer.used(), b_streamer.used()) == (HYPERLIQUID_WEIGHT_PER_MINUTE, HYPERLIQUID_WEIGHT_PER_MINUTE)
    # Another process of host A finds its host's minute spent, and waits for the oldest charge.
    waited_ms = await spend(a_dagster, clock, 1)
    assert waited_ms > 59_000 and a_dagster.waits == 1
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.weight")) == [
        f"host-a/{POSTGRES_LEDGER_NAME}", f"host-b/{POSTGRES_LEDGER_NAME}"]


def test_a_sqlite_memory_keeps_its_budget_beside_it_wherever_the_host_folder_is(tmp_path: Path) -> None:
    memory = tmp_path / "data" / "market.db"
    assert weight_ledger_path(memory, tmp_path / "home") == tmp_path / "data" / "market.db.weight"
    assert weight_ledger_path(PostgresUrl("postgresql://u@h/market"), tmp_path / "home") == tmp_path / "home" / POSTGRES_LEDGER_NAME


async def test_a_dry_run_beside_a_postgres_memory_spends_nothing_of_its_host_s_budget(tmp_path: Path) -> None:
    memory = PostgresUrl("postgresql://market@db.internal/market")  # the budget never reads the memory
    clock = VirtualClock(T0_MS)
    host = tmp_path / "host"
    await spend(shared_budget(memory, clock, host), clock, 10)
    before = files(host)
    with private_weight_ledger(memory, host):
        dry = shared_budget(memory, clock, host)
        await spend(dry, clock, 5)
        assert dry.used() == 15 * CALL_WEIGHT  # the host's charges are seen, its own added privately
    assert shared_budget(memory, clock, host).used() == 10 * CALL_WEIGHT
    assert files(host) == before
