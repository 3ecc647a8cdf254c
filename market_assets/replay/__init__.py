"""Loopback replay servers that speak the real source protocols from the recorded fixtures,
with fault injection and an accelerable clock: the offline mode and every source test run on them."""

from market_assets.replay.faults import FaultPlan, HttpFault, HttpFaultKind
from market_assets.replay.http_app import RequestRecord
from market_assets.replay.server import ReplayConfig, ReplayServers, ReplayThread

__all__ = [
    "FaultPlan",
    "HttpFault",
    "HttpFaultKind",
    "ReplayConfig",
    "ReplayServers",
    "ReplayThread",
    "RequestRecord",
]
