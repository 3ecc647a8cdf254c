"""The continuity check: which closed minutes a coin may be missing, and what became of them.

Pure. The streamer owes every closed minute of a coin from the last one it stored. A socket drop
or a silent subscription leaves the newest bucket seen possibly incomplete and the minutes after
it unseen; :class:`ResumePoints` remembers, per coin, the oldest bucket owed, and hands the range
to the REST backfill once the stream shows where it resumed. Gaps are runs of missing closed
buckets; after a backfill each is split into what REST filled and what it could not (older than
``candleSnapshot``'s 5,000-candle window, or a minute the source has no candle for). Nothing is
ever synthesised.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from market_assets.memory.gaps import GapStatus


@dataclass(frozen=True, order=True)
class Span:
    """Buckets ``[start_ms, end_ms)`` of one interval."""

    start_ms: int
    end_ms: int

    def buckets(self, step_ms: int) -> int:
        return max(0, (self.end_ms - self.start_ms) // step_ms)


def bucket_start(at_ms: int, step_ms: int) -> int:
    return at_ms - at_ms % step_ms


def missing_spans(present: Iterable[int], span: Span, step_ms: int) -> list[Span]:
    """Maximal runs of buckets of ``span`` absent from ``present`` (bucket open times)."""
    have = set(present)
    runs: list[Span] = []
    run_start: int | None = None
    for open_ms in range(span.start_ms, span.end_ms, step_ms):
        if open_ms in have:
            if run_start is not None:
                runs.append(Span(run_start, open_ms))
                run_start = None
        elif run_start is None:
            run_start = open_ms
    if run_start is not None:
        runs.append(Span(run_start, span.end_ms))
    return runs


def resolve(gap: Span, present: Iterable[int], step_ms: int) -> list[tuple[Span, GapStatus]]:
    """Split a gap after a backfill into its filled runs and its still-missing (unfillable) runs."""
    have = set(present)
    parts: list[tuple[Span, GapStatus]] = []
    for open_ms in range(gap.start_ms, gap.end_ms, step_ms):
        status = GapStatus.FILLED if open_ms in have else GapStatus.UNFILLABLE
        if parts and parts[-1][1] is status:
            parts[-1] = (Span(parts[-1][0].start_ms, open_ms + step_ms), status)
        else:
            parts.append((Span(open_ms, open_ms + step_ms), status))
    return parts


class ResumePoints:
    """Per coin, the open time of the oldest bucket the memory may hold incomplete or lack.

    Seeded at start with each coin's last stored closed bucket (it is fetched again: a process
    killed or stopped mid-minute may have closed it on partial frames).
    """

    def __init__(self, stored: Mapping[str, int] | None = None) -> None:
        self._owed: dict[str, int] = dict(stored or {})

    def owed(self, coin: str) -> int | None:
        return self._owed.get(coin)

    def lost(self, coin: str, newest_seen_ms: int | None) -> None:
        """The coin's subscription ended: its newest bucket seen may miss its last trades."""
        if newest_seen_ms is None:
            return
        current = self._owed.get(coin)
        self._owed[coin] = newest_seen_ms if current is None else min(current, newest_seen_ms)

    def resumed(self, coin: str, first_open_ms: int) -> Span | None:
        """The first frame of a new subscription arrived: the stream carries the coin again from
        ``first_open_ms`` (its first frame holds that bucket's whole state so far). Returns the
        range REST must fill, if any."""
        start = self._owed.pop(coin, None)
        return Span(start, first_open_ms) if start is not None and start < first_open_ms else None

    def hand_over(self, coin: str, until_ms: int) -> Span | None:
        """Give ``[owed, until_ms)`` to a backfill now, and keep owing from ``until_ms``: for a
        coin still silent, whose stream has not shown where it resumes."""
        start = self._owed.get(coin)
        if start is None or start >= until_ms:
            return None
        self._owed[coin] = until_ms
        return Span(start, until_ms)
