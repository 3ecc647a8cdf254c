"""A strategy on another host: reads a PostgreSQL memory through the read API, again and again.

``python tests/postgres/read_worker.py URL ARCHIVE CONTROL OUT SECONDS`` reads every coin's 1m
and 5m bars since the replay's start as of the replay's clock (``CONTROL``/clock: the moment the
streamer writes at), for ``SECONDS``, and writes each read as an Arrow IPC file in ``OUT``
(``read-<n>-<interval>.arrow``, its ``as_of`` in the schema's metadata) for the test to check
against the replay's truth. Any error (a lock, a busy memory) ends it with a non-zero status.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import pyarrow as pa

from market_assets.memory.target import PostgresUrl
from market_assets.read import MarketReader

INTERVALS = ("1m", "5m")


def main(url: str, archive: str, control: str, out: str, seconds: float, start_ms: int) -> None:
    deadline = time.monotonic() + seconds
    reads = 0
    with MarketReader(PostgresUrl(url), archive=archive) as reader:
        while time.monotonic() < deadline:
            as_of = int(httpx.get(f"{control}/clock", timeout=10).json()["now_ms"])
            for interval in INTERVALS:
                table = reader.candles(None, interval, start_ms, as_of=as_of, output="arrow")
                table = table.replace_schema_metadata({"as_of": str(as_of)})
                with pa.OSFile(str(Path(out) / f"read-{reads:04d}-{interval}.arrow"), "wb") as sink, \
                        pa.ipc.new_file(sink, table.schema) as writer:
                    writer.write_table(table)
            reads += 1
            time.sleep(0.2)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), int(sys.argv[6]))
