"""SPEC §11: every interval equals a pandas resample of the 1-minute rows of the same range,
whichever of minutes, rollups and archive holds them."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from market_assets.ledger import Ledger
from market_assets.maintenance import run_maintenance
from market_assets.memory import connect
from market_assets.memory.connection import close
from market_assets.read import INTERVALS, MarketReader
from tests.conftest import FrozenClock
from tests.market_data import store
from tests.read.conftest import BOTH_ENGINES
from tests.read.seeding import (
    COINS,
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    NOW_MS,
    ROLLED_MS,
    STALE_FORMING_MS,
    START_MS,
    Market,
    copy_market,
    prune_minutes_before,
    roll_up,
    walk,
)
from tests.read.truth import (
    WIDTH_MS,
    assert_same_bars,
    expected_bars,
    minutes_frame,
)

WEEK_MS = 7 * DAY_MS
EVERYTHING = (START_MS - WEEK_MS, NOW_MS + DAY_MS)


def test_the_intervals_are_hyperliquids() -> None:
    assert tuple(INTERVALS) == tuple(WIDTH_MS)


def test_every_interval_over_all_history_equals_a_resample_of_the_minutes(
    market: Market, minutes: pd.DataFrame, reader: MarketReader
) -> None:
    """Rolled hours, hours rolled then revised, confirmed or backfilled (their rollups stale), the
    hours after the last maintenance run (minutes only), gaps, a late listing, unverified minutes."""
    for interval in INTERVALS:
        for forming in (False, True):
            got = reader.candles(None, interval, *EVERYTHING, include_forming=forming)
            want = expected_bars(minutes, None, interval, *EVERYTHING, market.now_ms, include_forming=forming)
            assert_same_bars(got, want, f"{interval} include_forming={forming}")


@BOTH_ENGINES
def test_minutes_changed_after_their_rollup_show_in_every_interval_above_them(
    market: Market, minutes: pd.DataFrame, reader: MarketReader
) -> None:
    """A minute revised (high x 1.01, more volume), one confirmed and one backfilled after their
    hour was rolled up: their rollups are queued, stale until the next maintenance run."""
    for coin, changed in market.changed_after_rollup:
        for interval in ("5m", "15m", "1h", "4h", "1d", "1w"):
            opened = changed - changed % WIDTH_MS[interval]
            want = expected_bars(minutes, [coin], interval, opened, opened + 1, market.now_ms)
            assert len(want) == 1
            assert_same_bars(reader.candles(coin, interval, opened, opened + 1), want, f"{coin} {interval} at {changed}")


@BOTH_ENGINES
def test_a_minute_never_closed_is_in_no_bar(market: Market, minutes: pd.DataFrame, reader: MarketReader) -> None:
    assert reader.candles("SOL", "1m", STALE_FORMING_MS, STALE_FORMING_MS + MINUTE_MS).empty
    for interval in ("5m", "1h"):
        opened = STALE_FORMING_MS - STALE_FORMING_MS % WIDTH_MS[interval]
        got = reader.candles("SOL", interval, opened, opened + 1)
        assert_same_bars(got, expected_bars(minutes, ["SOL"], interval, opened, opened + 1, market.now_ms), interval)
        assert not got.complete.iloc[0]


def test_a_read_across_the_prune_boundary_equals_the_minutes_before_they_were_pruned(
    market: Market, minutes: pd.DataFrame, tmp_path: Path
) -> None:
    """Days 0-3 pruned to their rollups (as memories pruned before the archive existed are):
    every interval a rollup can make (multiples of 5 minutes) is still the resample of the
    minutes as they were; 1m and 3m cannot be made from rollups, so those days have no bars
    there and nothing is invented."""
    pruned = copy_market(market, tmp_path / "pruned.db")
    roll_up(pruned)
    boundary = START_MS + 4 * DAY_MS
    assert prune_minutes_before(pruned, boundary) > 3 * 1440
    left = minutes[(minutes.open_time_ms >= boundary) | ~minutes.closed]
    with MarketReader(pruned.path, clock=FrozenClock(pruned.now_ms)) as reader:
        for interval in INTERVALS:
            truth = left if WIDTH_MS[interval] % 300_000 else minutes
            got = reader.candles(None, interval, *EVERYTHING, include_forming=True)
            assert_same_bars(got, expected_bars(truth, None, interval, *EVERYTHING, pruned.now_ms, include_forming=True),
                             f"{interval} across the prune boundary")


TIMES = st.integers(EVERYTHING[0], EVERYTHING[1])
COIN_CHOICES = st.one_of(st.none(), st.sampled_from(COINS), st.lists(st.sampled_from(COINS), min_size=1, max_size=3, unique=True))


def as_input(ms: int, form: str) -> object:
    """One of the time forms a caller may pass: epoch ms, naive or aware datetime, Timestamp, ISO text."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return {"ms": ms, "naive": moment.replace(tzinfo=None), "aware": moment, "timestamp": pd.Timestamp(ms, unit="ms", tz="UTC"),
            "iso": moment.isoformat()}[form]


@settings(max_examples=60, deadline=None, database=None)
@given(interval=st.sampled_from(list(WIDTH_MS)), coins=COIN_CHOICES, bounds=st.tuples(TIMES, TIMES),
       as_of=st.one_of(st.none(), st.integers(START_MS, NOW_MS)), forming=st.booleans(), verified_only=st.booleans(),
       form=st.sampled_from(["ms", "naive", "aware", "timestamp", "iso"]))
def test_any_range_interval_and_coins_equal_a_resample_of_the_minutes(
    market: Market, minutes: pd.DataFrame, reader: MarketReader, interval: str, coins: str | list[str] | None,
    bounds: tuple[int, int], as_of: int | None, forming: bool, verified_only: bool, form: str,
) -> None:
    start, end = sorted(bounds)
    # Whole milliseconds survive every form; ISO text and datetimes carry microseconds, no finer.
    got = reader.candles(coins, interval, as_input(start, form), as_input(end, form),
                         as_of=None if as_of is None else as_input(as_of, form), include_forming=forming,
                         verified_only=verified_only)
    selected = None if coins is None else [coins] if isinstance(coins, str) else coins
    want = expected_bars(minutes, selected, interval, start, end, market.now_ms, as_of_ms=as_of,
                         include_forming=forming, verified_only=verified_only)
    assert_same_bars(got, want, f"{interval} {coins} [{start}, {end}) as_of={as_of} forming={forming}")


GAPS = st.lists(st.tuples(st.integers(0, 3 * 1440), st.integers(1, 180)), max_size=6)


@settings(max_examples=12, deadline=None, database=None)
@given(gaps=GAPS, unconfirmed=st.sets(st.integers(0, 3 * 1440 - 1), max_size=20), rolled_at=st.integers(0, 3 * 1440),
       interval=st.sampled_from(list(WIDTH_MS)), seed=st.integers(0, 2**16))
def test_any_gaps_in_the_minutes_before_and_after_a_rollup_equal_a_resample(
    gaps: list[tuple[int, int]], unconfirmed: set[int], rolled_at: int, interval: str, seed: int
) -> None:
    """Three days of one coin with runs of minutes missing and minutes unconfirmed; maintenance
    ran after minute ``rolled_at``; the rest came after it."""
    count = 3 * 1440
    missing = {m for first, length in gaps for m in range(first, min(first + length, count))}
    rows = [r._replace(confirmed=(r.open_time_ms - START_MS) // MINUTE_MS not in unconfirmed)
            for r in walk("ETH", START_MS, count, 2_999.5, seed, unconfirmed=0.0, drop=0.0)
            if (r.open_time_ms - START_MS) // MINUTE_MS not in missing]
    now = START_MS + count * MINUTE_MS + 7_000
    rolled_ms = START_MS + rolled_at * MINUTE_MS
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "market.db"
        clock = FrozenClock(rolled_ms)
        conn = connect(path, clock=clock)
        try:
            store(conn, [r for r in rows if r.open_time_ms < rolled_ms], rolled_ms)
            run_maintenance(conn, Ledger(conn, clock))
            store(conn, [r for r in rows if r.open_time_ms >= rolled_ms], now)
        finally:
            close(conn)
        with MarketReader(path, clock=FrozenClock(now)) as reader:
            got = reader.candles("ETH", interval, START_MS - WEEK_MS, now + WEEK_MS)
        assert_same_bars(got, expected_bars(minutes_frame(rows), None, interval, START_MS - WEEK_MS, now + WEEK_MS, now),
                         f"{interval}, gaps {gaps}, rolled at minute {rolled_at}")


@BOTH_ENGINES
def test_the_hours_after_the_last_rollup_are_composed_from_their_minutes(
    market: Market, minutes: pd.DataFrame, reader: MarketReader
) -> None:
    """The 4h and 1d bars that close after the last maintenance run hold rolled hours and hours
    that exist only as minutes."""
    assert ROLLED_MS % HOUR_MS != 0
    for interval in ("1h", "4h", "12h", "1d", "1w"):
        width = WIDTH_MS[interval]
        opened = ROLLED_MS - ROLLED_MS % width
        got = reader.candles(None, interval, opened, opened + 1, include_forming=True)
        want = expected_bars(minutes, None, interval, opened, opened + 1, market.now_ms, include_forming=True)
        assert len(want) == len(COINS)
        assert_same_bars(got, want, interval)


@BOTH_ENGINES
def test_weekly_bars_open_on_thursday_and_daily_ones_at_midnight_utc(reader: MarketReader) -> None:
    """Epoch-aligned as Hyperliquid's own candles: 1970-01-01 was a Thursday."""
    weeks = reader.candles("BTC", "1w", START_MS - WEEK_MS, include_forming=True)
    assert [t.day_name() for t in weeks.open_time] == ["Thursday"] * 3
    assert [t.isoformat() for t in weeks.open_time] == [f"2026-11-{d}T00:00:00+00:00" for d in (12, 19, 26)]
    days = reader.candles("BTC", "1d", START_MS)
    assert {(t.hour, t.minute) for t in days.open_time} == {(0, 0)} and len(days) == 9
    eight = reader.candles("BTC", "8h", START_MS, START_MS + DAY_MS)
    assert [t.hour for t in eight.open_time] == [0, 8, 16]
