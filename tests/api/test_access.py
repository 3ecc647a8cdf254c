"""Who may read what: the dashboard's data is public by default (the runbook), a setting requires
an admin user; ``x-user-id`` is an identity header, bearer tokens authenticate machines."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from api import create_app
from market_assets.settings import Settings
from tests.conftest import FrozenClock

HEALTH = "/api/v1/ingestion/health"
OPERATIONAL = ("/api/v1/ingestion/dashboard", "/admin/ingestion", "/metrics")
GUARDED = (HEALTH, *OPERATIONAL)
TOKEN, OTHER_TOKEN = "scrape-5f1c0e9a7d3b", "monitor-0a9b8c7d6e5f"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def admin_only(memory: Path, **env: str) -> Settings:
    return Settings.from_env(
        {"MARKET_DASHBOARD_REQUIRES_ADMIN": "true", "MARKET_ADMIN_USER_IDS": "ops-1, ops-2", **env}, db_path=memory
    )


def assert_error(response: httpx.Response, status: int, detail: str) -> None:
    """JSON sent as application/json on the API routes; an HTML page sent as text/html on the
    admin page, the page a browser shows: never one labelled as the other."""
    assert response.status_code == status
    if response.request.url.path == "/admin/ingestion":
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.text.startswith("<!doctype html>") and detail in response.text
    else:
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"status_code": status, "detail": detail}


def test_dashboard_page_and_metrics_are_public_by_default(memory: Path) -> None:
    with TestClient(create_app(Settings(db_path=memory))) as client:
        assert [client.get(path).status_code for path in OPERATIONAL] == [200, 200, 200]


def test_requiring_an_admin_gives_401_without_a_user_and_403_to_others(memory: Path) -> None:
    settings = admin_only(memory)
    assert (settings.dashboard_requires_admin, settings.admin_user_ids) == (True, ("ops-1", "ops-2"))
    with TestClient(create_app(settings)) as client:
        for path in OPERATIONAL:
            for headers in ({}, {"x-user-id": " "}):
                missing = client.get(path, headers=headers)
                assert_error(missing, 401, "missing x-user-id header (or a bearer token)")
                assert missing.headers["www-authenticate"] == 'Bearer realm="market"'
            assert_error(client.get(path, headers={"x-user-id": "trader-9"}), 403, "the dashboard requires an admin user")
            assert client.get(path, headers={"x-user-id": "ops-2"}).status_code == 200


def test_a_configured_bearer_token_reads_everything_the_header_does_and_counts_as_an_admin(memory: Path) -> None:
    settings = admin_only(memory, MARKET_API_TOKENS=f"{TOKEN}, {OTHER_TOKEN}")
    with TestClient(create_app(settings)) as client:
        for path in GUARDED:
            for token in (TOKEN, OTHER_TOKEN):
                assert client.get(path, headers=bearer(token)).status_code == 200, path
            # A token is enough: no x-user-id, or one that is not an admin's.
            assert client.get(path, headers={**bearer(TOKEN), "x-user-id": "trader-9"}).status_code == 200
            assert client.get(path, headers={"authorization": f"bearer   {TOKEN} "}).status_code == 200


@pytest.mark.parametrize("requires_admin", ["false", "true"])
def test_a_wrong_bearer_token_is_401_even_where_the_route_is_public_or_a_user_is_sent(memory: Path, requires_admin: str) -> None:
    settings = Settings.from_env(
        {"MARKET_DASHBOARD_REQUIRES_ADMIN": requires_admin, "MARKET_ADMIN_USER_IDS": "ops-1", "MARKET_API_TOKENS": TOKEN},
        db_path=memory,
    )
    wrong = (TOKEN[:-1], TOKEN + "0", TOKEN.upper(), "", OTHER_TOKEN)
    with TestClient(create_app(settings)) as client:
        for path in GUARDED:
            for token in wrong:
                refused = client.get(path, headers={**bearer(token), "x-user-id": "ops-1"})
                assert_error(refused, 401, "the bearer token is not one of MARKET_API_TOKENS")
                assert refused.headers["www-authenticate"] == 'Bearer realm="market", error="invalid_token"'


def test_without_configured_tokens_every_bearer_token_is_refused(memory: Path) -> None:
    with TestClient(create_app(Settings(db_path=memory))) as client:
        for path in GUARDED:
            assert client.get(path, headers=bearer(TOKEN)).status_code == 401


def test_other_authorization_schemes_are_left_to_the_identity_header(memory: Path) -> None:
    """A front proxy's own Basic credentials passed through are not a token, right or wrong."""
    with TestClient(create_app(admin_only(memory, MARKET_API_TOKENS=TOKEN))) as client:
        basic = {"authorization": "Basic b3BzOnNlY3JldA=="}
        assert client.get(HEALTH, headers=basic).status_code == 401
        assert client.get(HEALTH, headers={**basic, "x-user-id": "anyone"}).status_code == 200
        assert client.get("/metrics", headers={**basic, "x-user-id": "ops-1"}).status_code == 200


def test_probes_stay_public_when_the_dashboard_requires_an_admin(memory: Path) -> None:
    settings = Settings(db_path=memory, dashboard_requires_admin=True)
    with TestClient(create_app(settings)) as client:
        assert [client.get(path).status_code for path in ("/livez", "/readyz")] == [200, 200]


@pytest.mark.parametrize("text", ["maybe", "2"])
def test_an_unreadable_admin_flag_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="MARKET_DASHBOARD_REQUIRES_ADMIN"):
        Settings.from_env({"MARKET_DASHBOARD_REQUIRES_ADMIN": text})


def test_the_dashboard_is_public_unless_configured() -> None:
    assert Settings.from_env({}).dashboard_requires_admin is False
    assert Settings.from_env({"MARKET_DASHBOARD_REQUIRES_ADMIN": "0"}).dashboard_requires_admin is False


def test_tokens_are_read_from_a_list_and_kept_out_of_the_settings_repr() -> None:
    settings = Settings.from_env({"MARKET_API_TOKENS": f" {TOKEN} ,, {OTHER_TOKEN},"})
    assert settings.api_tokens == (TOKEN, OTHER_TOKEN)
    assert Settings.from_env({}).api_tokens == ()
    assert TOKEN not in repr(settings) and OTHER_TOKEN not in repr(settings)


@pytest.mark.parametrize("tokens", ["good-token,has space", "ünïcode-token", 'quote"token'])
def test_a_token_a_header_cannot_carry_is_refused_without_being_echoed(tokens: str) -> None:
    with pytest.raises(ValueError, match=r"MARKET_API_TOKENS: token \d of \d") as refused:
        Settings.from_env({"MARKET_API_TOKENS": tokens})
    assert all(token not in str(refused.value) for token in tokens.split(","))


def test_the_openapi_document_shows_the_identity_header_the_bearer_scheme_and_the_refusals(memory: Path) -> None:
    with TestClient(create_app(Settings(db_path=memory))) as client:
        schema = client.get("/schema/openapi.json").json()
    scheme = schema["components"]["securitySchemes"]["bearerToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for path, refusals in ((HEALTH, {"401"}), ("/api/v1/ingestion/dashboard", {"401", "403"}), ("/metrics", {"401", "403"})):
        operation = schema["paths"][path]["get"]
        (header,) = [p for p in operation["parameters"] if p["name"] == "x-user-id"]
        assert (header["in"], header["required"]) == ("header", False)
        assert "trusted front proxy" in header["description"] and "NOT authentication" in header["description"]
        assert operation["security"] == [{"bearerToken": []}, {}]
        assert {status: operation["responses"][status]["content"] for status in refusals} == dict.fromkeys(refusals, error)
        assert operation["responses"]["503"]["content"] == error
    assert set(schema["components"]["schemas"]["ErrorBody"]["required"]) == {"status_code", "detail"}
    for path in ("/livez", "/readyz"):
        assert "security" not in schema["paths"][path]["get"]


def test_head_answers_wherever_get_does_with_its_headers_and_no_body(memory: Path, clock: FrozenClock) -> None:
    settings = Settings.from_env({"MARKET_API_TOKENS": TOKEN}, db_path=memory)
    paths = ("/livez", "/readyz", *GUARDED, "/schema/openapi.json")
    with TestClient(create_app(settings, clock=clock)) as client:
        for path in paths:
            got, head = client.get(path, headers=bearer(TOKEN)), client.head(path, headers=bearer(TOKEN))
            assert (head.status_code, head.content) == (got.status_code, b""), path
            assert head.headers["content-type"] == got.headers["content-type"], path
            assert head.headers["content-length"] == str(len(got.content)), path
        assert client.head(HEALTH).status_code == 401  # guarded like the GET
        assert client.post("/livez").status_code == 405
