"""Machines against a real ``market api`` process over loopback HTTP: Prometheus scrapes /metrics
with a bearer token while the dashboard requires an admin, and HEAD answers like GET."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from market_assets.clock import wall_clock_ms
from market_assets.memory import open_memory
from market_assets.registry import FUNDING

from .seeding import finished_run
from .server import served_api

TOKEN = "9c1f3e0b7a5d4c2e8f6a1b3d5e7f9a0c"
PROMETHEUS_HEADERS = {
    # What Prometheus 3 sends on a scrape (scrape/scrape.go): its Accept list, agent and timeout.
    "accept": "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"
    "text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
    "user-agent": "Prometheus/3.0.1",
    "x-prometheus-scrape-timeout-seconds": "10",
}


@pytest.fixture
def admin_only(tmp_path: Path) -> Iterator[str]:
    """``market api`` with the dashboard for admins only and one machine token configured."""
    db = tmp_path / "market.db"
    now = wall_clock_ms()
    with open_memory(db) as conn:
        finished_run(conn, wall_clock_ms, FUNDING, started_at_ms=now - 2000, finished_at_ms=now - 1000, rows=3)
    env = {"MARKET_DASHBOARD_REQUIRES_ADMIN": "true", "MARKET_ADMIN_USER_IDS": "ops-1", "MARKET_API_TOKENS": TOKEN}
    with served_api(db, env) as base:
        yield base


def scrape(base: str, credentials_file: Path | None) -> httpx.Response:
    """One scrape as Prometheus makes it: ``authorization: {type: Bearer, credentials_file: …}``
    sends the file's content, trailing whitespace trimmed, as the bearer token."""
    headers = dict(PROMETHEUS_HEADERS)
    if credentials_file is not None:
        headers["authorization"] = f"Bearer {credentials_file.read_text().strip()}"
    return httpx.get(base + "/metrics", headers=headers, timeout=10)


def test_prometheus_scrapes_metrics_with_its_token_while_the_dashboard_requires_an_admin(
    admin_only: str, tmp_path: Path
) -> None:
    credentials = tmp_path / "market-api-token"
    credentials.write_text(TOKEN + "\n")
    scraped = scrape(admin_only, credentials)
    assert scraped.status_code == 200
    assert scraped.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(scraped.text) for s in family.samples}
    assert samples[("market_channel_status", (("channel", "funding"), ("source", "hyperliquid"), ("status", "ok")))] == 1.0
    assert samples[("market_channel_last_run_rows", (("channel", "funding"), ("source", "hyperliquid")))] == 3.0

    anonymous = scrape(admin_only, None)
    assert (anonymous.status_code, anonymous.headers["content-type"]) == (401, "application/json")
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="market"'
    stale = tmp_path / "old-token"
    stale.write_text("0" * len(TOKEN))
    refused = scrape(admin_only, stale)
    assert (refused.status_code, refused.headers["content-type"]) == (401, "application/json")
    assert refused.json()["detail"] == "the bearer token is not one of MARKET_API_TOKENS"
    # The same token reads the dashboard and health; a person still needs an admin identity.
    token = {"authorization": f"Bearer {TOKEN}"}
    assert httpx.get(admin_only + "/api/v1/ingestion/dashboard", headers=token).status_code == 200
    assert httpx.get(admin_only + "/api/v1/ingestion/health", headers=token).status_code == 200
    assert httpx.get(admin_only + "/admin/ingestion", headers={"x-user-id": "trader-9"}).status_code == 403


def test_head_answers_like_get_over_http(admin_only: str) -> None:
    token = {"authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=admin_only, headers=token, timeout=10) as client:
        for path in ("/livez", "/readyz", "/api/v1/ingestion/health", "/schema/openapi.json", "/admin/ingestion"):
            got, head = client.get(path), client.head(path)
            assert (head.status_code, head.content, head.headers["content-type"]) == (
                got.status_code, b"", got.headers["content-type"]), path
        assert client.head("/metrics").status_code == 200
        assert client.head("/livez", headers={"authorization": ""}).status_code == 200
        assert client.head("/metrics", headers={"authorization": ""}).status_code == 401
