"""One streamer per market memory, or one per shard: a lock held for the life of the streamer process.

Two streamers following the same coins would each record the same minute windows, take each
other's open window for a crash (:mod:`streamer.windows`) and spend the same Hyperliquid allowance
twice. So an unsharded streamer excludes every other streamer, and a shard (``--shard I/N``)
excludes the same shard and an unsharded streamer, while different shards of one layout coexist;
shards of another N (whose shares overlap) are refused too.

Two locks say this: the *layout* lock, exclusive for an unsharded streamer and shared for a
shard, and each shard's own exclusive lock. Both are released by the kernel or the server when
the process ends, however it ends, so a ``kill -9`` leaves nothing to clean up by hand.

* SQLite (one host): ``flock(LOCK_NB)`` on files beside the memory, ``<memory>.streamer.lock``
  (the layout; an unsharded streamer's pid) and ``<memory>.streamer.2of3.lock`` (shard 2/3's
  pid). The files stay; deleting one on exit would let a starter that opened the old file and one
  that created a new file both win.
* PostgreSQL (many hosts share no file): session advisory locks on a connection of the lock's
  own (``memory.shards``), named so a refusal can say who holds it. A session ends with its
  connection, so a server restart or a cut network releases the locks of a streamer that is
  still running: :meth:`StreamerLock.watch` checks the session every :data:`KEEP_EVERY_S`, takes
  the locks again on a new one, and stops the streamer if another took them meanwhile.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from market_assets.memory.connection import is_lost
from market_assets.memory.errors import MarketMemoryError
from market_assets.memory.shards import (
    LAYOUT_LOCK,
    Shard,
    hold_session,
    shard_lock_key,
    shard_of_lock_key,
    streamer_lock_holders,
    try_streamer_lock,
)
from market_assets.memory.target import MemoryTarget, PostgresUrl, describe

if TYPE_CHECKING:  # psycopg is imported only for a PostgreSQL memory (startup time)
    from market_assets.memory.postgres import PostgresConnection


class StreamerLockError(RuntimeError):
    """Another streamer holds the memory (or the shard), or the lock cannot be taken; one line."""


KEEP_EVERY_S = 5.0
"""How often a PostgreSQL lock's session is checked: the longest a streamer whose locks the server
dropped writes before it has them again, or stops because another streamer took them."""


def lock_path(db_path: Path, shard: Shard | None = None) -> Path:
    """``market.db`` -> ``market.db.streamer.lock``; shard 2/3 -> ``market.db.streamer.2of3.lock``."""
    middle = "" if shard is None else f".{shard.index}of{shard.count}"
    return db_path.with_name(f"{db_path.name}.streamer{middle}.lock")


def _what(shard: Shard | None) -> str:
    return "streamer" if shard is None else f"streamer of shard {shard}"


class StreamerLock:
    """The lock of the memory at ``target`` for ``shard``, held from :meth:`acquire` until
    :meth:`release` (or the end of the process)."""

    def __init__(self, fds: list[int], session: PostgresConnection | None = None,
                 taken: tuple[PostgresUrl, Shard | None] | None = None) -> None:
        self._fds = fds
        self._session = session
        self._taken = taken
        """PostgreSQL: what to take again on a new session when the server dropped this one."""
        self._using_session = threading.Lock()
        self._released = threading.Event()
        self._watcher: threading.Thread | None = None
        self.lost: str | None = None
        """Why the lock was lost to another streamer, once it was (:meth:`watch`)."""

    @classmethod
    def acquire(cls, target: MemoryTarget, shard: Shard | None = None) -> StreamerLock:
        if isinstance(target, PostgresUrl):
            return cls._acquire_postgres(target, shard)
        fds: list[int] = []
        try:
            fds.append(
                _flock(
                    lock_path(target),
                    exclusive=shard is None,
                    refusal=lambda pid: _layout_refusal(target, pid) if shard is None else _held(pid, target, None),
                )
            )
            if shard is not None:
                fds.append(_flock(lock_path(target, shard), exclusive=True, refusal=lambda pid: _held(pid, target, shard)))
                if others := [held for held in _held_shards(target) if held.count != shard.count]:
                    raise StreamerLockError(_other_layout(others, shard, describe(target)))
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        for fd in fds[1:] if shard is not None else fds:
            _write_pid(fd)
        return cls(fds)

    @classmethod
    def _acquire_postgres(cls, target: PostgresUrl, shard: Shard | None) -> StreamerLock:
        try:
            return cls([], _take_postgres(target, shard), (target, shard))
        except MarketMemoryError as exc:
            raise StreamerLockError(str(exc)) from exc

    def watch(self, on_lost: Callable[[str], object], every_s: float = KEEP_EVERY_S) -> None:
        """PostgreSQL: check the lock's session every ``every_s`` on a thread of its own until
        :meth:`release`. A session the server dropped is replaced and the locks taken again
        (while the server is unreachable, the next check tries again: the streamer cannot write
        either); if another streamer took them meanwhile, :attr:`lost` says who and
        ``on_lost(why)`` is called, once. SQLite: nothing to watch, the kernel's locks last as
        long as the process."""
        if self._taken is None:
            return
        self._watcher = threading.Thread(target=self._keep, args=(on_lost, every_s), name="market-streamer-lock",
                                         daemon=True)
        self._watcher.start()

    def _keep(self, on_lost: Callable[[str], object], every_s: float) -> None:
        assert self._taken is not None
        while not self._released.wait(every_s):
            with self._using_session:
                if self._released.is_set():
                    return
                if self._session is not None:
                    try:
                        self._session.execute("SELECT 1")
                        continue
                    except Exception as exc:  # noqa: BLE001 -- lost or not is the question, whatever was raised
                        if not is_lost(self._session, exc):
                            continue  # the session is still there, and with it the locks
                    self._session.close()
                    self._session = None
                try:
                    self._session = _take_postgres(*self._taken)
                    continue
                except StreamerLockError as exc:
                    self.lost = f"the server dropped this streamer's lock and {exc}"
                except MarketMemoryError:
                    continue  # the server is still unreachable: so is the memory, nothing is written
            on_lost(self.lost)
            return

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []
        self._released.set()
        with self._using_session:
            if self._session is not None:
                self._session.close()
                self._session = None
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=10)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


def refuse_if_streaming(target: MemoryTarget) -> None:
    """Raise :class:`StreamerLockError` while any streamer (unsharded or a shard) holds the memory
    at ``target``.

    Only looks: a memory that never had a streamer gets no lock file from this, and on PostgreSQL
    the server's lock table is read, no lock taken.
    """
    if isinstance(target, PostgresUrl):
        from market_assets.memory.postgres import connect_postgres

        try:
            session = connect_postgres(target, readonly=True)
        except MarketMemoryError as exc:
            raise StreamerLockError(str(exc)) from exc
        try:
            holders = streamer_lock_holders(session)
        finally:
            session.close()
        if holders:
            names = sorted({name for _, name in holders if name})
            who = "; ".join(names) if names else "another streamer"
            raise StreamerLockError(f"{who} is already writing {target.redacted}")
        return
    if (holder := _probe(lock_path(target))) is not False:
        raise StreamerLockError(_held(holder, target, None))
    if _held_shards(target):
        raise StreamerLockError(_layout_refusal(target, None))


def _flock(path: Path, *, exclusive: bool, refusal: Callable[[int | None], str]) -> int:
    """An open descriptor of ``path`` holding its lock, or :class:`StreamerLockError` with
    ``refusal(pid in the file)``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StreamerLockError(f"cannot create the streamer lock {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _pid_in(fd)
        os.close(fd)
        raise StreamerLockError(refusal(holder)) from None
    except OSError as exc:  # a filesystem without locks (some network mounts)
        os.close(fd)
        raise StreamerLockError(f"cannot lock {path}: {exc.strerror}") from exc
    return fd


def _layout_refusal(target: Path, holder: int | None) -> str:
    """Why the layout lock was refused to an unsharded streamer: shards hold it shared (the pid
    in the file is then an old one), or another unsharded streamer holds it."""
    if shards := _held_shards(target):
        return f"streamers of shards {', '.join(map(str, shards))} are already writing {target}"
    return _held(holder, target, None)


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())


def _probe(path: Path) -> int | None | bool:
    """``False`` while nobody holds ``path`` exclusively; else the holder's pid (``None`` if unknown)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StreamerLockError(f"cannot read the streamer lock {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _pid_in(fd)
    finally:
        os.close(fd)
    return False


def _held_shards(target: Path) -> list[Shard]:
    """The shards whose lock files beside ``target`` are held now."""
    held: list[Shard] = []
    prefix = f"{target.name}.streamer."
    for path in target.parent.glob(f"{target.name}.streamer.*of*.lock"):
        index, _, count = path.name[len(prefix) : -len(".lock")].partition("of")
        if index.isdigit() and count.isdigit() and _probe(path) is not False:
            held.append(Shard(int(index), int(count)))
    return sorted(held)


def _pid_in(fd: int) -> int | None:
    """The holder's pid; ``None`` in the instant between its lock and its write, or for a layout
    lock held shared by shards."""
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def _held(pid: int | None, target: Path, shard: Shard | None) -> str:
    who = f"another {_what(shard)}" + (f" (pid {pid})" if pid is not None else "")
    return f"{who} is already writing {target}"


def _take_postgres(target: PostgresUrl, shard: Shard | None) -> PostgresConnection:
    """A new session holding the locks of ``shard`` (``None``: unsharded). Raises
    :class:`StreamerLockError` when another streamer holds them, :class:`MarketMemoryError` when
    the server cannot be reached."""
    from market_assets.memory.postgres import connect_postgres

    session = connect_postgres(target)
    try:
        hold_session(session, f"market {_what(shard)} pid {os.getpid()} on {socket.gethostname()}")
        if not try_streamer_lock(session, LAYOUT_LOCK, shared=shard is not None):
            raise StreamerLockError(_held_text(session, target, LAYOUT_LOCK, None))
        if shard is not None:
            if not try_streamer_lock(session, shard_lock_key(shard)):
                raise StreamerLockError(_held_text(session, target, shard_lock_key(shard), shard))
            holders = streamer_lock_holders(session)
            others = sorted({shard_of_lock_key(key) for key, _ in holders if key != LAYOUT_LOCK} - {shard})
            if others := [held for held in others if held.count != shard.count]:
                raise StreamerLockError(_other_layout(others, shard, target.redacted))
    except BaseException:
        session.close()  # ends the session: the server releases whatever it took
        raise
    return session


def _held_text(session: PostgresConnection, target: PostgresUrl, key: int, shard: Shard | None) -> str:
    """Who holds the lock ``key`` (the sessions name themselves), refused to ``shard``."""
    names = sorted({name for held, name in streamer_lock_holders(session) if held == key and name})
    who = "; ".join(names) if names else f"another {_what(shard)}"
    return f"{who} is already writing {target.redacted}"


def _other_layout(others: list[Shard], shard: Shard, where: str) -> str:
    return (
        f"streamers of shards {', '.join(map(str, others))} are writing {where}: shard {shard} would follow "
        f"coins they follow (stop them, or start every shard with the same N)"
    )
