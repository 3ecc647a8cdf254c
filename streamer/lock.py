"""One streamer per market memory: an OS advisory lock on a file beside it, held for the life of
the streamer process.

Two streamers on one memory would each record the same minute windows, take each other's open
window for a crash (:mod:`streamer.windows`) and spend the same Hyperliquid allowance twice. The
lock is ``flock(LOCK_EX | LOCK_NB)`` on ``<memory>.streamer.lock``: the kernel releases it when
the process ends, however it ends, so a ``kill -9`` leaves nothing to clean up by hand. The file
itself stays (it only says which pid last held the lock); deleting it on exit would let a starter
that opened the old file and one that created a new file both win.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType


class StreamerLockError(RuntimeError):
    """Another streamer holds the memory, or the lock file cannot be made; one line for stderr."""


def lock_path(db_path: Path) -> Path:
    """``market.db`` -> ``market.db.streamer.lock``."""
    return db_path.with_name(f"{db_path.name}.streamer.lock")


class StreamerLock:
    """The lock of the memory at ``db_path``, held from :meth:`acquire` until :meth:`release`
    (or the end of the process)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def acquire(cls, db_path: Path) -> StreamerLock:
        path = lock_path(db_path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StreamerLockError(f"cannot create the streamer lock {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _pid_in(fd)
            os.close(fd)
            raise StreamerLockError(_held(holder, db_path)) from None
        except OSError as exc:  # a filesystem without locks (some network mounts)
            os.close(fd)
            raise StreamerLockError(f"cannot lock {path}: {exc.strerror}") from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(fd)

    def release(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> StreamerLock:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


def refuse_if_streaming(db_path: Path) -> None:
    """Raise :class:`StreamerLockError` while a streamer holds the memory at ``db_path``.

    Only looks: a memory that never had a streamer gets no lock file from this.
    """
    path = lock_path(db_path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StreamerLockError(f"cannot read the streamer lock {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise StreamerLockError(_held(_pid_in(fd), db_path)) from None
    finally:
        os.close(fd)


def _pid_in(fd: int) -> int | None:
    """The holder's pid; ``None`` in the instant between its lock and its write."""
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def _held(pid: int | None, db_path: Path) -> str:
    who = f"another streamer (pid {pid})" if pid is not None else "another streamer"
    return f"{who} is already writing {db_path}"
