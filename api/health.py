"""``GET /api/v1/ingestion/health``: SPEC §4's document, the same bytes ``market status --json`` prints."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency

from api.auth import require_user
from api.readers import Readers
from market_assets.clock import Clock
from market_assets.health import HealthDocument, read_health


class IngestionHealthController(Controller):
    path = "/api/v1/ingestion"
    tags = ["ingestion"]

    @get("/health", guards=[require_user], sync_to_thread=True)
    def health(self, readers: NamedDependency[Readers], clock: NamedDependency[Clock]) -> HealthDocument:
        """Health of every registered channel. Requires the ``x-user-id`` header (401 without it)."""
        with readers.connection() as conn:
            return read_health(conn, clock()).document()
