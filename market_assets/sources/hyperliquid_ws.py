"""Hyperliquid WebSocket protocol pieces (``wss://api.hyperliquid.xyz/ws``); no connection logic.

Source contract: ``shared/research/sources.md`` §1.3. What the real server does that the docs
do not say: the ack re-serialises the subscription (key order ``type, interval, coin``), so acks
are matched on fields; a ``candle`` frame carries ONE candle object, not a list; an unknown
subscription is answered on the ``error`` channel with the request text quoted; the legacy
``Websocket connection established.`` greeting is not JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from market_assets.sources.errors import PayloadError
from market_assets.sources.hyperliquid import SOURCE, Candle, checked_candle
from market_assets.sources.parsing import payload_error_from

HYPERLIQUID_WS = "wss://api.hyperliquid.xyz/ws"
PING = '{"method":"ping"}'
"""The documented heartbeat; the server closes a connection that sent nothing for 60 s."""
IDLE_CLOSE_S = 60
PING_EVERY_S = 50
"""The official Python SDK's interval (``websocket_manager.py``), well inside the 60 s idle close."""

Subscription = Mapping[str, Any]


def candle_subscription(coin: str, interval: str = "1m") -> dict[str, str]:
    return {"type": "candle", "coin": coin, "interval": interval}


def subscribe_message(subscription: Subscription) -> str:
    return json.dumps({"method": "subscribe", "subscription": dict(subscription)}, separators=(",", ":"))


def unsubscribe_message(subscription: Subscription) -> str:
    return json.dumps({"method": "unsubscribe", "subscription": dict(subscription)}, separators=(",", ":"))


def same_subscription(sent: Subscription, echoed: Subscription) -> bool:
    """Field-wise equality: the server's echo re-orders keys, so never compare the text."""
    return all(echoed.get(key) == value for key, value in sent.items())


@dataclass(frozen=True, slots=True)
class Ack:
    """``subscriptionResponse``: the server took a subscribe or unsubscribe."""

    method: str
    subscription: dict[str, Any]

    def acknowledges(self, method: str, subscription: Subscription) -> bool:
        return self.method == method and same_subscription(subscription, self.subscription)


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """``error``: a request the server refused. ``request`` is the quoted request when the text
    carries one, so the caller can tell which subscription failed."""

    message: str
    request: dict[str, Any] | None

    @property
    def subscription(self) -> dict[str, Any] | None:
        sub = self.request.get("subscription") if self.request else None
        return sub if isinstance(sub, dict) else None


@dataclass(frozen=True, slots=True)
class Pong:
    pass


@dataclass(frozen=True, slots=True)
class CandleFrame:
    """A ``candle`` update: the bucket ``candle.open_ms`` as it stands now. The same bucket is
    re-sent with growing volume until a later bucket arrives; upsert on (coin, interval, t)."""

    candle: Candle


@dataclass(frozen=True, slots=True)
class OtherFrame:
    """A well-formed frame on a channel this project does not consume."""

    channel: str


@dataclass(frozen=True, slots=True)
class NotJson:
    """A text frame that is not JSON (the legacy greeting, or noise): skip it, count it."""

    text: str


Frame = Ack | ErrorFrame | Pong | CandleFrame | OtherFrame | NotJson


class _Envelope(msgspec.Struct, gc=False):  # one per frame: kept out of the cyclic GC's counts
    channel: str
    data: msgspec.Raw = msgspec.Raw(b"null")


class _AckData(msgspec.Struct):
    method: str
    subscription: dict[str, Any]


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_ACK = msgspec.json.Decoder(_AckData)
_ANY = msgspec.json.Decoder()


def parse_frame(text: str | bytes) -> Frame:
    """Classify one server frame. Raises :class:`PayloadError` only for a JSON frame that breaks
    its channel's contract (a ``candle`` without ``c``, say), and its subclass
    :class:`RejectedCandle`, naming the coin and minute, for a whole candle with impossible values
    (``"o":"NaN"``, ``l > h``: see :func:`candle_defect`); non-JSON is :class:`NotJson`."""
    try:
        envelope = _ENVELOPE.decode(text)
    except msgspec.ValidationError as exc:
        raise payload_error_from(exc, SOURCE, "ws") from exc
    except (msgspec.DecodeError, UnicodeDecodeError):
        return NotJson(text if isinstance(text, str) else text.decode("utf-8", errors="replace"))
    channel = envelope.channel
    try:
        if channel == "candle":
            return CandleFrame(checked_candle(envelope.data, f"ws {channel}"))
        if channel == "pong":
            return Pong()
        if channel == "subscriptionResponse":
            ack = _ACK.decode(envelope.data)
            return Ack(ack.method, ack.subscription)
        if channel == "error":
            message = _ANY.decode(envelope.data)
            if not isinstance(message, str):
                raise PayloadError(SOURCE, f"ws {channel}", "$.data", "expected the error text")
            return ErrorFrame(message, _quoted_request(message))
    except msgspec.ValidationError as exc:
        raise payload_error_from(exc, SOURCE, f"ws {channel}", prefix="$.data") from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise PayloadError(SOURCE, f"ws {channel}", "$.data", f"not valid JSON ({exc})") from exc
    return OtherFrame(channel)


def _quoted_request(message: str) -> dict[str, Any] | None:
    """``Error parsing JSON into valid websocket request: {...}`` quotes the request it refused."""
    start = message.find("{")
    if start < 0:
        return None
    try:
        request = json.loads(message[start:])
    except ValueError:
        return None
    return request if isinstance(request, dict) else None


@dataclass
class FrameCounts:
    """Frames seen by kind, for the streamer's run metadata."""

    candles: int = 0
    acks: int = 0
    errors: int = 0
    pongs: int = 0
    other: int = 0
    not_json: int = 0
    invalid: int = 0
    """JSON frames that broke their channel's contract (each a :class:`PayloadError`)."""
    by_channel: dict[str, int] = field(default_factory=dict)

    def count(self, frame: Frame) -> None:
        match frame:
            case CandleFrame():
                self.candles += 1
            case Ack():
                self.acks += 1
            case ErrorFrame():
                self.errors += 1
            case Pong():
                self.pongs += 1
            case NotJson():
                self.not_json += 1
            case OtherFrame(channel=channel):
                self.other += 1
                self.by_channel[channel] = self.by_channel.get(channel, 0) + 1
