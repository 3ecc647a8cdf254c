"""/admin/ingestion in a real browser: Debian's chromium driven by Playwright against `market api`.

Statuses and warnings must be readable in the DOM, hostile source text (a market question
carrying a ``<script>``) must show as text and never run, and a screenshot is kept under
tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient
from playwright.sync_api import Page, sync_playwright

from api import create_app
from api.admin_page import CoverageCache
from api.readers import Readers
from market_assets.clock import wall_clock_ms
from market_assets.ledger import Ledger
from market_assets.memory import open_memory
from market_assets.memory.admin_history import MinuteState
from market_assets.registry import CANDLES, FUNDING, POLYMARKET_SUMMARY
from market_assets.settings import Settings
from tests.conftest import FrozenClock
from tests.market_data import MINUTE_MS

from .seeding import candle_fidelity, candles, finished_run, listed
from .server import served_api

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
HOSTILE_QUESTION = 'Will <script>window.__pwned = 1</script> "win" & <b>lose</b>?'
HOSTILE_DETAIL = "<img src=x onerror=\"window.__pwned = 2\">"
PAGE = "/admin/ingestion"


def seed(path: Path) -> None:
    now = wall_clock_ms()
    with open_memory(path) as conn:
        listed(conn, ["BTC", "ETH"], now)
        candles(conn, "BTC", now - 120_000, now - 60_000)
        finished_run(conn, wall_clock_ms, CANDLES, started_at_ms=now - 61_000, finished_at_ms=now - 1000, rows=2,
                     metadata={"reconnects": 1, "parse_errors": 0})
        stale_ms = now - (FUNDING.stale_after_sec + 600) * 1000
        finished_run(conn, wall_clock_ms, FUNDING, started_at_ms=stale_ms - 5000, finished_at_ms=stale_ms, rows=3)
        finished_run(conn, wall_clock_ms, POLYMARKET_SUMMARY, started_at_ms=now - 9000, finished_at_ms=now - 8000,
                     error=f"SourceError: gamma market 512 {HOSTILE_QUESTION!r} has no outcomePrices",
                     metadata={"question": HOSTILE_DETAIL})


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``market api`` as a real server process on a loopback port, over a seeded memory."""
    db = tmp_path / "served.db"
    seed(db)
    with served_api(db) as base:
        yield base, db


def row_counts(page: Page) -> dict[str, tuple[int, ...]]:
    """Each channel's rows of the last hour, of the last 24 hours and in all, as the page shows them."""
    headers = page.eval_on_selector_all("thead th", "cells => cells.map(c => c.innerText.toLowerCase())")
    columns = [headers.index(name) for name in ("rows 1 h", "rows 24 h", "total rows")]
    cells = page.eval_on_selector_all(
        "tr.channel", f"rows => rows.map(r => [r.dataset.channel, {columns}.map(i => r.cells[i].innerText)])")
    return {channel: tuple(int(text.replace(",", "")) for text in texts) for channel, texts in cells}


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
            viewport={"width": 1366, "height": 768},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def test_the_page_shows_statuses_warnings_and_hostile_text_as_text(served: tuple[str, Path], page: Page) -> None:
    base, db = served
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    response = page.goto(base + PAGE, wait_until="load")
    assert response is not None and response.status == 200

    statuses = page.eval_on_selector_all("tr.channel", "rows => rows.map(r => [r.dataset.channel, r.dataset.status])")
    assert dict(statuses) == {
        "hyperliquid/candles": "ok", "hyperliquid/funding": "stale", "hyperliquid/features": "missing",
        "hyperliquid/maintenance": "missing", "polymarket/discovery": "missing", "polymarket/summary": "failed",
        "defillama/macro": "missing",
    }
    failed_badge = page.locator('tr[data-channel="polymarket/summary"] .status')
    assert failed_badge.inner_text() == "failed"
    assert failed_badge.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(197, 34, 31)"
    assert page.locator('tr[data-channel="hyperliquid/funding"] .status').evaluate(
        "e => getComputedStyle(e).backgroundColor") == "rgb(227, 116, 0)"
    warnings = page.locator('tr.channel[data-channel="hyperliquid/funding"] .warning')
    assert warnings.all_inner_texts() == ["stale", "low_coverage"]
    assert page.locator('tr.channel[data-channel="polymarket/summary"] .warning').all_inner_texts() == ["recent_failures"]
    assert page.locator("#overall").inner_text() == "not ok"

    failure = page.locator('tr.details[data-channel="polymarket/summary"] .failure').inner_text()
    assert HOSTILE_QUESTION in failure
    assert page.eval_on_selector_all("tr.details details", "all => all.map(d => d.open)") == [False] * 7
    page.locator('tr.details[data-channel="polymarket/summary"] summary').click()
    assert HOSTILE_DETAIL in page.locator('tr.details[data-channel="polymarket/summary"] details').inner_text()
    assert page.evaluate("() => [window.__pwned, document.scripts.length, document.images.length]") == [None, 0, 0]
    assert errors == []
    assert page.locator('meta[http-equiv="refresh"]').get_attribute("content") == "30"

    # Rows written after the page counted the tables: on reload the last hour (read live) must not
    # pass the last 24 hours or the total (counted a moment ago) beside it.
    assert row_counts(page)["hyperliquid/candles"] == (2, 2, 2)
    now = wall_clock_ms()
    with open_memory(db) as conn:
        candles(conn, "ETH", *(now - 50 * 60_000 + i * 60_000 for i in range(35)))
    page.reload(wait_until="load")
    counts = row_counts(page)
    assert counts["hyperliquid/candles"] == (37, 37, 37)
    assert all(hour <= day <= total for hour, day, total in counts.values()), counts

    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1366  # no horizontal scroll at 1366 px
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "admin-ingestion.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_the_page_is_unlinked_and_forbids_every_script(memory: Path) -> None:
    with TestClient(create_app(Settings(db_path=memory))) as client:
        response = client.get(PAGE)
        schema = client.get("/schema/openapi.json").json()
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "<script" not in response.text and "<a " not in response.text
    assert PAGE not in schema["paths"]


def test_the_candles_row_shows_unverified_queued_corrected_no_trade_minutes_and_rejected_frames(
    conn: sqlite3.Connection, memory_path: Path, clock: FrozenClock, page: Page
) -> None:
    candle_fidelity(conn, clock)
    with TestClient(create_app(Settings(db_path=memory_path), clock=clock)) as client:
        page.set_content(client.get(PAGE).text)

    headers = page.eval_on_selector_all("thead th", "cells => cells.map(c => c.innerText.toLowerCase())")
    column = headers.index("unverified / queued")
    cells = page.eval_on_selector_all(
        "tr.channel", f"rows => rows.map(r => [r.dataset.channel, r.cells[{column}].innerText])")
    assert dict(cells) == {
        "hyperliquid/candles": "2 / 4", "hyperliquid/funding": "—", "hyperliquid/features": "—",
        "hyperliquid/maintenance": "—", "polymarket/discovery": "—", "polymarket/summary": "—", "defillama/macro": "—",
    }
    assert page.locator('tr.channel[data-channel="hyperliquid/candles"] .warning').all_inner_texts() == ["unverified_candles"]
    details = page.locator('tr.details[data-channel="hyperliquid/candles"]')
    details.locator("summary").click()
    assert details.locator(".fidelity").inner_text() == (
        "24 h: 2 unverified minutes (oldest opened 2026-11-18 10:55:00 UTC), 2 no-trade minutes; repair queue 4; "
        "last hour: 3 corrected minutes, rejected frames low_above_high 1, non_finite 3")
    assert ("unverified_candles: 2 unverified minutes in the last 24 h; the oldest, opened 2026-11-18 10:55:00 UTC, "
            "closed 660s ago, over 600s") in details.inner_text()
    assert page.locator('tr.details[data-channel="hyperliquid/funding"] .fidelity').count() == 0


def test_the_candles_row_shows_a_line_per_streamer_shard_in_sight(
    conn: sqlite3.Connection, memory_path: Path, clock: FrozenClock, page: Page
) -> None:
    for shard, ended_ago_min, coins in (("1/2", 1, 5), ("2/2", 9, 6)):
        ended = clock.now_ms - ended_ago_min * MINUTE_MS
        run = Ledger(conn, FrozenClock(ended)).start(
            CANDLES, started_at_ms=ended - MINUTE_MS, metadata={"shard": shard, "coins": coins}
        )
        run.succeed(finished_at_ms=ended)
    with TestClient(create_app(Settings(db_path=memory_path), clock=clock)) as client:
        page.set_content(client.get(PAGE).text)

    shards = page.locator('tr.details[data-channel="hyperliquid/candles"] .shard')
    assert [line.is_visible() for line in shards.all()] == [True, True]  # not folded away
    assert shards.all_inner_texts() == [
        "shard 1/2: ok, 5 coins, last window 60 s ago",
        "shard 2/2: stale, 6 coins, last window 9 min ago — shard 2/2: no window for 9 min",
    ]
    assert page.locator('tr.channel[data-channel="hyperliquid/candles"]').get_attribute("data-status") == "stale"
    assert page.locator('tr.details[data-channel="hyperliquid/funding"] .shard').count() == 0


def test_the_coverage_strip_is_read_once_then_redrawn_after_a_response_once_a_newer_minute_ended(
    conn: sqlite3.Connection, memory_path: Path, clock: FrozenClock
) -> None:
    """Its read counts every candle of the day (~40-150 ms at 200 coins): kept per app, like the
    dashboard's volumes, and read again after a response, not while a person waits."""
    cache, readers = CoverageCache(), Readers(memory_path)
    listed(conn, ["BTC"], clock())
    with readers.connection() as reader:
        first = cache.value(reader, clock())
    assert [s.state for s in first.coins["BTC"]] == [MinuteState.MISSING]
    candles(conn, "BTC", first.end_ms - MINUTE_MS)
    clock.advance(seconds=(first.end_ms + MINUTE_MS - clock() - 1) / 1000)  # the minute's last millisecond
    assert cache.refresh_task(readers, clock, clock()) is None
    clock.advance(seconds=0.001)
    with readers.connection() as reader:
        assert cache.value(reader, clock()) is first  # kept until the redraw has run
    task = cache.refresh_task(readers, clock, clock())
    assert task is not None and cache.refresh_task(readers, clock, clock()) is None  # one redraw at a time
    asyncio.run(task())
    with readers.connection() as reader:
        redrawn = cache.value(reader, clock())
    assert redrawn.end_ms == first.end_ms + MINUTE_MS
    assert [s.state for s in redrawn.coins["BTC"]] == [MinuteState.MISSING, MinuteState.CONFIRMED, MinuteState.MISSING]
