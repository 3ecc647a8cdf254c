"""One retry policy per host, against the replay server's injected faults.

Replay time runs 1,000x faster than real time, so every wait the policy takes is real in
replay time (the server logs when each attempt arrived) and costs milliseconds of test time.
"""

from __future__ import annotations

import asyncio
import email.utils
from dataclasses import replace

import pytest

from market_assets.replay import HttpFault, HttpFaultKind, ReplayServers
from market_assets.sources.defillama import API_POLICY, DefiLlamaClient
from market_assets.sources.errors import PayloadError, SourceUnavailable
from market_assets.sources.hyperliquid import POLICY as HL_POLICY
from market_assets.sources.hyperliquid import HyperliquidClient
from market_assets.sources.polymarket import POLICY as GAMMA_POLICY
from market_assets.sources.polymarket import GammaClient

pytestmark = pytest.mark.anyio


def _arrivals(replay: ReplayServers, path: str) -> list[int]:
    return [r.at_ms for r in replay.http.requests if r.path == path]


async def test_429_with_retry_after_is_waited_out_and_counted(replay: ReplayServers) -> None:
    replay.plan.add_http(
        HttpFault(HttpFaultKind.STATUS, path="/gamma/markets", status=429, retry_after="30", times=2)
    )
    async with GammaClient(replay.endpoints.gamma_api, clock=replay.clock) as gamma:
        markets = await gamma.markets()
    assert len(markets) == 100
    first, second, third = _arrivals(replay, "/gamma/markets")[:3]
    assert second - first >= 30_000 and third - second >= 30_000
    assert (gamma.stats.rate_limited, gamma.stats.retries, gamma.stats.throttles) == (2, 2, 2)


async def test_5xx_is_retried_then_fails_with_the_sources_error_text(replay: ReplayServers) -> None:
    replay.plan.add_http(HttpFault(HttpFaultKind.STATUS, path="/gamma/events", status=502, times=None))
    async with GammaClient(replay.endpoints.gamma_api, clock=replay.clock) as gamma:
        with pytest.raises(SourceUnavailable) as caught:
            await gamma.events()
    failure = caught.value
    assert failure.status == 502 and failure.attempts == GAMMA_POLICY.attempts
    assert "internal error: cannot get the information" in str(failure)
    assert failure.source == "polymarket" and failure.endpoint == "/events"
    assert len(_arrivals(replay, "/gamma/events")) == GAMMA_POLICY.attempts
    assert gamma.stats.retries == GAMMA_POLICY.attempts - 1 and gamma.stats.throttles == 0


async def test_a_transient_5xx_costs_one_retry_and_loses_nothing(replay: ReplayServers) -> None:
    replay.plan.add_http(HttpFault(HttpFaultKind.STATUS, path="/llama/v2/chains", status=503, times=1))
    async with DefiLlamaClient(replay.endpoints.llama_api, replay.endpoints.stablecoins_api, clock=replay.clock) as llama:
        chains = await llama.chains()
    assert len(chains) == 450 and llama.stats.retries == 1 and llama.stats.requests == 2


async def test_other_4xx_fail_at_once_without_retrying(replay: ReplayServers) -> None:
    async with GammaClient(replay.endpoints.gamma_api, clock=replay.clock) as gamma:
        with pytest.raises(SourceUnavailable) as caught:
            await gamma.search("")
    assert caught.value.status == 422 and "q is required" in caught.value.message
    assert gamma.stats.requests == 1 and gamma.stats.retries == 0


async def test_a_retry_after_beyond_the_policy_cap_ends_the_call(replay: ReplayServers) -> None:
    replay.plan.add_http(HttpFault(HttpFaultKind.STATUS, path="/gamma/markets", status=429, retry_after="3600"))
    async with GammaClient(replay.endpoints.gamma_api, clock=replay.clock) as gamma:
        with pytest.raises(SourceUnavailable) as caught:
            await gamma.markets()
    assert caught.value.status == 429 and caught.value.attempts == 1
    assert gamma.stats.rate_limited == 1 and gamma.stats.retries == 0


async def test_a_slow_gamma_answer_times_out_and_counts_as_throttling(replay: ReplayServers) -> None:
    replay.plan.add_http(HttpFault(HttpFaultKind.SLOW, path="/gamma/markets", delay_s=0.5))
    policy = replace(GAMMA_POLICY, timeout_s=0.1)
    async with GammaClient(replay.endpoints.gamma_api, clock=replay.clock, policy=policy) as gamma:
        markets = await gamma.markets()
    assert len(markets) == 100
    assert (gamma.stats.timeouts, gamma.stats.slow_throttles, gamma.stats.retries) == (1, 1, 1)


async def test_a_hyperliquid_timeout_is_retried_but_is_no_throttle(replay: ReplayServers) -> None:
    replay.plan.add_http(HttpFault(HttpFaultKind.SLOW, path="/hyperliquid/info", delay_s=0.5, times=None))
    policy = replace(HL_POLICY, timeout_s=0.05, attempts=2)
    async with HyperliquidClient(replay.endpoints.hyperliquid_api, clock=replay.clock, policy=policy) as hl:
        with pytest.raises(SourceUnavailable) as caught:
            await hl.meta_and_asset_ctxs()
    assert caught.value.status is None and "timed out" in str(caught.value)
    assert (hl.stats.timeouts, hl.stats.throttles, hl.stats.retries) == (2, 0, 1)


async def test_a_truncated_body_is_a_broken_connection_and_is_retried(replay: ReplayServers) -> None:
    replay.plan.add_http(HttpFault(HttpFaultKind.TRUNCATE, path="/stablecoins/stablecoins"))
    async with DefiLlamaClient(replay.endpoints.llama_api, replay.endpoints.stablecoins_api, clock=replay.clock) as llama:
        report = await llama.stablecoins()
    assert len(report.assets) == 206 and llama.stats.retries == 1


async def test_a_malformed_body_is_a_payload_error_and_is_not_retried(replay: ReplayServers) -> None:
    replay.plan.add_http(HttpFault(HttpFaultKind.MALFORMED, path="/hyperliquid/info", info_type="metaAndAssetCtxs"))
    async with HyperliquidClient(replay.endpoints.hyperliquid_api, clock=replay.clock) as hl:
        with pytest.raises(PayloadError) as caught:
            await hl.meta_and_asset_ctxs()
    assert caught.value.source == "hyperliquid" and caught.value.endpoint == "metaAndAssetCtxs"
    assert caught.value.field == "$" and hl.stats.requests == 1 and hl.stats.retries == 0


async def test_backoff_between_5xx_retries_grows(replay: ReplayServers) -> None:
    replay.plan.add_http(HttpFault(HttpFaultKind.STATUS, path="/llama/v2/chains", status=500, times=3))
    async with DefiLlamaClient(replay.endpoints.llama_api, replay.endpoints.stablecoins_api, clock=replay.clock) as llama:
        await llama.chains()
    arrivals = _arrivals(replay, "/llama/v2/chains")
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
    # DefiLlama's policy: 1 s, 2 s, 4 s (+ up to 0.5 s jitter each).
    assert len(gaps) == 3 and gaps[0] >= 1000 and gaps[1] >= 2000 and gaps[2] >= 4000
    assert llama.stats.retries == 3


async def test_requests_to_one_host_are_bounded_in_flight(replay: ReplayServers) -> None:
    replay.plan.add_http(HttpFault(HttpFaultKind.SLOW, path="/llama/", delay_s=0.05, times=None))
    async with DefiLlamaClient(replay.endpoints.llama_api, replay.endpoints.stablecoins_api, clock=replay.clock) as llama:
        results = await asyncio.gather(*(llama.historical_chain_tvl() for _ in range(8)))
    assert all(len(points) == 365 for points in results)
    assert replay.http.max_in_flight["llama"] == API_POLICY.max_concurrency == 2


async def test_retry_after_as_an_http_date_is_honoured_on_the_clients_clock(replay: ReplayServers) -> None:
    not_before_s = replay.clock.now_ms() // 1000 + 120
    when = email.utils.formatdate(not_before_s, usegmt=True)
    replay.plan.add_http(HttpFault(HttpFaultKind.STATUS, path="/gamma/events", status=429, retry_after=when))
    async with GammaClient(replay.endpoints.gamma_api, clock=replay.clock) as gamma:
        await gamma.events()
    first, second = _arrivals(replay, "/gamma/events")
    assert first < not_before_s * 1000 <= second and gamma.stats.rate_limited == 1
