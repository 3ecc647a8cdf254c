"""SQL of the streamer's open-window marker: the start of the minute window a live streamer has
open, kept in ``memory_info`` so that the start after a ``kill -9`` can record that window as failed.

The streamer records a window only when it ends (``streamer.windows``), so without this marker a
window whose process died leaves no trace at all. A clean stop removes it.
"""

from __future__ import annotations

from market_assets.memory.connection import MemoryConnection, write_transaction

_KEY = "streamer_open_window_ms"


def open_window_ms(conn: MemoryConnection) -> int | None:
    """The start of the window a streamer opened and has not closed, if any."""
    row = conn.execute("SELECT value FROM memory_info WHERE key = ?", (_KEY,)).fetchone()
    return None if row is None else int(row[0])


def mark_open_window(conn: MemoryConnection, started_at_ms: int) -> None:
    with write_transaction(conn):
        conn.execute(
            "INSERT INTO memory_info (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (_KEY, str(started_at_ms)),
        )


def clear_open_window(conn: MemoryConnection) -> None:
    with write_transaction(conn):
        conn.execute("DELETE FROM memory_info WHERE key = ?", (_KEY,))
