"""Faults the replay servers inject on demand, from a test or the control API.

One :class:`FaultPlan` is shared by the HTTP and the WebSocket server of a replay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class HttpFaultKind(StrEnum):
    STATUS = "status"
    """Answer ``status`` (429 with ``retry_after``, or a 5xx) with ``body``."""
    SLOW = "slow"
    """Wait ``delay_s`` real seconds, then answer normally: long enough and the client times out."""
    TRUNCATE = "truncate"
    """Promise the full body in ``Content-Length``, send half, close: a broken connection."""
    MALFORMED = "malformed"
    """Answer 200 with a body that is not JSON."""


DEFAULT_ERROR_BODIES = {
    "gamma": b'{"type":"internal error","error":"cannot get the information"}',
    "hyperliquid": b'{"error":"internal server error"}',
    "llama": b'{"message":"Internal server error"}',
    "stablecoins": b'{"message":"Internal server error"}',
}
"""5xx bodies in each source's JSON shape; Gamma's is recorded (wasabipesto/themis#21), the
others follow the JSON error bodies the official SDKs parse."""


@dataclass
class HttpFault:
    kind: HttpFaultKind
    path: str = ""
    """Prefix of the request path this applies to (``/gamma/markets``); empty matches all."""
    info_type: str | None = None
    """For Hyperliquid ``POST /info``: only requests of this ``type``."""
    coin: str | None = None
    """For Hyperliquid ``POST /info``: only requests about this coin (``fundingHistory``'s
    ``coin``, ``candleSnapshot``'s ``req.coin``): one subject of a run failing, the rest answered."""
    query: dict[str, str] | None = None
    """Only requests carrying these query parameters (Gamma's ``public-search`` ``q``: one term)."""
    status: int = 503
    retry_after: str | None = None
    body: bytes | None = None
    delay_s: float = 0.0
    times: int | None = 1
    """How many matching requests it hits; ``None``: until cleared."""

    def matches(
        self, path: str, info_type: str | None, coin: str | None = None, query: dict[str, str] | None = None
    ) -> bool:
        return (
            path.startswith(self.path)
            and (self.info_type is None or self.info_type == info_type)
            and (self.coin is None or self.coin == coin)
            and (self.query is None or all((query or {}).get(k) == v for k, v in self.query.items()))
        )


@dataclass
class FaultPlan:
    http: list[HttpFault] = field(default_factory=list)
    silenced_coins: set[str] = field(default_factory=set)
    """Coins whose ``candle`` frames the WebSocket server withholds (REST still has them)."""
    drop_before_final: bool = False
    """Cut each connection when it would next send a bucket's final state, before sending it:
    every minute the stream carried ends partial on the client (REST still has the final)."""
    truncate_every: int | None = None
    """Send every this-many-th candle frame cut in half (not JSON any more): ``100`` is 1 %."""
    drop_generation: int = 0
    """Bumped by :meth:`drop_connections`; a connection opened under an older value is dropped."""
    drop_every_s: float | None = None
    """Drop each connection this many clock seconds after it opened."""
    injected_frames: list[str] = field(default_factory=list)
    """Raw text frames sent once to every connection open at the time of injection."""
    ws_handshake_status: int | None = None
    """While set, the WebSocket server answers every opening handshake with this HTTP status
    (429: the venue is up and counts each connection, but turns it away)."""

    def add_http(self, fault: HttpFault) -> None:
        self.http.append(fault)

    def take_http(
        self, path: str, info_type: str | None, coin: str | None = None, query: dict[str, str] | None = None
    ) -> HttpFault | None:
        for fault in self.http:
            if fault.matches(path, info_type, coin, query):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.http.remove(fault)
                return fault
        return None

    def drop_connections(self) -> None:
        self.drop_generation += 1

    def inject(self, frame: str) -> None:
        self.injected_frames.append(frame)

    def clear(self) -> None:
        self.http.clear()
        self.silenced_coins.clear()
        self.drop_every_s = None
        self.drop_before_final = False
        self.truncate_every = None
        self.ws_handshake_status = None
