"""The dashboard's warning thresholds are declared in the registry, per channel, beside the cadence."""

from __future__ import annotations

import pytest

from market_assets.registry import (
    CANDLES,
    DEFILLAMA_MACRO,
    MAINTENANCE,
    MAX_RECENT_FAILURES,
    MAX_RECENT_THROTTLES,
    MIN_COVERAGE,
    RECENT_RUNS_CADENCES,
    RECENT_RUNS_WINDOW,
    REGISTRY,
    UNVERIFIED_CANDLES_AFTER,
    Channel,
    DataLocation,
    WarningThresholds,
)


def test_data_lag_defaults_to_the_stale_threshold() -> None:
    assert CANDLES.warnings.data_lag_sec == CANDLES.stale_after_sec == 360
    for declared in REGISTRY:
        if declared is not DEFILLAMA_MACRO:
            assert declared.warnings.data_lag_sec == declared.stale_after_sec


def test_daily_defillama_points_may_lag_two_days() -> None:
    assert DEFILLAMA_MACRO.warnings.data_lag_sec == 2 * 86_400


def test_recent_window_is_an_hour_or_three_cadences_for_slower_channels() -> None:
    assert CANDLES.warnings.recent_window_sec == RECENT_RUNS_WINDOW.total_seconds() == 3600
    assert MAINTENANCE.warnings.recent_window_sec == RECENT_RUNS_CADENCES * 3600


def test_any_failure_or_throttle_warns_and_coverage_wants_nine_tenths() -> None:
    for declared in REGISTRY:
        assert declared.warnings.recent_failures == MAX_RECENT_FAILURES == 1
        assert declared.warnings.throttles == MAX_RECENT_THROTTLES == 1
        assert declared.warnings.min_coverage == MIN_COVERAGE == 0.9


def test_only_streamed_candles_warn_about_unverified_minutes_after_ten_minutes() -> None:
    assert CANDLES.warnings.unverified_after_sec == UNVERIFIED_CANDLES_AFTER.total_seconds() == 600
    assert [c.key for c in REGISTRY if c.warnings.unverified_after_sec is not None] == ["hyperliquid/candles"]


def test_an_explicit_warning_threshold_wins() -> None:
    custom = Channel("s", "c", 60, "d", DataLocation("t", "ts", "x"), warnings=WarningThresholds(data_lag_sec=30, recent_window_sec=90))
    assert (custom.warnings.data_lag_sec, custom.warnings.recent_window_sec) == (30, 90)


@pytest.mark.parametrize("ratio", [0.0, 1.5])
def test_a_coverage_that_is_not_a_ratio_is_refused(ratio: float) -> None:
    with pytest.raises(ValueError, match="minimum coverage"):
        Channel("s", "c", 60, "d", DataLocation("t", "ts", "x"), warnings=WarningThresholds(min_coverage=ratio))
