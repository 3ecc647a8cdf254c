"""``GET /api/v1/ingestion/dashboard``: SPEC §5's per-channel signals and warnings."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency

from api.dependencies import SettingsDependency
from api.openapi import GUARDED_ERRORS, GuardedOperation
from api.readers import Readers
from api.volume_cache import VolumeCache
from market_assets.clock import Clock
from market_assets.dashboard import DashboardDocument, read_dashboard
from market_assets.settings import Settings


def current_dashboard(
    settings: Settings, readers: Readers, clock: Clock, volumes: VolumeCache
) -> tuple[DashboardDocument, BackgroundTask | None]:
    """The dashboard now, and the volume recount to run once the response is sent (if due)."""
    now_ms = clock()
    with readers.connection() as conn:
        counted = volumes.value(conn, now_ms)
        document = read_dashboard(conn, now_ms, volumes=counted, max_coins=settings.max_coins)
    return document, volumes.refresh_task(readers, clock, now_ms)


class IngestionDashboardController(Controller):
    path = "/api/v1/ingestion"
    tags = ("ingestion",)

    @get("/dashboard", sync_to_thread=True, responses=GUARDED_ERRORS, operation_class=GuardedOperation)
    def dashboard(
        self,
        settings: SettingsDependency,
        readers: NamedDependency[Readers],
        clock: NamedDependency[Clock],
        volumes: NamedDependency[VolumeCache],
    ) -> Response[DashboardDocument]:
        """Every channel's health row (its fields flat, as in the health document) with its
        volumes, coverage, data lag, runs, and warnings: ``warnings`` lists their names,
        ``warningDetails`` says each in a line.

        Public unless ``MARKET_DASHBOARD_REQUIRES_ADMIN`` is set (then 401 without a user, 403
        for a user not in ``MARKET_ADMIN_USER_IDS``); a bearer token of ``MARKET_API_TOKENS``
        counts as an admin, a wrong one is 401. Total rows and the last 24 hours' figures
        count data older than an hour as at ``volumesCountedAtMs`` (recounted each minute, after
        a response) and newer data now, so rows of the last hour ≤ last 24 hours ≤ total.
        """
        document, recount = current_dashboard(settings, readers, clock, volumes)
        return Response(document, background=recount)
