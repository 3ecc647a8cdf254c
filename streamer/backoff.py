"""Reconnect delays: capped exponential backoff with jitter, never giving up (nautilus_trader's
Hyperliquid client: 250 ms doubling to a cap, plus up to 200 ms of jitter, unlimited attempts;
the cap is ``StreamerConfig.backoff_cap_s``).

Jitter spreads the reconnects of several sockets dropped together, so they do not arrive at the
server as one burst (cryptofeed #447: every subscription reconnecting at once drew HTTP 429).
"""

from __future__ import annotations

import math
import random


class Backoff:
    def __init__(self, initial_s: float, cap_s: float, jitter_s: float, rng: random.Random | None = None) -> None:
        self.initial_s = initial_s
        self.cap_s = cap_s
        self.jitter_s = jitter_s
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The wait before the next attempt: ``min(cap, initial * 2**attempt)`` plus jitter."""
        # The exponent is clamped so a streamer down for days never computes 2**100000.
        base = min(self.cap_s, math.ldexp(self.initial_s, min(self.attempt, 62)))
        self.attempt += 1
        return base + self._rng.uniform(0, self.jitter_s)

    def reset(self) -> None:
        """A session that reached every ack starts the schedule over."""
        self.attempt = 0
