"""Data quality (SPEC §12): checks of the data itself, Dagster-free.

Each check is a pure read of the memory at a given clock (:class:`QualityCheck`), returning a
:class:`CheckOutcome` that names what failed and where (coin, minute, value). The Dagster code
location wraps every check of :data:`~market_assets.quality.catalog.CHECKS` as an asset check;
the latest outcome of each is kept in the memory (``memory.checks``), where the dashboard,
``/metrics`` and the monitor read it.
"""

from market_assets.quality.outcome import CheckOutcome, Problem, QualityCheck, Severity

__all__ = ["CheckOutcome", "Problem", "QualityCheck", "Severity"]
