"""The streamer (SPEC §1): Hyperliquid 1-minute candles over WebSocket into the market memory.

A standalone asyncio process, ``market stream``. Data flows one way: the perp universe
(:mod:`streamer.universe`) is spread over a few WebSocket connections (:mod:`streamer.placement`),
each an explicit state machine (:mod:`streamer.connection`) that pings, verifies every ack,
resubscribes a silent coin alone and reconnects with capped, jittered backoff forever. Frames go
through a bounded queue to one writer (:mod:`streamer.writer`) that upserts in batches, one
transaction per flush, on a thread of its own so a locked memory never stalls the sockets. The
bucket book (:mod:`streamer.buckets`) decides what each frame may be stored as: a closed minute is
confirmed only when the same unbroken socket went on to the coin's next bucket; every other one,
and every minute the stream skipped, is queued durably for REST repair (:mod:`streamer.repair`),
which stores the venue's final candle, or records that nobody traded or that it is beyond reach.
Every minute window is one ledger run (:mod:`streamer.windows`).
:mod:`streamer.service` composes the pieces; :mod:`streamer.cli` is what ``market`` calls.
"""
