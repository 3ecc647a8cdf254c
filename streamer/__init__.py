"""The streamer (SPEC §1): Hyperliquid 1-minute candles over WebSocket into the market memory.

A standalone asyncio process, ``market stream``. Data flows one way: the perp universe
(:mod:`streamer.universe`) is spread over a few WebSocket connections (:mod:`streamer.placement`),
each an explicit state machine (:mod:`streamer.connection`) that pings, verifies every ack,
resubscribes a silent coin alone and reconnects with capped, jittered backoff forever. Frames go
through a bounded queue to one writer (:mod:`streamer.writer`) that upserts in batches, one
transaction per flush, on a thread of its own so a locked memory never stalls the sockets. After
every (re)connect the closed minutes the socket may have missed come from REST
(:mod:`streamer.backfill`), and the continuity check (:mod:`streamer.continuity`) records what was
missing, filled or beyond reach. Every minute window is one ledger run (:mod:`streamer.windows`).
:mod:`streamer.service` composes the pieces; :mod:`streamer.cli` is what ``market`` calls.
"""
