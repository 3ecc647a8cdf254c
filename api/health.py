"""``GET /api/v1/ingestion/health``: SPEC §4's document, the same bytes ``market status --json`` prints.

Served on the event loop, with its reader, clock and guard bound when the app is built, because
everything else around the evaluation costs more than the evaluation. Measured with py-spy and
cProfile (bench/api.py, issue 13): the evaluation is seven index seeks, ~0.1 ms (since issue 16
also a scan of the few failing rows of ``check_results``, in the same read snapshot); a sync guard or
handler is run by Litestar in a worker thread (a thread hop each, and on a loaded machine each
hop waits for the scheduler), and resolving dependencies runs an anyio task group per request
(~0.2 ms). In WAL mode a reader does not wait for the writer (sqlite.org/wal.html lists the
rare exceptions, such as recovery after a crash), so the loop blocks only for the seeks. A channel
streamed by shards adds one seek reading its newest few windows per shard (SQLite: 0.1 ms at three
shards; ``memory.shards.latest_shard_windows``).
"""

from __future__ import annotations

from litestar import get
from litestar.handlers import HTTPRouteHandler

from api.auth import UserAccess
from api.openapi import SECURITY, USER_ERRORS, GuardedOperation
from api.readers import Readers
from market_assets.clock import Clock
from market_assets.health import HealthDocument, read_health


def health_handler(readers: Readers, clock: Clock, access: UserAccess) -> HTTPRouteHandler:
    """The route, reading through ``readers`` and judging at ``clock()`` on each request."""

    @get(
        "/api/v1/ingestion/health",
        guards=[access],
        sync_to_thread=False,
        tags=["ingestion"],
        security=SECURITY,
        responses=USER_ERRORS,
        operation_class=GuardedOperation,
    )
    def health() -> HealthDocument:
        """Health of every registered channel. Requires the ``x-user-id`` header (an identity a
        trusted front proxy sets) or a bearer token of ``MARKET_API_TOKENS``; 401 without either
        and for a wrong token; 503 when the memory cannot be read."""
        with readers.connection() as conn:
            return read_health(conn, clock()).document()

    return health
