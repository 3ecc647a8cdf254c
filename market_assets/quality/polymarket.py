"""Asset checks of polymarket (filled in by issue 16's work in progress)."""

from __future__ import annotations

from market_assets.quality.outcome import QualityCheck

CHECKS: tuple[QualityCheck, ...] = ()
