"""One streamer per shard: two streamers of the same shard refuse, different shards of one layout
coexist, an unsharded streamer and a shard exclude each other, and shards of another N (whose
shares overlap) are refused. On SQLite by ``flock`` beside the memory, on PostgreSQL by session
advisory locks that hold across hosts; each refusal is one line naming who holds the lock."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from market_assets.memory.shards import Shard
from market_assets.memory.target import MemoryTarget, PostgresUrl, describe
from streamer.lock import StreamerLock, StreamerLockError, refuse_if_streaming


@pytest.fixture
def held(memory_target: MemoryTarget) -> Iterator[ExitStack]:
    """Locks a test takes, all released at its end."""
    if not isinstance(memory_target, PostgresUrl):
        memory_target.parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        yield stack


def take(held: ExitStack, target: MemoryTarget, shard: str | None) -> StreamerLock:
    return held.enter_context(StreamerLock.acquire(target, None if shard is None else Shard.parse(shard)))


def refusal(target: MemoryTarget, shard: str | None) -> str:
    with pytest.raises(StreamerLockError) as refused:
        StreamerLock.acquire(target, None if shard is None else Shard.parse(shard))
    return str(refused.value)


def holder(target: MemoryTarget, shard: str | None) -> str:
    """How a refusal names a holder in this process."""
    if isinstance(target, PostgresUrl):
        what = "streamer" if shard is None else f"streamer of shard {shard}"
        return f"market {what} pid {os.getpid()} on {socket.gethostname()}"
    what = "another streamer" if shard is None else f"another streamer of shard {shard}"
    return f"{what} (pid {os.getpid()})"


def test_the_same_shard_twice_is_refused_and_other_shards_coexist(memory_target: MemoryTarget, held: ExitStack) -> None:
    take(held, memory_target, "1/3")
    take(held, memory_target, "2/3")
    assert refusal(memory_target, "1/3") == f"{holder(memory_target, '1/3')} is already writing {describe(memory_target)}"
    take(held, memory_target, "3/3")  # the refusal took nothing


def test_an_unsharded_streamer_and_a_shard_exclude_each_other(memory_target: MemoryTarget, held: ExitStack) -> None:
    first = take(held, memory_target, None)
    where = describe(memory_target)
    assert refusal(memory_target, "2/2") == f"{holder(memory_target, None)} is already writing {where}"
    assert refusal(memory_target, None) == f"{holder(memory_target, None)} is already writing {where}"
    first.release()
    take(held, memory_target, "2/2")
    unsharded = refusal(memory_target, None)
    if isinstance(memory_target, PostgresUrl):
        assert unsharded == f"{holder(memory_target, '2/2')} is already writing {where}"
    else:
        assert unsharded == f"streamers of shards 2/2 are already writing {where}"


def test_shards_of_another_layout_are_refused(memory_target: MemoryTarget, held: ExitStack) -> None:
    first, second = take(held, memory_target, "1/2"), take(held, memory_target, "2/2")
    assert refusal(memory_target, "3/3") == (
        f"streamers of shards 1/2, 2/2 are writing {describe(memory_target)}: shard 3/3 would follow coins they "
        "follow (stop them, or start every shard with the same N)"
    )
    first.release()
    second.release()
    take(held, memory_target, "3/3")  # the refused start kept no lock of its own


def test_a_released_shard_can_be_taken_again_and_market_up_sees_any_streamer(
    memory_target: MemoryTarget, held: ExitStack
) -> None:
    refuse_if_streaming(memory_target)  # nobody yet
    shard = take(held, memory_target, "2/2")
    with pytest.raises(StreamerLockError) as refused:
        refuse_if_streaming(memory_target)
    where = describe(memory_target)
    if isinstance(memory_target, PostgresUrl):
        assert str(refused.value) == f"{holder(memory_target, '2/2')} is already writing {where}"
    else:
        assert str(refused.value) == f"streamers of shards 2/2 are already writing {where}"
    shard.release()
    refuse_if_streaming(memory_target)
    take(held, memory_target, "2/2")
