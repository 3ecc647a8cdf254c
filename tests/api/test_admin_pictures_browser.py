"""/admin/ingestion's pictures in Debian's Chromium, under the page's own headers: the sparklines
and the coverage strip draw exactly the marks a seeded memory calls for, the page's policy
reports no violation (while it does refuse what it should), and a screenshot at 1366×768 is kept."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient
from playwright.sync_api import Locator, Page, Route, sync_playwright

from api import create_app
from market_assets.memory.admin_history import MinuteState
from market_assets.registry import REGISTRY
from market_assets.settings import Settings
from tests.conftest import FrozenClock

from .picture_seeding import (
    COVERAGE_MINUTES,
    EXPECTED_RUNS,
    EXPECTED_SEGMENTS,
    FAILING_SUMMARY,
    NO_TRADES_BEFORE,
    SeededRuns,
    seed_coverage,
    seed_runs,
)
from .test_admin_page import ARTIFACTS, CHROMIUM, PAGE

ORIGIN = "http://admin.test"
DAY_MINUTES = 1440


@pytest.fixture
def small_screen(tmp_path: Path) -> Iterator[Page]:
    """Chromium at 1366×768, the window the page must be read in at a glance."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
            viewport={"width": 1366, "height": 768},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def bars(row: Locator, selector: str) -> int:
    """The bars drawn by the paths ``selector`` finds: one subpath (``M``) each."""
    return int(row.locator(selector).evaluate_all(
        "paths => paths.reduce((n, p) => n + (p.getAttribute('d').match(/M/g) || []).length, 0)"))


def day_segments() -> dict[str, list[tuple[MinuteState, int]]]:
    """The seeded segments over the page's whole day, as (state, minutes): missing before the
    seeded minutes, but for a no-trade span begun earlier."""
    day: dict[str, list[tuple[MinuteState, int]]] = {}
    for coin, segments in EXPECTED_SEGMENTS.items():
        earlier = NO_TRADES_BEFORE.get(coin, 0)
        merged = [(MinuteState.MISSING, DAY_MINUTES - COVERAGE_MINUTES - earlier), (MinuteState.NO_TRADES, earlier)]
        merged = [(state, minutes) for state, minutes in merged if minutes]
        for state, first, after in segments:
            if merged[-1][0] is state:
                merged[-1] = (state, merged[-1][1] + after - first)
            else:
                merged.append((state, after - first))
        day[coin] = merged
    return day


def test_the_pictures_draw_one_mark_per_seeded_run_and_segment_under_the_pages_policy(
    conn: sqlite3.Connection, memory_path: Path, clock: FrozenClock, small_screen: Page, tmp_path: Path
) -> None:
    now = clock()
    seed_coverage(conn, now)
    seed_runs(conn, clock, now)
    with TestClient(create_app(Settings(db_path=memory_path), clock=clock)) as client:
        response = client.get(PAGE)
    assert response.status_code == 200 and "default-src 'none'" in response.headers["content-security-policy"]

    def serve(route: Route) -> None:  # the app's own response, headers and all, at a page address
        route.fulfill(status=response.status_code, headers=dict(response.headers), body=response.content)

    page = small_screen
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.on("pageerror", lambda error: console.append(f"page error: {error}"))
    page.route(ORIGIN + "/**", serve)
    page.goto(ORIGIN + PAGE, wait_until="load")

    for channel in REGISTRY:
        row = page.locator(f'tr.channel[data-channel="{channel.key}"]')
        seeded = EXPECTED_RUNS.get(channel, SeededRuns(0, 0, 0, 0))
        drawn = (
            bars(row, "svg.spark-rows path.bars"), row.locator("svg.spark-rows circle.mark-failed").count(),
            bars(row, "svg.spark-lag path.bars"), bars(row, "svg.spark-lag path.bars.over"),
            row.locator("svg.spark-lag line.threshold").count(),
        )
        assert drawn == (seeded.succeeded + seeded.failed, seeded.failed, seeded.lags, seeded.over, int(seeded.lags > 0)), \
            channel.key
        if not seeded.succeeded + seeded.failed:
            assert row.locator("svg.spark-rows text.empty").text_content() == "no runs in 24 h"

    rects = page.eval_on_selector_all(
        "svg.coverage rect.seg",
        "all => all.map(r => [r.dataset.coin, r.dataset.state, Math.round(r.getBBox().width * 100) / 100])")
    expected = day_segments()
    assert Counter((coin, state) for coin, state, _ in rects) == Counter(
        (coin, state.value) for coin, segments in expected.items() for state, _ in segments)
    assert [coin for coin, _, _ in rects] == [coin for coin, segments in expected.items() for _ in segments]
    assert all(width >= 1 for _, _, width in rects)  # a lone minute is still a visible pixel
    legend = dict(page.eval_on_selector_all(
        ".legend-item", "all => all.map(i => [i.dataset.state, i.querySelector('b').innerText])"))
    minutes = Counter[str]()
    for segments in expected.values():
        for state, length in segments:
            minutes[state.value] += length
    assert legend == {state.value: f"{minutes[state.value]:,}" for state in MinuteState}
    assert page.locator(".troubled").inner_text() == "coins with missing or unfillable minutes: BTC, DOGE, ETH, SOL"

    check = page.locator('tr.details[data-channel="hyperliquid/candles"] .check-failed[data-check="ohlc_invariants"]')
    assert check.inner_text() == f"✗ ohlc_invariants (blocking): {FAILING_SUMMARY}"
    assert check.is_visible() and page.locator(".check-failed").count() == 1
    summary = page.locator('tr.details[data-channel="hyperliquid/candles"] summary').inner_text()
    assert summary.endswith("checks 1 of 2 passed")

    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1366
    assert page.evaluate("() => [document.scripts.length, document.images.length]") == [0, 0]
    assert not [text for text in console if "Content Security Policy" in text or "page error" in text], console
    page.screenshot(path=str(tmp_path / "admin-pictures.png"), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-pictures.png"), full_page=True)
    page.screenshot(path=str(ARTIFACTS / "admin-pictures-1366x768.png"))
    assert (tmp_path / "admin-pictures.png").stat().st_size > 10_000

    # The detector sees what the policy refuses: an external image is blocked and reported.
    page.evaluate("() => { const i = new Image(); i.src = 'http://127.0.0.1:9/x.png'; document.body.append(i); }")
    page.wait_for_timeout(300)
    assert [text for text in console if "Content Security Policy" in text]
