"""One HTTP client per source host: timeouts, bounded concurrency, one retry policy, counters.

Retries use tenacity: jittered exponential backoff on 429, 5xx, timeouts and broken
connections, never shorter than a ``Retry-After`` the server sent. Any other 4xx fails at once.
A body that arrives but does not parse is a :class:`PayloadError` and is not retried: asking
again for the same broken document only spends budget.

Every attempt, retry and throttle lands in the caller's :class:`RequestStats`, which the
caller copies onto its ledger run. Clients never write to the market memory themselves.
"""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import msgspec
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_exponential_jitter

from market_assets.sources.errors import PayloadError, SourceUnavailable
from market_assets.sources.ratelimit import WeightBudget
from market_assets.sources.timing import AsyncClock, SystemClock

T = TypeVar("T")
Params = Mapping[str, str | int] | Sequence[tuple[str, str | int]]
"""Query parameters; a sequence of pairs repeats a key (``id=1&id=2``)."""

USER_AGENT = "market-memory/0.1 (httpx)"
"""DefiLlama's Cloudflare has answered 403 to clients without a normal User-Agent (defillama-app#1512)."""


@dataclass(frozen=True)
class HostPolicy:
    """How politely one host is called. One instance per host, defined beside its client."""

    source: str
    timeout_s: float = 10.0
    """Per attempt, in real seconds (sockets do not run on an injected clock; waits do)."""
    attempts: int = 5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    jitter_s: float = 0.5
    max_retry_after_s: float = 300.0
    """A ``Retry-After`` longer than this ends the call instead of parking it."""
    max_concurrency: int = 8
    slow_is_throttle: bool = False
    """Polymarket's Cloudflare queues over-limit requests instead of rejecting them
    (docs.polymarket.com rate limits), so there a timeout is throttling, not an outage."""


@dataclass
class RequestStats:
    """What one client went through; hand ``retries`` and ``throttles`` to the ledger run."""

    requests: int = 0
    """Attempts sent, retries included."""
    retries: int = 0
    rate_limited: int = 0
    """HTTP 429 answers."""
    timeouts: int = 0
    budget_waits: int = 0
    """Requests our own rate limiter held back to stay inside the host's budget."""
    slow_throttles: int = 0
    """Timeouts on a host whose throttling shows up as slowness."""

    @property
    def throttles(self) -> int:
        """Every time the host slowed us down: a 429, or its queueing where that is how it throttles.

        Our own limiter's pacing (``budget_waits``) is not counted: a REST backfill spread over
        minutes to stay inside the budget is the limiter working, and counting it raised the
        dashboard's ``throttled`` warning ("HTTP 429") after every streamer reconnect.
        """
        return self.rate_limited + self.slow_throttles


@dataclass(frozen=True)
class Weight:
    """How a request is charged against a :class:`WeightLimiter`."""

    request_type: str
    max_items: int
    count: Callable[[Any], int]
    """Items in the parsed answer, for the per-item extra weight."""


class _Retryable(Exception):
    """An answer worth asking again for (429 or 5xx)."""

    def __init__(self, status: int, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s


class _WaitHonouringRetryAfter(wait_base):
    def __init__(self, policy: HostPolicy) -> None:
        self._backoff = wait_exponential_jitter(
            multiplier=policy.backoff_initial_s, max=policy.backoff_max_s, jitter=policy.jitter_s
        )

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = self._backoff(retry_state)
        failure = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(failure, _Retryable) and failure.retry_after_s is not None:
            return max(backoff, failure.retry_after_s)
        return backoff


class _StopOnLongRetryAfter(stop_base):
    def __init__(self, limit_s: float) -> None:
        self._limit_s = limit_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        failure = retry_state.outcome.exception() if retry_state.outcome else None
        return isinstance(failure, _Retryable) and (failure.retry_after_s or 0) > self._limit_s


class HostClient:
    """Async JSON requests to one base URL under one :class:`HostPolicy`."""

    def __init__(
        self,
        base_url: str,
        policy: HostPolicy,
        *,
        clock: AsyncClock | None = None,
        limiter: WeightBudget | None = None,
        stats: RequestStats | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self.clock = clock or SystemClock()
        self.limiter = limiter
        self.stats = stats if stats is not None else RequestStats()
        self._slots = asyncio.Semaphore(policy.max_concurrency)
        self._http = httpx.AsyncClient(
            timeout=policy.timeout_s,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get(
        self,
        path: str,
        *,
        endpoint: str,
        parse: Callable[[bytes], T],
        params: Params | None = None,
    ) -> T:
        return await self._call("GET", path, endpoint=endpoint, parse=parse, params=params)

    async def post(
        self,
        path: str,
        *,
        endpoint: str,
        parse: Callable[[bytes], T],
        body: Any,
        weight: Weight | None = None,
    ) -> T:
        return await self._call("POST", path, endpoint=endpoint, parse=parse, body=body, weight=weight)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        parse: Callable[[bytes], T],
        params: Params | None = None,
        body: Any = None,
        weight: Weight | None = None,
    ) -> T:
        policy = self.policy
        retrying = AsyncRetrying(
            sleep=self.clock.sleep,
            stop=stop_after_attempt(policy.attempts) | _StopOnLongRetryAfter(policy.max_retry_after_s),
            wait=_WaitHonouringRetryAfter(policy),
            retry=retry_if_exception_type((_Retryable, httpx.TimeoutException, httpx.TransportError)),
            before_sleep=self._count_retry,
            reraise=True,
        )
        content = None if body is None else msgspec.json.encode(body)
        try:
            return await retrying(self._attempt, method, path, endpoint, parse, params, content, weight)
        except _Retryable as exc:
            raise SourceUnavailable(
                policy.source, endpoint, exc.status, exc.message, retrying.statistics["attempt_number"]
            ) from exc
        except httpx.TimeoutException as exc:
            raise SourceUnavailable(
                policy.source,
                endpoint,
                None,
                f"timed out after {policy.timeout_s:g} s ({type(exc).__name__})",
                retrying.statistics["attempt_number"],
            ) from exc
        except httpx.TransportError as exc:
            raise SourceUnavailable(
                policy.source,
                endpoint,
                None,
                f"{type(exc).__name__}: {exc}",
                retrying.statistics["attempt_number"],
            ) from exc

    async def _attempt(
        self,
        method: str,
        path: str,
        endpoint: str,
        parse: Callable[[bytes], T],
        params: Params | None,
        content: bytes | None,
        weight: Weight | None,
    ) -> T:
        if weight is None or self.limiter is None:
            async with self._slots:
                return await self._send(method, path, endpoint, parse, params, content)
        async with self.limiter.reserve(weight.request_type, weight.max_items) as reservation:
            if reservation.waited:
                self.stats.budget_waits += 1
            async with self._slots:
                try:
                    parsed = await self._send(method, path, endpoint, parse, params, content)
                except PayloadError:
                    # Answered but unparseable: the server charged what it sent, keep the reservation.
                    reservation.settle(weight.max_items)
                    raise
            reservation.settle(weight.count(parsed))
            return parsed

    async def _send(
        self,
        method: str,
        path: str,
        endpoint: str,
        parse: Callable[[bytes], T],
        params: Params | None,
        content: bytes | None,
    ) -> T:
        self.stats.requests += 1
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            response = await self._http.request(
                method, self.base_url + path, params=params, content=content, headers=headers
            )
        except httpx.TimeoutException:
            self.stats.timeouts += 1
            if self.policy.slow_is_throttle:
                self.stats.slow_throttles += 1
            raise
        status = response.status_code
        if status == 429:
            self.stats.rate_limited += 1
        if status == 429 or status >= 500:
            raise _Retryable(status, error_message(response.content), self._retry_after_s(response))
        if status >= 400:
            raise SourceUnavailable(self.policy.source, endpoint, status, error_message(response.content), 1)
        return parse(response.content)

    def _retry_after_s(self, response: httpx.Response) -> float | None:
        """``Retry-After`` as seconds from now: delta-seconds, or an HTTP date on our clock."""
        value = response.headers.get("Retry-After")
        if value is None:
            return None
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - self.clock.now_ms() / 1000)

    def _count_retry(self, retry_state: RetryCallState) -> None:
        self.stats.retries += 1


def error_message(body: bytes) -> str:
    """The error text a source put in its body, e.g. Gamma's ``{"type": ..., "error": ...}``."""
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError:
        document = None
    if isinstance(document, dict):
        parts = [str(document[key]) for key in ("type", "error", "msg", "message", "detail") if key in document]
        if parts:
            return ": ".join(parts)
    text = body.decode("utf-8", errors="replace").strip()
    return text[:300] if text else "(empty body)"
