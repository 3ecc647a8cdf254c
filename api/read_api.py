"""``GET /api/v1/candles``, ``/features``, ``/funding``, ``/polymarket/markets``, ``/defillama/series``:
the Python reader (:class:`market_assets.read.MarketReader`) over HTTP, with its parameters and
its rows (SPEC §11).

JSON by default, ``{"data": [rows], "next": cursor or null}``, times as ISO-8601 UTC text; the
Arrow IPC stream for ``Accept: application/vnd.apache.arrow.stream`` (or ``format=arrow``); CSV
for ``format=csv`` (or ``Accept: text/csv``). Every format also carries the next page's cursor
in ``X-Next-Cursor`` and an RFC 8288 ``Link: <…>; rel="next"`` header (``api.read_paging``).

The routes sit with the dashboard, behind its guard: public by default, admins and bearer tokens
only with ``MARKET_DASHBOARD_REQUIRES_ADMIN``. A bad parameter is a 400 whose detail names it
(the reader's own ``ValueError`` text, which starts with the argument's name, with the reader's
``coins``/``subjects`` spelled as the query's ``coin``/``subject``); a memory that cannot be read
is a 503 (``api.errors``). Reads run in a worker thread: the reader keeps one SQLite connection
per thread, and the event loop keeps serving health meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import msgspec
import pyarrow as pa
from litestar import Controller, MediaType, Request, Response, get
from litestar.di import NamedDependency
from litestar.exceptions import ClientException
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Schema,
)
from litestar.params import Parameter

from api.errors import ErrorBody
from api.openapi import GUARDED_ERRORS, GuardedOperation
from api.read_paging import (
    Cursor,
    Key,
    TimeRead,
    fingerprint,
    keyed_page,
    time_keyed_page,
)
from market_assets.clock import Clock
from market_assets.read import (
    INTERVALS,
    MINUTE_MS,
    MarketReader,
    parse_time,
)
from market_assets.read_formats import (
    ARROW_STREAM,
    arrow_stream_bytes,
    csv_bytes,
    json_document,
)

DEFAULT_LIMIT = 10_000
"""A week of 1-minute bars of one coin is one page and a bit (10,080 rows): ~2.2 MB of JSON in
~0.1 s, so a client that forgets ``limit`` gets a quick, bounded answer."""

MAX_LIMIT = 100_000
"""Rows a page may hold. 100,000 candles (20 coins of 1-minute bars): 7.9 MB of Arrow served in
~0.7 s, 1.2-1.3x the Python API's own time for the same rows; 22 MB of JSON in ~1.1 s; 11 MB of
CSV (measured on loopback, on a loaded machine, 2026-12-02). A page is built whole in memory, so
the cap bounds what one request holds; a bigger read is more pages, each as fast as the first
(the cursor seeks, ``api.read_paging``)."""

CSV = "text/csv"
NEXT_HEADER = "X-Next-Cursor"

HOUR_MS = 60 * MINUTE_MS


# ---- what the rows look like (OpenAPI only: rows are encoded from the reader's Arrow table) ----


class Candle(msgspec.Struct):
    coin: str
    open_time: datetime
    close_time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int
    minutes: int
    complete: bool
    verified: bool


class Feature(msgspec.Struct):
    coin: str
    open_time: datetime
    close_time: datetime
    rsi_14: float | None = None
    bb_upper_20: float | None = None
    bb_middle_20: float | None = None
    bb_lower_20: float | None = None
    sma_20: float | None = None
    sma_50: float | None = None
    sma_200: float | None = None
    ema_20: float | None = None
    ema_50: float | None = None
    ema_200: float | None = None
    macd: float | None = None
    macd_signal: float | None = None
    macd_hist: float | None = None


class FundingRate(msgspec.Struct):
    coin: str
    hour: datetime
    time: datetime
    funding_rate: float
    premium: float | None
    settled: bool


class PolymarketMarket(msgspec.Struct):
    market_id: str
    question: str | None
    slug: str | None
    outcomes: list[str] | None
    outcome_prices: list[float] | None
    volume: float | None
    liquidity: float | None
    end_date: str | None
    active: bool | None
    closed: bool | None
    updated_at: datetime


class DefiLlamaPoint(msgspec.Struct):
    series: str
    subject: str
    ts: datetime
    value: float
    updated_at: datetime


class CandlesPage(msgspec.Struct):
    data: list[Candle]
    next: str | None


class FeaturesPage(msgspec.Struct):
    data: list[Feature]
    next: str | None


class FundingPage(msgspec.Struct):
    data: list[FundingRate]
    next: str | None


class PolymarketMarketsPage(msgspec.Struct):
    data: list[PolymarketMarket]
    next: str | None


class DefiLlamaSeriesPage(msgspec.Struct):
    data: list[DefiLlamaPoint]
    next: str | None


@dataclass
class ReadOperation(GuardedOperation):
    """A read's operation: its 200 also comes as an Arrow stream and as CSV, with the next cursor
    in headers (Litestar describes one media type per response)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        ok = (self.responses or {}).get("200")
        assert isinstance(ok, OpenAPIResponse) and ok.content is not None
        binary = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
        ok.content[ARROW_STREAM] = OpenAPIMediaType(schema=binary)
        ok.content[CSV] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
        ok.headers = {
            NEXT_HEADER: OpenAPIHeader(
                schema=Schema(type=OpenAPIType.STRING),
                description="The cursor of the next page; absent on the last page.",
            ),
            "Link": OpenAPIHeader(
                schema=Schema(type=OpenAPIType.STRING),
                description='`<url of the next page>; rel="next"` (RFC 8288); absent on the last page.',
            ),
        }


def _page_of(container: type[msgspec.Struct]) -> dict[int, ResponseSpec]:
    success = ResponseSpec(
        data_container=container,
        description=f"One page of rows. JSON by default; `Accept: {ARROW_STREAM}` or `format=arrow` for an Arrow "
        f"IPC stream, `format=csv` (or `Accept: {CSV}`) for CSV with a header line.",
        generate_examples=False,
    )
    return {200: success, 400: _BAD_PARAMETER, **GUARDED_ERRORS}


_BAD_PARAMETER = ResponseSpec(
    data_container=ErrorBody,
    description="A parameter is not valid; the detail names it (e.g. `interval: '2m' is not one of …`).",
    generate_examples=False,
)

# ---- parameters ----

TIME_TEXT = "ISO-8601 (e.g. `2026-11-18T00:00:00Z`; without an offset: UTC) or epoch milliseconds."
TIME_SCHEMA: dict[str, Any] = {
    "type": None,
    "one_of": None,
    "any_of": [
        Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME),
        Schema(type=OpenAPIType.STRING, pattern="^[0-9]+$", description="epoch milliseconds"),
    ],
}
"""A time parameter as the document shows it (the handler reads it as text): ISO-8601, or digits."""

Coins = Annotated[
    list[str] | None,
    Parameter(description="A coin, as Hyperliquid names it (`BTC`); repeat for more. None: every known coin."),
]
Interval = Annotated[
    str,
    Parameter(
        description="Bar width; every interval is aligned to the epoch (1w bars open on Thursdays 00:00 UTC).",
        schema_extra={"enum": list(INTERVALS)},
    ),
]
Start = Annotated[
    str, Parameter(description=f"First bar/row at or after this time. {TIME_TEXT}", schema_extra=TIME_SCHEMA)
]
OptionalStart = Annotated[
    str | None, Parameter(description=f"First row at or after this time. {TIME_TEXT}", schema_extra=TIME_SCHEMA)
]
End = Annotated[
    str | None,
    Parameter(description=f"Rows before this time; default: every row known by `as_of` (or now). {TIME_TEXT}",
              schema_extra=TIME_SCHEMA),
]
AsOf = Annotated[
    str | None,
    Parameter(description=f"Point in time: nothing closed or observed after it is returned. {TIME_TEXT}",
              schema_extra=TIME_SCHEMA),
]
Limit = Annotated[
    int,
    Parameter(ge=1, le=MAX_LIMIT, description=f"Rows per page, at most {MAX_LIMIT}; `next` continues."),
]
CursorText = Annotated[
    str | None,
    Parameter(description="The `next` of the previous page; send it with that page's other parameters."),
]
Format = Annotated[
    Literal["json", "csv", "arrow"] | None,
    Parameter(description="Overrides the Accept header: `json`, `csv` or `arrow` (IPC stream)."),
]


# ---- handlers ----


class ReadController(Controller):
    path = "/api/v1"
    tags = ["read"]

    @get("/candles", sync_to_thread=True, responses=_page_of(CandlesPage), operation_class=ReadOperation)
    def candles(
        self,
        request: Request[Any, Any, Any],
        market_reader: NamedDependency[MarketReader],
        clock: NamedDependency[Clock],
        interval: Interval,
        start: Start,
        coin: Coins = None,
        end: End = None,
        as_of: AsOf = None,
        include_forming: Annotated[
            bool, Parameter(description="Add the bar containing `as_of` (or now), from the minutes closed by then; complete=false.")
        ] = False,
        verified_only: Annotated[bool, Parameter(description="Drop bars with a minute not yet confirmed.")] = False,
        limit: Limit = DEFAULT_LIMIT,
        cursor: CursorText = None,
        format: Format = None,
    ) -> Response[bytes]:
        """Bars of any Hyperliquid interval, sorted by (coin, open_time), as ``MarketReader.candles``
        returns them: composed from 1-minute rows, rollups and the Parquet archive; a bar is
        returned once closed (by `as_of`, or now), built from closed minutes only; `complete`:
        every minute of the bar present, `verified`: every minute confirmed."""
        with _bad_parameters():
            reader = market_reader
            span = _TimeSpan.parse(start, end, as_of, clock)
            step_ms = _interval_ms(interval)

            def read(coins: list[str] | None, since_ms: int, until_ms: int) -> pa.Table:
                return reader.candles(
                    coins, interval, since_ms, until_ms, as_of=span.as_of_ms,
                    include_forming=include_forming, verified_only=verified_only, output="arrow",
                )

            table, next_cursor = _time_keyed(
                read, _coins(reader, coin), span, cursor, limit, time_column="open_time", step_ms=step_ms,
                query={"route": "candles", "coins": _sorted(coin), "interval": interval, "forming": include_forming, "verified": verified_only},
            )
        return _respond(request, format, table, next_cursor)

    @get("/features", sync_to_thread=True, responses=_page_of(FeaturesPage), operation_class=ReadOperation)
    def features(
        self,
        request: Request[Any, Any, Any],
        market_reader: NamedDependency[MarketReader],
        clock: NamedDependency[Clock],
        start: Start,
        coin: Coins = None,
        end: End = None,
        columns: Annotated[
            list[str] | None, Parameter(description="Feature columns to return (repeat for more); none: all.")
        ] = None,
        as_of: AsOf = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: CursorText = None,
        format: Format = None,
    ) -> Response[bytes]:
        """Technical features of each closed minute (RSI, Bollinger Bands, SMAs, EMAs, MACD), sorted
        by (coin, open_time); a feature is known at its minute's close, `close_time`."""
        with _bad_parameters():
            reader = market_reader
            span = _TimeSpan.parse(start, end, as_of, clock)

            def read(coins: list[str] | None, since_ms: int, until_ms: int) -> pa.Table:
                return reader.features(coins, since_ms, until_ms, columns, as_of=span.as_of_ms, output="arrow")

            table, next_cursor = _time_keyed(
                read, _coins(reader, coin), span, cursor, limit, time_column="open_time", step_ms=MINUTE_MS,
                query={"route": "features", "coins": _sorted(coin), "columns": columns},
            )
        return _respond(request, format, table, next_cursor)

    @get("/funding", sync_to_thread=True, responses=_page_of(FundingPage), operation_class=ReadOperation)
    def funding(
        self,
        request: Request[Any, Any, Any],
        market_reader: NamedDependency[MarketReader],
        clock: NamedDependency[Clock],
        start: Start,
        coin: Coins = None,
        end: End = None,
        as_of: AsOf = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: CursorText = None,
        format: Format = None,
    ) -> Response[bytes]:
        """Hourly funding rates sorted by (coin, hour): `time` is when the rate was observed or
        settled, `settled` whether the hour is final."""
        with _bad_parameters():
            reader = market_reader
            span = _TimeSpan.parse(start, end, as_of, clock)

            def read(coins: list[str] | None, since_ms: int, until_ms: int) -> pa.Table:
                return reader.funding(coins, since_ms, until_ms, as_of=span.as_of_ms, output="arrow")

            table, next_cursor = _time_keyed(
                read, _coins(reader, coin), span, cursor, limit, time_column="hour", step_ms=HOUR_MS,
                query={"route": "funding", "coins": _sorted(coin)},
            )
        return _respond(request, format, table, next_cursor)

    @get("/polymarket/markets", sync_to_thread=True, responses=_page_of(PolymarketMarketsPage), operation_class=ReadOperation)
    def polymarket_markets(
        self,
        request: Request[Any, Any, Any],
        market_reader: NamedDependency[MarketReader],
        search: Annotated[
            str | None, Parameter(description="Case-insensitive substring of the question or the slug.")
        ] = None,
        active: Annotated[bool | None, Parameter(description="Only active (true) or inactive (false) markets.")] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: CursorText = None,
        format: Format = None,
    ) -> Response[bytes]:
        """The tracked Polymarket markets' latest summaries, sorted by `market_id`."""
        with _bad_parameters():
            reader = market_reader
            query = fingerprint({"route": "polymarket", "search": search, "active": active})
            after = _continue(cursor, query, (str,))
            table = reader.polymarket_markets(search=search, active=active, output="arrow")
            table, key = keyed_page(table, ("market_id",), limit, None if after is None else after.key)
        return _respond(request, format, table, _next(query, None, key))

    @get("/defillama/series", sync_to_thread=True, responses=_page_of(DefiLlamaSeriesPage), operation_class=ReadOperation)
    def defillama_series(
        self,
        request: Request[Any, Any, Any],
        market_reader: NamedDependency[MarketReader],
        subject: Annotated[
            list[str] | None, Parameter(description="A subject (a chain, `total`, a peg type); repeat for more.")
        ] = None,
        series: Annotated[
            list[str] | None, Parameter(description="A series (`tvl`, `stablecoin_supply`, `dex_volume`, `fees`); repeat.")
        ] = None,
        start: OptionalStart = None,
        end: Annotated[
            str | None, Parameter(description=f"Points before this time. {TIME_TEXT}", schema_extra=TIME_SCHEMA)
        ] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: CursorText = None,
        format: Format = None,
    ) -> Response[bytes]:
        """DefiLlama's macro series (TVL, stablecoin supply, DEX volume, fees), sorted by
        (series, subject, ts)."""
        with _bad_parameters():
            reader = market_reader
            start_ms, end_ms = _parse_time("start", start), _parse_time("end", end)
            query = fingerprint(
                {"route": "defillama", "subjects": _sorted(subject), "series": _sorted(series), "start": start_ms, "end": end_ms}
            )
            after = _continue(cursor, query, (str, str, int))
            table = reader.defillama_series(subject, start_ms, end_ms, series=series, output="arrow")
            table, key = keyed_page(table, ("series", "subject", "ts"), limit, None if after is None else after.key)
        return _respond(request, format, table, _next(query, None, key))


# ---- parsing ----


@dataclass(frozen=True, slots=True)
class _TimeSpan:
    start_ms: int
    given_end_ms: int | None
    as_of_ms: int | None
    now_ms: int

    @classmethod
    def parse(cls, start: str, end: str | None, as_of: str | None, clock: Clock) -> _TimeSpan:
        start_ms, end_ms = _parse_time("start", start), _parse_time("end", end)
        assert start_ms is not None
        if end_ms is not None and start_ms > end_ms:
            raise ValueError(f"start: {_iso(start_ms)} is after end {_iso(end_ms)}")
        return cls(start_ms, end_ms, _parse_time("as_of", as_of), clock())

    @property
    def end_ms(self) -> int:
        """Where the rows end: ``end``, or just after the moment rows must be known by (``as_of``,
        never later than now): every row's time key (a bar's open, a feature's minute, a funding
        hour) is at or before its known time, so a read without ``end`` holds nothing later."""
        known_by = self.now_ms if self.as_of_ms is None else min(self.as_of_ms, self.now_ms)
        return known_by + 1 if self.given_end_ms is None else min(self.given_end_ms, known_by + 1)


def _time_keyed(
    read: TimeRead,
    coins: list[str],
    span: _TimeSpan,
    cursor: str | None,
    limit: int,
    *,
    time_column: str,
    step_ms: int,
    query: dict[str, Any],
) -> tuple[pa.Table, str | None]:
    """A page of a read keyed by (coin, time), and the cursor of the next one."""
    identity = fingerprint({**query, "start": span.start_ms, "end": span.given_end_ms, "as_of": span.as_of_ms})
    after = _continue(cursor, identity, (str, int))
    end_ms = span.end_ms if after is None or after.end_ms is None else after.end_ms
    table, key = time_keyed_page(
        read, coins, time_column=time_column, step_ms=step_ms, start_ms=span.start_ms, end_ms=end_ms,
        limit=limit, after=None if after is None else after.key,
    )
    return table, _next(identity, end_ms, key)


def _parse_time(name: str, text: str | None) -> int | None:
    """Epoch ms of a time parameter, read as the Python reader reads it (``read.parse_time``)."""
    return None if text is None else parse_time(text, name)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _interval_ms(interval: str) -> int:
    if interval not in INTERVALS:
        raise ValueError(f"interval: {interval!r} is not one of {', '.join(INTERVALS)}")
    return INTERVALS[interval]


def _sorted(values: list[str] | None) -> list[str] | None:
    return None if values is None else sorted(set(values))


def _coins(reader: MarketReader, coins: list[str] | None) -> list[str]:
    """The coins a read walks through, in the order the reader sorts rows by."""
    return sorted(set(reader.coins() if coins is None else coins))


def _continue(cursor: str | None, query: str, shape: tuple[type, ...]) -> Cursor | None:
    return None if cursor is None else Cursor.decode(cursor, query, shape)


def _next(query: str, end_ms: int | None, key: Key | None) -> str | None:
    return None if key is None else Cursor(query, end_ms, key).encode()



_QUERY_NAMES = {"coins": "coin", "subjects": "subject"}
"""The reader's argument names that the query spells otherwise (one value per repetition)."""


@contextmanager
def _bad_parameters() -> Iterator[None]:
    """A ``ValueError`` of the parsing or of the reader (which names the argument) as a 400."""
    try:
        yield
    except ValueError as error:
        if isinstance(error, pa.ArrowException):
            raise  # Arrow's own, a fault of this code or of the data: a 500
        name, colon, rest = str(error).partition(":")
        detail = f"{_QUERY_NAMES.get(name, name)}{colon}{rest}"
        raise ClientException(detail=detail) from error


# ---- output ----


def _respond(request: Request[Any, Any, Any], requested: str | None, table: pa.Table, next_cursor: str | None) -> Response[bytes]:
    chosen = requested or {ARROW_STREAM: "arrow", CSV: "csv"}.get(
        request.accept.best_match([MediaType.JSON, ARROW_STREAM, CSV], default=MediaType.JSON), "json"
    )
    headers = {"Vary": "Accept"}
    if next_cursor is not None:
        query = [(name, value) for name, value in request.query_params.multi_items() if name != "cursor"]
        url = request.url.with_replacements(query=urlencode([*query, ("cursor", next_cursor)]))
        headers |= {NEXT_HEADER: next_cursor, "Link": f'<{url}>; rel="next"'}
    if chosen == "arrow":
        return Response(arrow_stream_bytes(table), media_type=ARROW_STREAM, headers=headers)
    if chosen == "csv":
        return Response(csv_bytes(table), media_type=CSV, headers=headers)
    return Response(json_document(table, next_cursor), media_type=MediaType.JSON, headers=headers)
