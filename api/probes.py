"""Kubernetes-style probes (peers.md §4): ``/livez`` checks the process only — a dependency
blip must not turn into a restart storm — and ``/readyz`` checks what serving needs: a readable
memory at this program's schema holding every registered channel's table (503 otherwise)."""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, get
from litestar.openapi import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from api.dependencies import SettingsDependency
from market_assets.memory import MarketMemoryError, open_memory
from market_assets.memory.connection import is_database_error
from market_assets.memory.readiness import missing_tables
from market_assets.registry import REGISTRY


class Probe(msgspec.Struct):
    status: str
    """``ok``, or ``unavailable`` with the reason in ``detail``."""
    detail: str = ""


class ProbesController(Controller):
    tags = ["probes"]

    @get("/livez", sync_to_thread=False)
    def livez(self) -> Probe:
        """200 while the process serves requests; reads nothing."""
        return Probe("ok")

    @get(
        "/readyz",
        sync_to_thread=True,
        responses={
            HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(
                data_container=Probe, description="The memory is unreadable or lacks a channel's table.", generate_examples=False
            )
        },
    )
    def readyz(self, settings: SettingsDependency) -> Response[Probe]:
        """200 when the memory is readable and holds every registered channel's table, else 503."""
        try:
            with open_memory(settings.db_path, readonly=True) as conn:
                absent = missing_tables(conn, [channel.data.table for channel in REGISTRY])
        except Exception as exc:
            if not (isinstance(exc, MarketMemoryError) or is_database_error(exc)):
                raise
            return Response(Probe("unavailable", str(exc)), status_code=HTTP_503_SERVICE_UNAVAILABLE)
        if not REGISTRY or absent:
            detail = f"tables missing from the memory: {', '.join(absent)}" if absent else "no channel is registered"
            return Response(Probe("unavailable", detail), status_code=HTTP_503_SERVICE_UNAVAILABLE)
        return Response(Probe("ok"), status_code=HTTP_200_OK)
