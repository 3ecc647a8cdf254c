"""The read API over HTTP (SPEC §11, issue 15): ``market api`` as a real server on loopback, asked
for the rows a ``MarketReader`` returns for the same seeded memory and the same arguments, and
compared value by value in every format; paging, access and refusals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pyarrow as pa
import pytest
from litestar.testing import TestClient

from api import create_app
from market_assets.read import CANDLE_SCHEMA, INTERVALS, MarketReader
from market_assets.settings import Settings
from tests.postgres.memory_copy import on_postgres
from tests.postgres_server import PostgresServer

from .read_rows import csv_rows, json_rows, python_rows
from .read_seeding import COINS, Seeded, seed_read_memory
from .server import served_api

ARROW = "application/vnd.apache.arrow.stream"
TOKEN = "reader-7c1f9a2e4b"
TIMEOUT = 30.0
"""Seconds a request may take: generous, for a loaded machine (the first OpenAPI document is built on request)."""

Read = Callable[[MarketReader], pa.Table]

CASES: dict[str, tuple[str, dict[str, Any], Read]] = {
    # name: (route, query, the same read through the Python API)
    "candles_5m_every_coin": (
        "candles", {"interval": "5m", "start": "2026-11-15T00:00:00Z"},
        lambda r: r.candles(None, "5m", "2026-11-15T00:00:00Z", output="arrow"),
    ),
    "candles_1h_as_of_with_forming_bar": (
        "candles", {"interval": "1h", "start": "2026-11-15", "as_of": "2026-11-16T05:30:00Z", "include_forming": "true",
                    "coin": ["SOL", "ETH"]},
        lambda r: r.candles(["SOL", "ETH"], "1h", "2026-11-15", as_of="2026-11-16T05:30:00Z", include_forming=True,
                            output="arrow"),
    ),
    "candles_1h_verified_only_epoch_ms": (
        "candles", {"interval": "1h", "start": "1794700000000", "end": "1794900000000", "verified_only": "true"},
        lambda r: r.candles(None, "1h", 1_794_700_000_000, 1_794_900_000_000, verified_only=True, output="arrow"),
    ),
    "candles_1w_every_coin": (
        "candles", {"interval": "1w", "start": "2026-11-01"},
        lambda r: r.candles(None, "1w", "2026-11-01", output="arrow"),
    ),
    "features_two_columns_as_of": (
        "features", {"start": "2026-11-16T22:00:00Z", "coin": "BTC", "columns": ["ema_200", "rsi_14"],
                     "as_of": "2026-11-17T03:00:00Z"},
        lambda r: r.features("BTC", "2026-11-16T22:00:00Z", columns=["ema_200", "rsi_14"], as_of="2026-11-17T03:00:00Z",
                             output="arrow"),
    ),
    "features_all_columns": (
        "features", {"start": "2026-11-17T10:00:00Z"},
        lambda r: r.features(None, "2026-11-17T10:00:00Z", output="arrow"),
    ),
    "funding_every_coin": (
        "funding", {"start": "2026-11-15"},
        lambda r: r.funding(None, "2026-11-15", output="arrow"),
    ),
    "polymarket_markets_active": (
        "polymarket/markets", {"active": "true"},
        lambda r: r.polymarket_markets(active=True, output="arrow"),
    ),
    "polymarket_markets_search": (
        "polymarket/markets", {"search": "BTC"},
        lambda r: r.polymarket_markets(search="BTC", output="arrow"),
    ),
    "defillama_series_tvl": (
        "defillama/series", {"series": "tvl", "subject": ["Solana", "total"], "start": "2026-10-20"},
        lambda r: r.defillama_series(["Solana", "total"], "2026-10-20", series="tvl", output="arrow"),
    ),
}

PAGED: dict[str, tuple[str, dict[str, Any], int, Read]] = {
    # name: (route, query, page size, the whole read through the Python API)
    "candles_1m_three_coins": (
        "candles", {"interval": "1m", "start": "2026-11-16T20:00:00Z", "end": "2026-11-17T02:00:00Z"}, 97,
        lambda r: r.candles(None, "1m", "2026-11-16T20:00:00Z", "2026-11-17T02:00:00Z", output="arrow"),
    ),
    "candles_15m_across_the_gap": (
        "candles", {"interval": "15m", "start": "2026-11-15", "coin": ["ETH", "SOL"]}, 50,
        lambda r: r.candles(["ETH", "SOL"], "15m", "2026-11-15", output="arrow"),
    ),
    "candles_1d_coins_read_together": (  # 4 days a coin: two coins' whole ranges fit in a page of 7
        "candles", {"interval": "1d", "start": "2026-11-15", "end": "2026-11-19"}, 7,
        lambda r: r.candles(None, "1d", "2026-11-15", "2026-11-19", output="arrow"),
    ),
    "features": ("features", {"start": "2026-11-17T09:00:00Z", "columns": "macd"}, 211,
                 lambda r: r.features(None, "2026-11-17T09:00:00Z", columns=["macd"], output="arrow")),
    "funding": ("funding", {"start": "2026-11-15"}, 40, lambda r: r.funding(None, "2026-11-15", output="arrow")),
    "polymarket_markets": ("polymarket/markets", {}, 1, lambda r: r.polymarket_markets(output="arrow")),
    "defillama_series": ("defillama/series", {}, 7, lambda r: r.defillama_series(output="arrow")),
}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    return seed_read_memory(tmp_path_factory.mktemp("read-http") / "market.db")


@pytest.fixture(scope="module")
def base(seeded: Seeded) -> Iterator[str]:
    with served_api(seeded.path) as url:
        yield url


@pytest.fixture(scope="module")
def reader(seeded: Seeded) -> Iterator[MarketReader]:
    with MarketReader(seeded.path) as opened:
        yield opened


def get(base: str, route: str, query: dict[str, Any], **headers: str) -> httpx.Response:
    response = httpx.get(f"{base}/api/v1/{route}", params=query, headers=headers, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response


def arrow_table(response: httpx.Response) -> pa.Table:
    assert response.headers["content-type"] == ARROW
    return pa.ipc.open_stream(response.content).read_all()


# ---- the same rows as the Python API ----


@pytest.fixture(scope="module")
def on_postgresql(seeded: Seeded, postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory,
                  ) -> Iterator[tuple[str, MarketReader]]:
    """The seeded memory's rows in PostgreSQL: ``market --db postgresql://… api`` and a reader of it."""
    home = tmp_path_factory.mktemp("read-http-home")
    with on_postgres(seeded.path, postgres_server) as url, \
            served_api(url, {"MARKET_HOME": str(home), "MARKET_ARCHIVE": str(seeded.path.parent / "archive")}) as served, \
            MarketReader(url, archive=seeded.path.parent / "archive") as opened:
        yield served, opened


@pytest.mark.parametrize("case", CASES)
def test_json_arrow_and_csv_hold_the_python_readers_rows_value_by_value(base: str, reader: MarketReader, case: str) -> None:
    assert_every_format_holds_the_readers_rows(base, reader, case)


ON_POSTGRESQL = ("candles_5m_every_coin", "candles_1h_as_of_with_forming_bar", "candles_1h_verified_only_epoch_ms",
                 "features_two_columns_as_of", "funding_every_coin", "polymarket_markets_search", "defillama_series_tvl")
"""A case of each route and of each way a bar is composed (the others read what these do)."""


@pytest.mark.parametrize("case", ON_POSTGRESQL)
def test_on_postgresql_json_arrow_and_csv_hold_the_python_readers_rows_value_by_value(
    on_postgresql: tuple[str, MarketReader], reader: MarketReader, case: str
) -> None:
    """The API over a PostgreSQL memory: the same rows as its Python reader, which reads what SQLite's does."""
    served, postgres_reader = on_postgresql
    read = CASES[case][2]
    assert python_rows(read(postgres_reader)) == python_rows(read(reader))
    assert_every_format_holds_the_readers_rows(served, postgres_reader, case)


@pytest.mark.parametrize("case", ["candles_15m_across_the_gap"])
def test_on_postgresql_pages_add_up_to_the_whole_read(on_postgresql: tuple[str, MarketReader], case: str) -> None:
    served, postgres_reader = on_postgresql
    route, query, limit, read = PAGED[case]
    want = python_rows(read(postgres_reader))
    pages = _pages(served, route, query, limit, arrow=True)
    assert len(pages) > 1 and python_rows(pa.concat_tables(pages)) == want  # type: ignore[arg-type]


def assert_every_format_holds_the_readers_rows(base: str, reader: MarketReader, case: str) -> None:
    route, query, read = CASES[case]
    want = read(reader)
    assert want.num_rows > 0, "a case that reads nothing proves nothing"

    document = get(base, route, query).json()
    assert document["next"] is None
    assert json_rows(document["data"], want.schema) == python_rows(want)

    got = arrow_table(get(base, route, query, accept=ARROW))
    assert got.schema == want.schema  # the reader's own types: UTC ms timestamps, int64, bool, lists
    assert python_rows(got) == python_rows(want)

    text = get(base, route, {**query, "format": "csv"})
    assert text.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv_rows(text.text, want.schema) == python_rows(want)


def test_an_empty_read_keeps_the_readers_columns_and_types(base: str, reader: MarketReader) -> None:
    query = {"interval": "4h", "start": "2020-01-01", "end": "2020-02-01"}
    want = reader.candles(None, "4h", "2020-01-01", "2020-02-01", output="arrow")
    assert want.num_rows == 0
    assert get(base, "candles", query).json() == {"data": [], "next": None}
    assert arrow_table(get(base, "candles", query, accept=ARROW)).schema == want.schema
    assert get(base, "candles", {**query, "format": "csv"}).text.splitlines() == [",".join(f'"{n}"' for n in want.schema.names)]


def test_format_wins_over_accept_and_accept_chooses_otherwise(base: str) -> None:
    query = {"interval": "1d", "start": "2026-11-15", "coin": "BTC"}
    assert get(base, "candles", {**query, "format": "json"}, accept=ARROW).headers["content-type"] == "application/json"
    assert get(base, "candles", {**query, "format": "arrow"}).headers["content-type"] == ARROW
    assert get(base, "candles", query, accept="text/csv").headers["content-type"] == "text/csv; charset=utf-8"
    assert get(base, "candles", query, accept="*/*").headers["content-type"] == "application/json"


# ---- paging ----


def _pages(base: str, route: str, query: dict[str, Any], limit: int, *, arrow: bool) -> list[pa.Table | list[dict[str, Any]]]:
    pages: list[pa.Table | list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        paged = {**query, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = get(base, route, paged, **({"accept": ARROW} if arrow else {}))
        if arrow:
            page: pa.Table | list[dict[str, Any]] = arrow_table(response)
            following = response.headers.get("x-next-cursor")
        else:
            document = response.json()
            page, following = document["data"], document["next"]
            assert following == response.headers.get("x-next-cursor")
        pages.append(page)
        if following is None:
            assert "link" not in response.headers
            return pages
        # RFC 8288: the next page's URL is this query with the cursor.
        link = response.headers["link"]
        assert link.startswith("<") and link.endswith('>; rel="next"')
        url = urlsplit(link[1:-len('>; rel="next"')])
        assert url.path == f"/api/v1/{route}"
        assert dict(parse_qsl(url.query))["cursor"] == following
        cursor = following
        assert len(pages) < 1000


@pytest.mark.parametrize("case", PAGED)
def test_pages_of_a_small_limit_add_up_to_the_whole_read_with_no_row_twice(base: str, reader: MarketReader, case: str) -> None:
    route, query, limit, read = PAGED[case]
    want = python_rows(read(reader))
    assert len(want) > limit, "the case must span pages"

    pages = _pages(base, route, query, limit, arrow=False)
    assert [len(page) for page in pages[:-1]] == [limit] * (len(pages) - 1)
    assert 0 < len(pages[-1]) <= limit
    rows = json_rows([row for page in pages for row in page], read(reader).schema)  # type: ignore[union-attr]
    assert rows == want

    tables = _pages(base, route, query, limit, arrow=True)
    assert len(tables) == len(pages)
    assert python_rows(pa.concat_tables(tables)) == want  # type: ignore[arg-type]


def test_a_cursor_continues_only_the_query_that_returned_it(base: str) -> None:
    query = {"interval": "1h", "start": "2026-11-15", "limit": 5}
    following = get(base, "candles", query).json()["next"]
    assert following is not None
    for other in ({**query, "interval": "2h"}, {**query, "coin": "BTC"}, {**query, "start": "2026-11-16"}):
        refused = httpx.get(f"{base}/api/v1/candles", params={**other, "cursor": following}, timeout=TIMEOUT)
        assert refused.status_code == 400
        assert refused.json()["detail"].startswith("cursor: continues another query")
    # The page size may change between pages.
    assert len(get(base, "candles", {**query, "limit": 3, "cursor": following}).json()["data"]) == 3
    refused = httpx.get(f"{base}/api/v1/funding", params={"start": "2026-11-15", "cursor": following}, timeout=TIMEOUT)
    assert refused.status_code == 400


# ---- refusals ----

BAD: list[tuple[str, dict[str, Any], str]] = [
    ("candles", {"interval": "2m", "start": "2026-11-15"}, f"interval: '2m' is not one of {', '.join(INTERVALS)}"),
    ("candles", {"interval": "1h", "start": "2026-11-15", "coin": ["BTC", "XYZ"]}, "coin: unknown coin 'XYZ'"),
    ("candles", {"interval": "1h", "start": "1969-12-31T23:59:59Z"}, "start: '1969-12-31T23:59:59Z' is outside the times the memory holds (1970 to 2527)"),
    ("candles", {"interval": "1h", "start": "yesterday"}, "start: 'yesterday' is neither an ISO-8601 time nor epoch milliseconds"),
    ("candles", {"interval": "1h", "start": "2026-11-17", "end": "2026-11-16"},
     "start: 2026-11-17T00:00:00.000Z is after end 2026-11-16T00:00:00.000Z"),
    ("candles", {"interval": "1h", "start": "2026-11-15", "as_of": "99999999999999999999"},
     "as_of: '99999999999999999999' is outside the times the memory holds (1970 to 2527)"),
    ("funding", {"start": "2600-01-01"}, "start: '2600-01-01' is outside the times the memory holds (1970 to 2527)"),
    ("candles", {"interval": "1h", "start": "2026-11-15", "include_forming": "maybe"}, "include_forming: Expected `bool`, got `str`"),
    ("candles", {"interval": "1h", "start": "2026-11-15", "limit": "0"}, "limit: Expected `int` >= 1"),
    ("candles", {"interval": "1h", "start": "2026-11-15", "limit": "100001"}, "limit: Expected `int` <= 100000"),
    ("candles", {"interval": "1h", "start": "2026-11-15", "format": "xml"}, "format: Invalid enum value 'xml'"),
    ("candles", {"interval": "1h", "start": "2026-11-15", "cursor": "not-a-cursor"},
     "cursor: not a cursor of this API (send back the `next` of the previous page)"),
    ("features", {"start": "2026-11-15", "columns": "vwap"}, "columns: 'vwap' not among"),
    ("funding", {"start": "2026-11-15", "coin": "PEPE"}, "coin: unknown coin 'PEPE'"),
    ("polymarket/markets", {"active": "sometimes"}, "active: Expected `bool | null`, got `str`"),
    ("defillama/series", {"start": "2026-11-15", "end": "2026-10-01"}, "start: 2026-11-15T00:00:00Z is after end"),
]


@pytest.mark.parametrize(("route", "query", "detail"), BAD, ids=[f"{r}-{d.split(':')[0]}" for r, _, d in BAD])
def test_a_bad_parameter_is_a_400_naming_it(base: str, route: str, query: dict[str, Any], detail: str) -> None:
    refused = httpx.get(f"{base}/api/v1/{route}", params=query, timeout=TIMEOUT)
    assert refused.status_code == 400, refused.text
    assert refused.headers["content-type"] == "application/json"
    assert refused.json()["detail"].startswith(detail), refused.json()


def test_a_missing_required_parameter_is_a_400(base: str) -> None:
    for route, query in (("candles", {"start": "2026-11-15"}), ("candles", {"interval": "1h"}), ("features", {})):
        refused = httpx.get(f"{base}/api/v1/{route}", params=query, timeout=TIMEOUT)
        assert refused.status_code == 400
        assert "Missing required query parameter" in refused.json()["detail"]


# ---- access, a missing memory, HEAD, OpenAPI ----

ROUTES = {
    "candles": {"interval": "1h", "start": "2026-11-17"},
    "features": {"start": "2026-11-17T12:00:00Z"},
    "funding": {"start": "2026-11-17"},
    "polymarket/markets": {},
    "defillama/series": {},
}


def test_reads_follow_the_dashboards_access_rules(seeded: Seeded) -> None:
    env = {"MARKET_DASHBOARD_REQUIRES_ADMIN": "true", "MARKET_ADMIN_USER_IDS": "ops-1", "MARKET_API_TOKENS": TOKEN}
    with served_api(seeded.path, env) as url:
        for route, query in ROUTES.items():
            address = f"{url}/api/v1/{route}"
            anonymous = httpx.get(address, params=query, timeout=TIMEOUT)
            assert (anonymous.status_code, anonymous.json()["detail"]) == (401, "missing x-user-id header (or a bearer token)")
            assert httpx.get(address, params=query, headers={"x-user-id": "trader-9"}, timeout=TIMEOUT).status_code == 403
            assert httpx.get(address, params=query, headers={"authorization": "Bearer wrong"}, timeout=TIMEOUT).status_code == 401
            assert httpx.get(address, params=query, headers={"x-user-id": "ops-1"}, timeout=TIMEOUT).status_code == 200
            bearer = httpx.get(address, params=query, headers={"authorization": f"Bearer {TOKEN}", "accept": ARROW}, timeout=TIMEOUT)
            assert bearer.status_code == 200 and arrow_table(bearer).num_rows > 0


def test_no_memory_at_the_path_is_a_503_naming_it_and_nothing_is_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "market.db"
    with served_api(missing) as url:
        for route, query in ROUTES.items():
            answer = httpx.get(f"{url}/api/v1/{route}", params=query, timeout=TIMEOUT)
            assert answer.status_code == 503, route
            assert answer.json()["detail"] == f"no market memory at {missing}"
            assert httpx.head(f"{url}/api/v1/{route}", params=query, timeout=TIMEOUT).status_code == 503
    assert not missing.parent.exists()


def test_head_answers_with_the_headers_of_get(base: str) -> None:
    query = {"interval": "1h", "start": "2026-11-15", "end": "2026-11-17", "limit": 3}  # an end: the same cursor
    for headers in ({}, {"accept": ARROW}):
        got = httpx.get(f"{base}/api/v1/candles", params=query, headers=headers, timeout=TIMEOUT)
        head = httpx.head(f"{base}/api/v1/candles", params=query, headers=headers, timeout=TIMEOUT)
        assert (head.status_code, head.content) == (200, b"")
        for name in ("content-type", "content-length", "x-next-cursor"):
            assert head.headers[name] == got.headers[name]


def test_the_openapi_document_describes_every_read(base: str) -> None:
    schema = httpx.get(f"{base}/schema/openapi.json", timeout=TIMEOUT).json()
    for route, names in {
        "candles": {"coin", "interval", "start", "end", "as_of", "include_forming", "verified_only"},
        "features": {"coin", "start", "end", "columns", "as_of"},
        "funding": {"coin", "start", "end", "as_of"},
        "polymarket/markets": {"search", "active"},
        "defillama/series": {"subject", "series", "start", "end"},
    }.items():
        operation = schema["paths"][f"/api/v1/{route}"]["get"]
        parameters = {p["name"]: p for p in operation["parameters"]}
        assert names | {"limit", "cursor", "format", "x-user-id"} == set(parameters), route
        assert (parameters["limit"]["schema"]["maximum"], parameters["limit"]["schema"]["default"]) == (100_000, 10_000)
        ok = operation["responses"]["200"]
        assert set(ok["content"]) == {"application/json", ARROW, "text/csv"}
        assert {"X-Next-Cursor", "Link"} <= set(ok["headers"])
        assert {"400", "401", "403", "503"} <= set(operation["responses"])
        assert operation["security"] == [{"bearerToken": []}, {}]
    candles = schema["paths"]["/api/v1/candles"]["get"]
    (interval,) = [p for p in candles["parameters"] if p["name"] == "interval"]
    assert interval["schema"]["enum"] == list(INTERVALS) and interval["required"] is True
    candle = schema["components"]["schemas"]["Candle"]["properties"]
    assert list(candle) == CANDLE_SCHEMA.names
    assert candle["open_time"] == {"type": "string", "format": "date-time"}


def test_every_coin_is_read_when_none_is_named(base: str, reader: MarketReader) -> None:
    rows = get(base, "candles", {"interval": "1d", "start": "2026-11-15"}).json()["data"]
    assert sorted({row["coin"] for row in rows}) == sorted(COINS)
    assert set(reader.coins()) - set(COINS) == {"DOGE"}  # listed, no candles: no rows, no error


def test_concurrent_reads_share_the_one_reader_and_agree(base: str, reader: MarketReader) -> None:
    """The app's one MarketReader serves every worker thread (a connection each), and JSON and CSV
    are written through DuckDB cursors of their own: 24 requests at once, four reads in three
    formats, each equal to the Python API's."""
    kinds = [CASES[name] for name in ("candles_5m_every_coin", "features_all_columns", "funding_every_coin",
                                       "candles_1h_as_of_with_forming_bar")]

    def rows(i: int) -> list[dict[str, Any]]:
        route, query, read = kinds[i % 4]
        schema = read(reader).schema
        if i % 3 == 0:
            return python_rows(arrow_table(get(base, route, query, accept=ARROW)))
        if i % 3 == 1:
            return json_rows(get(base, route, query).json()["data"], schema)
        return csv_rows(get(base, route, {**query, "format": "csv"}).text, schema)

    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(rows, range(24)))
    for i, answer in enumerate(answers):
        assert answer == python_rows(kinds[i % 4][2](reader)), i


def test_the_apps_reader_closes_on_shutdown_the_connections_its_worker_threads_opened(seeded: Seeded) -> None:
    with TestClient(create_app(Settings(db_path=seeded.path))) as client:  # its lifespan runs the shutdown hook
        for route, query in ROUTES.items():
            assert client.get(f"/api/v1/{route}", params=query).status_code == 200
