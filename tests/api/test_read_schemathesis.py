"""Schemathesis over the read routes (issue 15): requests generated from the app's own OpenAPI
document, valid and not (positive and negative modes), sent to ``market api`` on loopback over a
seeded memory; no answer may be a server error, and invalid ones must meet 400s.

Offline: the schema comes from the server under test, nothing is fetched from elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from .read_seeding import seed_read_memory
from .server import served_api

ROUTES = ["/api/v1/candles", "/api/v1/features", "/api/v1/funding", "/api/v1/polymarket/markets", "/api/v1/defillama/series"]
EXAMPLES = 15
"""Generated requests per route and mode: the ten runs took 40 s at a load average of 9, most of
it candles over decades (the reader looks for an archive partition per day of a range)."""


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    seeded = seed_read_memory(tmp_path_factory.mktemp("read-fuzz") / "market.db")
    with served_api(seeded.path) as url:
        yield url


@pytest.fixture(scope="module")
def document(base: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{base}/schema/openapi.json", timeout=30)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize("path", ROUTES)
def test_no_generated_request_is_a_server_error(document: schemathesis.BaseSchema, base: str, path: str, mode: GenerationMode) -> None:
    """Schemathesis' pytest plugin cannot load a schema from a fixture under pytest 9 (it reads a
    private node attribute), so its strategy runs under Hypothesis' own ``@given``."""
    answered: set[int] = set()

    @given(case=document[path]["GET"].as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def no_server_error(case: schemathesis.Case) -> None:
        response = case.call(base_url=base, timeout=30)
        answered.add(response.status_code)
        assert response.status_code < 500, (case.as_curl_command(), response.status_code, response.text)

    no_server_error()
    assert answered, "no request was sent"
    if mode is GenerationMode.NEGATIVE:
        assert 400 in answered, "invalid requests must be refused"
