"""What the streamer went through, counted for each ledger window's metadata (SPEC §3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

UNPARSEABLE = "unparseable"
"""The rejection reason of a frame that could not be read at all (any of them may have been a candle)."""

WINDOWED = (
    "frames",
    "candle_frames",
    "pongs",
    "acks",
    "error_frames",
    "not_json_frames",
    "parse_errors",
    "other_frames",
    "connections_opened",
    "reconnects",
    "ack_timeouts",
    "refused_subscriptions",
    "stale_resubscribes",
    "confirmed_minutes",
    "minutes_owed",
    "repair_requests",
    "repaired_minutes",
    "corrected_minutes",
    "no_trade_minutes",
    "gaps_unfillable",
    "repair_conflicts",
    "repair_failures",
    "repair_worker_restarts",
    "rows_refused",
    "write_errors",
    "flushes",
    "rows_written",
    "wal_truncations",
    "wal_truncations_held_back",
)


@dataclass
class StreamCounters:
    """Totals since the process started; :meth:`window` reports the part since its last call."""

    frames: int = 0
    candle_frames: int = 0
    pongs: int = 0
    acks: int = 0
    error_frames: int = 0
    """``error`` channel frames: requests the server refused."""
    not_json_frames: int = 0
    parse_errors: int = 0
    """JSON frames that broke their channel's contract (a candle without ``c``, say)."""
    other_frames: int = 0
    connections_opened: int = 0
    reconnects: int = 0
    ack_timeouts: int = 0
    refused_subscriptions: int = 0
    stale_resubscribes: int = 0
    confirmed_minutes: int = 0
    """Closed minutes the stream itself proved final (the same socket went on to the next)."""
    minutes_owed: int = 0
    """Minutes the stream queued for REST repair (unverified, skipped or rejected)."""
    repair_requests: int = 0
    repaired_minutes: int = 0
    """Queued minutes stored confirmed from candleSnapshot."""
    corrected_minutes: int = 0
    """Of those, the ones stored before with different values."""
    no_trade_minutes: int = 0
    gaps_unfillable: int = 0
    """Queued minutes older than candleSnapshot's 5,000-candle reach."""
    repair_conflicts: int = 0
    """Minutes the stream had a candle for and REST has none."""
    repair_failures: int = 0
    repair_worker_restarts: int = 0
    rows_refused: int = 0
    """Rows the memory would not store (set aside, their minute queued for repair)."""
    write_errors: int = 0
    flushes: int = 0
    rows_written: int = 0
    wal_truncations: int = 0
    """Times the writer truncated the WAL after its commit (``memory.retention.WalBound``)."""
    wal_truncations_held_back: int = 0
    """Truncations readers kept from completing within the writer's wait."""
    queue_depth_max: int = 0
    """Deepest the frame queue was in the current window."""
    rejected_frames: dict[str, int] = field(default_factory=dict)
    """Candle frames refused, per reason (a value defect, or ``unparseable``)."""
    last_frame_ms: dict[str, int] = field(default_factory=dict)
    """Per coin, when its latest candle frame arrived (epoch ms)."""
    resubscribed: dict[str, int] = field(default_factory=dict)
    """Stale resubscribes per coin since the process started."""
    _at_last_window: dict[str, int] = field(default_factory=dict)
    _rejected_at_last_window: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected_frames[reason] = self.rejected_frames.get(reason, 0) + 1

    def window(self, queue_depth: int) -> dict[str, Any]:
        """The counts since the previous window, the queue depth and every coin's last frame."""
        now = {name: getattr(self, name) for name in WINDOWED}
        report: dict[str, Any] = {name: value - self._at_last_window.get(name, 0) for name, value in now.items()}
        report["queue_depth"] = queue_depth
        report["queue_depth_max"] = max(self.queue_depth_max, queue_depth)
        report["rejected_frames"] = {
            reason: count - self._rejected_at_last_window.get(reason, 0)
            for reason, count in self.rejected_frames.items()
            if count > self._rejected_at_last_window.get(reason, 0)
        }
        report["last_frame_ms"] = dict(self.last_frame_ms)
        self._at_last_window = now
        self._rejected_at_last_window = dict(self.rejected_frames)
        self.queue_depth_max = queue_depth
        return report
