"""The dashboard's data is public by default (the runbook); a setting requires an admin user."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from api import create_app
from market_assets.settings import Settings

OPERATIONAL = ("/api/v1/ingestion/dashboard", "/admin/ingestion", "/metrics")


def test_dashboard_page_and_metrics_are_public_by_default(memory_path: Path) -> None:
    with TestClient(create_app(Settings(db_path=memory_path))) as client:
        assert [client.get(path).status_code for path in OPERATIONAL] == [200, 200, 200]


def test_requiring_an_admin_gives_401_without_a_user_and_403_to_others(memory_path: Path) -> None:
    settings = Settings.from_env(
        {"MARKET_DASHBOARD_REQUIRES_ADMIN": "true", "MARKET_ADMIN_USER_IDS": "ops-1, ops-2"}, db_path=memory_path
    )
    assert (settings.dashboard_requires_admin, settings.admin_user_ids) == (True, ("ops-1", "ops-2"))
    with TestClient(create_app(settings)) as client:
        for path in OPERATIONAL:
            assert client.get(path).status_code == 401
            assert client.get(path, headers={"x-user-id": " "}).status_code == 401
            denied = client.get(path, headers={"x-user-id": "trader-9"})
            assert (denied.status_code, denied.json()["detail"]) == (403, "the dashboard requires an admin user")
            assert client.get(path, headers={"x-user-id": "ops-2"}).status_code == 200


def test_probes_stay_public_when_the_dashboard_requires_an_admin(memory_path: Path) -> None:
    settings = Settings(db_path=memory_path, dashboard_requires_admin=True)
    with TestClient(create_app(settings)) as client:
        client.get("/api/v1/ingestion/health", headers={"x-user-id": "ops-1"})  # creates the memory
        assert [client.get(path).status_code for path in ("/livez", "/readyz")] == [200, 200]


@pytest.mark.parametrize("text", ["maybe", "2"])
def test_an_unreadable_admin_flag_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="MARKET_DASHBOARD_REQUIRES_ADMIN"):
        Settings.from_env({"MARKET_DASHBOARD_REQUIRES_ADMIN": text})


def test_the_dashboard_is_public_unless_configured() -> None:
    assert Settings.from_env({}).dashboard_requires_admin is False
    assert Settings.from_env({"MARKET_DASHBOARD_REQUIRES_ADMIN": "0"}).dashboard_requires_admin is False
