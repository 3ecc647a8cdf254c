"""The log files of ``market up``: one per supervised process, bounded by rotation.

A failing source used to flood the console with 80-160-line tracebacks per run; each process's
full output now goes to ``<log folder>/<process>.log`` and the console gets one line per failure.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO

LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 3
"""``api.log`` rolls to ``api.log.1`` … ``api.log.3`` at 10 MiB: at most 40 MiB per process."""


def log_path(folder: Path, process: str) -> Path:
    return folder / f"{process}.log"


class RotatingLog:
    """Appends lines to ``path``; past ``max_bytes`` the file becomes ``path.1`` (``.1`` becomes
    ``.2`` …, the oldest beyond ``backups`` is dropped) and a new file starts."""

    def __init__(self, path: Path, *, max_bytes: int = LOG_MAX_BYTES, backups: int = LOG_BACKUPS) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = path.open("a", encoding="utf-8", errors="replace")

    def write(self, line: str) -> None:
        self._file.write(line + "\n")
        self._file.flush()
        if self._file.tell() >= self.max_bytes:
            self._rotate()

    def note(self, line: str) -> None:
        """A line of ``market up`` itself (start, exit, restart) among the process's own."""
        self.write(f"--- market up {time.strftime('%Y-%m-%d %H:%M:%S')}: {line}")

    def close(self) -> None:
        self._file.close()

    def _rotate(self) -> None:
        self._file.close()
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        if self.backups > 0:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
        self._file = self.path.open("a", encoding="utf-8", errors="replace")
