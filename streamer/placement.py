"""Which socket carries which coin: subscriptions spread over connections within the IP limits.

Pure. A coin already placed stays where it is when the universe changes (moving it would mean an
unsubscribe, a subscribe and a window with no frames); newcomers go to the least loaded socket;
a new socket is opened only when the others are at ``per_connection``. Coins are dealt in the
order given (most traded first), so every socket carries a share of the liquid coins and a drop
never silences all of them at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Placement:
    sockets: tuple[tuple[str, ...], ...]
    """Coins of each socket, by socket index; an emptied socket keeps its index, with no coins."""
    unplaced: tuple[str, ...]
    """Coins beyond the IP's subscription limit: not streamed (and said so)."""


def place(
    wanted: Sequence[str],
    current: Sequence[Sequence[str]] = (),
    *,
    max_connections: int,
    per_connection: int,
    max_subscriptions: int,
) -> Placement:
    """Spread ``wanted`` (most traded first) over at most ``max_connections`` sockets.

    ``per_connection`` decides how many sockets are used and is exceeded only when all
    ``max_connections`` are in use; ``max_subscriptions`` (the IP's limit) is hard.
    """
    ordered = list(dict.fromkeys(wanted))
    take, unplaced = ordered[:max_subscriptions], tuple(ordered[max_subscriptions:])
    keep = set(take)
    sockets = [[coin for coin in coins if coin in keep] for coins in current]
    placed = {coin for coins in sockets for coin in coins}
    needed = min(max_connections, max(1, math.ceil(len(take) / per_connection)))
    while len(sockets) < needed:
        sockets.append([])
    for coin in take:
        if coin not in placed:
            min(sockets, key=len).append(coin)  # the least loaded; ties go to the lowest index
    return Placement(tuple(tuple(coins) for coins in sockets), unplaced)
