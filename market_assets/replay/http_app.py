"""The replay HTTP server as a plain ASGI app (run by uvicorn): every source host under its own
path prefix, answering like the real API, plus a small control API for fault injection.

    POST /hyperliquid/info               by body ``type``: meta, metaAndAssetCtxs, candleSnapshot, fundingHistory
    GET  /gamma/markets | /gamma/events  limit/offset paging, closed/active/archived filters
    GET  /gamma/public-search            ``q`` required, ``page`` + ``pagination.hasMore``
    GET  /llama/v2/chains | /llama/v2/historicalChainTvl[/{chain}] | /llama/overview/{dexs,fees}
    GET  /stablecoins/stablecoins
    POST /_replay/faults   DELETE /_replay/faults   GET /_replay/requests   GET /_replay/clock
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import msgspec

from market_assets.replay.catalog import Catalog, synthetic_dimension_overview
from market_assets.replay.faults import DEFAULT_ERROR_BODIES, FaultPlan, HttpFault, HttpFaultKind
from market_assets.sources.ratelimit import (
    HYPERLIQUID_WEIGHT_PER_MINUTE,
    MAX_ROWS_PER_TIME_RANGE_PAGE,
    WINDOW_MS,
    info_weight,
)
from market_assets.sources.timing import AsyncClock

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

JSON = [(b"content-type", b"application/json")]


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it, for tests to assert on."""

    at_ms: int
    method: str
    path: str
    query: dict[str, str]
    info_type: str | None
    status: int
    weight: int = 0
    """Hyperliquid weight charged (0 for other hosts and for refused requests)."""
    body: str = ""


@dataclass
class _Answer:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=lambda: list(JSON))
    weight: int = 0


class _ControlFault(msgspec.Struct, kw_only=True):
    """``POST /_replay/faults`` body: one HTTP fault, or a WebSocket action."""

    kind: str
    path: str = ""
    info_type: str | None = None
    status: int = 503
    retry_after: str | None = None
    body: str | None = None
    delay_s: float = 0.0
    times: int | None = 1
    coin: str | None = None
    every_s: float | None = None
    frame: str | None = None


class ReplayHttpApp:
    def __init__(
        self,
        catalog: Catalog,
        plan: FaultPlan,
        clock: AsyncClock,
        *,
        enforce_weight: bool = True,
    ) -> None:
        self.catalog = catalog
        self.plan = plan
        self.clock = clock
        self.enforce_weight = enforce_weight
        self.requests: list[RequestRecord] = []
        self.max_in_flight: dict[str, int] = {}
        """Most requests seen at once per host prefix (``gamma``, ``llama`` …): bounded concurrency."""
        self._in_flight: dict[str, int] = {}
        self._hl_window: deque[tuple[int, int]] = deque()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path: str = scope["path"]
        # A repeated key (Gamma's ``id=1&id=2``) is kept as a comma-joined list.
        query = {k: ",".join(v) for k, v in parse_qs(scope["query_string"].decode(), keep_blank_values=True).items()}
        method: str = scope["method"]
        info_type = _info_type(body) if path == "/hyperliquid/info" else None
        now_ms = self.clock.now_ms()

        host = path.strip("/").split("/", 1)[0]
        self._in_flight[host] = self._in_flight.get(host, 0) + 1
        self.max_in_flight[host] = max(self.max_in_flight.get(host, 0), self._in_flight[host])
        try:
            await self._respond(method, path, query, body, info_type, now_ms, send)
        finally:
            self._in_flight[host] -= 1

    async def _respond(
        self, method: str, path: str, query: dict[str, str], body: bytes, info_type: str | None, now_ms: int, send: Send
    ) -> None:
        coin = _info_coin(body) if info_type is not None else None
        fault = None if path.startswith("/_replay") else self.plan.take_http(path, info_type, coin, query)
        if fault is not None and fault.kind is HttpFaultKind.SLOW:
            await asyncio.sleep(fault.delay_s)
            fault = None
        if fault is not None and fault.kind is HttpFaultKind.STATUS:
            headers = list(JSON)
            if fault.retry_after is not None:
                headers.append((b"retry-after", fault.retry_after.encode()))
            error_body = fault.body if fault.body is not None else _error_body(path, fault.status)
            answer = _Answer(fault.status, error_body, headers)
        else:
            answer = self._route(method, path, query, body, now_ms)
            if fault is not None and fault.kind is HttpFaultKind.MALFORMED:
                answer = _Answer(200, answer.body[: max(1, len(answer.body) // 2)] + b"<!-- cut -->")
        self.requests.append(
            RequestRecord(now_ms, method, path, query, info_type, answer.status, answer.weight, body.decode("utf-8", "replace"))
        )

        truncate = fault is not None and fault.kind is HttpFaultKind.TRUNCATE
        headers = [*answer.headers, (b"content-length", str(len(answer.body)).encode())]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body[: len(answer.body) // 2] if truncate else answer.body})

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes, now_ms: int) -> _Answer:
        try:
            if path == "/hyperliquid/info" and method == "POST":
                return self._hyperliquid(body, now_ms)
            if path.startswith("/gamma/") and method == "GET":
                return self._gamma(path.removeprefix("/gamma"), query)
            if path.startswith("/llama/") and method == "GET":
                return self._llama(path.removeprefix("/llama"), query)
            if path == "/stablecoins/stablecoins" and method == "GET":
                return _Answer(200, self.catalog.stablecoins)
            if path.startswith("/_replay/"):
                return self._control(method, path, body)
        except (KeyError, ValueError, TypeError, msgspec.MsgspecError) as exc:
            return _Answer(422, f"Failed to deserialize the JSON body into the target type: {exc}".encode(), [])
        return _Answer(404, b'{"error":"not found"}')

    # Hyperliquid ---------------------------------------------------------------------------

    def _hyperliquid(self, body: bytes, now_ms: int) -> _Answer:
        request = json.loads(body)
        request_type = request["type"]
        items: list[Any] | None = None
        if request_type == "metaAndAssetCtxs" or request_type == "meta":
            if request.get("dex"):
                # Only the main dex was recorded (the HIP-3 recording is not in the shared set):
                # refuse at once with a 4xx the client does not retry, and say why.
                message = f"replay: no recording of HIP-3 dex {request['dex']!r}; only the main perp dex is served"
                return _Answer(422, message.encode(), [])
            document = self.catalog.meta_and_ctxs if request_type == "metaAndAssetCtxs" else self.catalog.meta
            return self._charge(_Answer(200, document), request_type, 0, now_ms)
        if request_type == "candleSnapshot":
            req = request["req"]
            items = self.catalog.candles(
                req["coin"], req["interval"], int(req["startTime"]), int(req["endTime"]), now_ms
            )
        elif request_type == "fundingHistory":
            end_ms = int(request.get("endTime") or now_ms)
            items = self.catalog.funding(
                request["coin"], int(request["startTime"]), min(end_ms, now_ms), MAX_ROWS_PER_TIME_RANGE_PAGE
            )
        else:
            return _Answer(422, b"Failed to deserialize the JSON body into the target type", [])
        return self._charge(_Answer(200, _dumps(items)), request_type, len(items), now_ms)

    def _charge(self, answer: _Answer, request_type: str, items: int, now_ms: int) -> _Answer:
        """Refuse with 429 what would take the rolling minute past 1,200 weight, like the real API."""
        weight = info_weight(request_type, items)
        horizon = now_ms - WINDOW_MS
        while self._hl_window and self._hl_window[0][0] <= horizon:
            self._hl_window.popleft()
        used = sum(w for _, w in self._hl_window)
        if self.enforce_weight and used + weight > HYPERLIQUID_WEIGHT_PER_MINUTE:
            return _Answer(429, b"null")
        self._hl_window.append((now_ms, weight))
        answer.weight = weight
        return answer

    # Polymarket Gamma ----------------------------------------------------------------------

    def _gamma(self, path: str, query: dict[str, str]) -> _Answer:
        if path == "/markets":
            # By id, every market the recordings hold is addressable, those embedded in the
            # recorded events and search results included; the plain listing is /markets' own.
            markets = self.catalog.all_gamma_markets if "id" in query else self.catalog.gamma_markets
            return _Answer(200, _dumps(_page(_filtered(markets, query), query)))
        if path == "/events":
            return _Answer(200, _dumps(_page(_filtered(self.catalog.gamma_events, query), query)))
        if path == "/public-search":
            if not query.get("q"):
                return _Answer(422, b'{"type":"validation error","error":"q is required"}')
            if int(query.get("page", "1")) <= 1:
                return _Answer(200, _dumps(self.catalog.gamma_search))
            # Past the recorded first page: an empty last page (synthetic).
            total = self.catalog.gamma_search.get("pagination", {}).get("totalResults")
            return _Answer(200, _dumps({"events": [], "pagination": {"hasMore": False, "totalResults": total}}))
        return _Answer(404, b'{"type":"not found","error":"not found"}')

    # DefiLlama ----------------------------------------------------------------------------

    def _llama(self, path: str, query: dict[str, str]) -> _Answer:
        if path == "/v2/chains":
            return _Answer(200, self.catalog.llama_chains)
        if path == "/v2/historicalChainTvl":
            return _Answer(200, self.catalog.llama_historical_tvl)
        if path.startswith("/v2/historicalChainTvl/"):
            history = self.catalog.chain_history(unquote(path.removeprefix("/v2/historicalChainTvl/")))
            return _Answer(200, _dumps(history)) if history is not None else _Answer(400, b'{"message":"Invalid chain"}')
        if path in ("/overview/dexs", "/overview/fees"):
            with_chart = not (
                query.get("excludeTotalDataChart") == "true" and query.get("excludeTotalDataChartBreakdown") == "true"
            )
            kind = path.removeprefix("/overview/")
            return _Answer(200, _dumps(synthetic_dimension_overview(kind, query.get("dataType"), with_chart)))
        return _Answer(404, b'{"message":"not found"}')

    # Control -------------------------------------------------------------------------------

    def _control(self, method: str, path: str, body: bytes) -> _Answer:
        if path == "/_replay/faults" and method == "DELETE":
            self.plan.clear()
            return _Answer(200, b'{"cleared":true}')
        if path == "/_replay/faults" and method == "POST":
            self._apply(msgspec.json.decode(body, type=_ControlFault))
            return _Answer(200, b'{"ok":true}')
        if path == "/_replay/requests" and method == "GET":
            return _Answer(200, _dumps([asdict(r) for r in self.requests]))
        if path == "/_replay/clock" and method == "GET":
            return _Answer(200, _dumps({"now_ms": self.clock.now_ms()}))
        return _Answer(404, b'{"error":"unknown control path"}')

    def _apply(self, control: _ControlFault) -> None:
        if control.kind in {kind.value for kind in HttpFaultKind}:
            self.plan.add_http(
                HttpFault(
                    kind=HttpFaultKind(control.kind),
                    path=control.path,
                    info_type=control.info_type,
                    coin=control.coin,
                    status=control.status,
                    retry_after=control.retry_after,
                    body=control.body.encode() if control.body is not None else None,
                    delay_s=control.delay_s,
                    times=control.times,
                )
            )
        elif control.kind == "ws_drop":
            if control.every_s is not None:
                self.plan.drop_every_s = control.every_s
            else:
                self.plan.drop_connections()
        elif control.kind == "ws_silence" and control.coin:
            self.plan.silenced_coins.add(control.coin)
        elif control.kind == "ws_unsilence" and control.coin:
            self.plan.silenced_coins.discard(control.coin)
        elif control.kind == "ws_inject" and control.frame is not None:
            self.plan.inject(control.frame)
        else:
            raise ValueError(f"unknown fault kind {control.kind!r}")


def _info_coin(body: bytes) -> str | None:
    """The coin a Hyperliquid info request is about (top-level ``coin`` or ``req.coin``), if any."""
    request = json.loads(body)
    inner = request.get("req")
    coin = request.get("coin", inner.get("coin") if isinstance(inner, dict) else None)
    return coin if isinstance(coin, str) else None


def _info_type(body: bytes) -> str | None:
    try:
        request = json.loads(body)
    except ValueError:
        return None
    kind = request.get("type") if isinstance(request, dict) else None
    return kind if isinstance(kind, str) else None


def _error_body(path: str, status: int) -> bytes:
    if status == 429:
        return b"null"
    host = path.strip("/").split("/", 1)[0]
    return DEFAULT_ERROR_BODIES.get(host, b'{"error":"internal error"}')


def _filtered(items: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    out = items
    for flag in ("closed", "active", "archived"):
        if flag in query:
            wanted = query[flag] == "true"
            out = [item for item in out if bool(item.get(flag)) == wanted]
    if "id" in query:
        ids = set(query["id"].split(","))
        out = [item for item in out if str(item.get("id")) in ids]
    if "slug" in query:
        out = [item for item in out if item.get("slug") == query["slug"]]
    if "condition_ids" in query:
        wanted_ids = set(query["condition_ids"].split(","))
        out = [item for item in out if item.get("conditionId") in wanted_ids]
    return out


def _page(items: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    """limit/offset like Gamma; with no ``limit`` everything (the real default is not recorded)."""
    offset = int(query.get("offset", "0"))
    limit = int(query["limit"]) if "limit" in query else len(items)
    return items[offset : offset + limit]


def _dumps(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()
