"""Forming, closed and confirmed: what a streamed bucket may be stored as (SPEC §8, sources.md §1.3).

Frames re-send a coin's current bucket, each time in full (not a delta), with growing volume,
until trades fall in the next bucket. A bucket is *closed* once a later bucket arrived for its
coin or its close time passed. It is *confirmed* only once its final state is known: the same
unbroken socket (a :class:`Feed`) delivered it and then the coin's next bucket, with no
unparseable frame on that socket after the bucket's latest frame (that frame could have been
its final update). Every other closed bucket is unverified and owed to REST repair, and so is
every minute the stream skipped. Pure: the caller passes the receive time and the feed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from market_assets.memory.candles import CandleRow, Repair, RepairReason
from market_assets.sources.hyperliquid import Candle

UNVERIFIED = RepairReason.UNVERIFIED
MISSING = RepairReason.MISSING
_NOTHING: tuple[Repair, ...] = ()


class Feed:
    """One socket session, as the book sees it: its frames arrive in order; ``unparseable``
    counts the frames on it that could not be read (any of them may have been a candle)."""

    __slots__ = ("unparseable",)

    def __init__(self) -> None:
        self.unparseable = 0


@dataclass(slots=True)
class _Track:
    open_ms: int
    """The coin's newest bucket seen."""
    latest: Candle
    """Its latest state."""
    feed: Feed | None
    """The socket that delivered that state; ``None`` once no socket can tell its final state."""
    mark: int
    """``feed.unparseable`` when that state arrived, or -1 when it was tainted since."""


class BucketBook:
    """Per coin, the newest bucket seen and whether its final state can still be learnt."""

    def __init__(self, step_ms: int) -> None:
        self.step_ms = step_ms
        self._tracks: dict[str, _Track] = {}
        self.covered_from: dict[str, int] = {}
        """Per coin, the first bucket the streamer owes from its first frame on: earlier ones
        were queued by the start's horizon (``memory.repairs.queue_horizon``)."""

    def observe(
        self, candle: Candle, received_ms: int, feed: Feed
    ) -> tuple[CandleRow, CandleRow | None, Sequence[Repair]]:
        """A frame: the row to store for it, the row confirming the coin's previous bucket (if
        this frame proves it final), and the minutes it reveals as owed to REST."""
        coin, open_ms = candle.coin, candle.open_ms
        track = self._tracks.get(coin)
        if track is not None and open_ms == track.open_ms:
            # The common case, first: a full state of the same bucket, from this socket or a new
            # one. It holds every trade so far, so whatever was lost before it no longer matters.
            track.latest, track.feed, track.mark = candle, feed, feed.unparseable
            return row_of(candle, candle.close_ms < received_ms), None, _NOTHING
        if track is None:
            self._tracks[coin] = _Track(open_ms, candle, feed, feed.unparseable)
            before = range(self.covered_from.get(coin, open_ms), open_ms, self.step_ms)
            return row_of(candle, candle.close_ms < received_ms), None, [(coin, m, MISSING) for m in before]
        if open_ms < track.open_ms:
            # A late frame of an older bucket (a resubscription overlapping): never final here.
            return row_of(candle, True), None, [(coin, open_ms, UNVERIFIED)]
        previous = track.open_ms
        confirmed: CandleRow | None = None
        owed: list[Repair] = []
        if track.feed is feed and track.mark == feed.unparseable:
            confirmed = row_of(track.latest, True, True)
        else:
            owed.append((coin, previous, UNVERIFIED))
        # Skipped minutes: on one unbroken socket nobody traded in them, but only REST can say.
        owed.extend((coin, m, MISSING) for m in range(previous + self.step_ms, open_ms, self.step_ms))
        track.open_ms, track.latest, track.feed, track.mark = open_ms, candle, feed, feed.unparseable
        return row_of(candle, candle.close_ms < received_ms), confirmed, owed

    def lost(self, coins: Iterable[str], feed: Feed | None, now_ms: int) -> list[Repair]:
        """These coins' subscriptions ended (on ``feed``; ``None``: whatever socket carries them).
        A bucket still forming can be learnt whole from the next socket's first frame; one that
        has ended cannot, and is owed now."""
        owed: list[Repair] = []
        for coin in coins:
            track = self._tracks.get(coin)
            if track is None or track.feed is None or (feed is not None and track.feed is not feed):
                continue
            track.feed = None
            if track.latest.close_ms < now_ms:
                owed.append((coin, track.open_ms, UNVERIFIED))
        return owed

    def rejected(self, coin: str, open_ms: int) -> None:
        """A frame of this bucket carried impossible values: its state so far is not final."""
        track = self._tracks.get(coin)
        if track is not None and track.open_ms == open_ms:
            track.mark = -1


def row_of(candle: Candle, closed: bool, confirmed: bool = False) -> CandleRow:
    # tuple.__new__ straight, not CandleRow's Python-level __new__: two rows a frame.
    return _new_row(CandleRow, (
        candle.coin,
        candle.interval,
        candle.open_ms,
        candle.close_ms,
        candle.open,
        candle.high,
        candle.low,
        candle.close,
        candle.volume,
        candle.trades,
        closed,
        confirmed,
    ))


_new_row = tuple.__new__
