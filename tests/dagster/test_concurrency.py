"""Every run of a channel's asset claims its source's concurrency pool, however it was launched.

A run tag exists only on the runs of the job that sets it: the UI's Materialize button, its
backfill dialog and ``dagster asset materialize`` run the implicit asset job, which carries none.
A pool is part of the asset's definition, so it is in every run's plan whoever created the run.
"""

from __future__ import annotations

import dagster as dg
import pytest

from market_assets.definitions import defs
from market_assets.defs.automation import GROUP_TAG
from market_assets.defs.history import tvl_history
from market_assets.defs.hyperliquid.funding import funding_asset
from market_assets.defs.resources import MarketMemory

REPOSITORY = defs.get_repository_def()
EXECUTABLE = sorted(
    (key for key in REPOSITORY.asset_graph.get_all_asset_keys() if REPOSITORY.asset_graph.get(key).is_executable),
    key=lambda key: key.to_user_string(),
)


def pools_of(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    run = instance.get_run_by_id(run_id)
    assert run is not None and run.run_op_concurrency is not None
    return set(run.run_op_concurrency.all_pools or ())


@pytest.mark.parametrize("key", EXECUTABLE, ids=lambda key: key.to_user_string())
def test_a_run_launched_as_the_ui_launches_it_claims_the_source_pool(key: dg.AssetKey, instance: dg.DagsterInstance) -> None:
    """The UI's Materialize and ``dagster asset materialize`` create a run of the implicit asset
    job with an asset selection, and no tag of ours."""
    run = instance.create_run_for_job(
        job_def=REPOSITORY.get_implicit_global_asset_job_def(), asset_selection=frozenset({key})
    )
    assert GROUP_TAG not in run.tags
    assert pools_of(instance, run.run_id) == {key.path[0]}


def test_materializing_the_asset_itself_not_its_job_claims_the_source_pool(
    offline: MarketMemory, instance: dg.DagsterInstance
) -> None:
    result = dg.materialize([funding_asset], resources={"memory": offline}, instance=instance)
    assert result.success
    assert GROUP_TAG not in instance.get_run_by_id(result.run_id).tags
    assert pools_of(instance, result.run_id) == {"hyperliquid"}


def test_a_backfill_run_over_a_partition_range_claims_the_source_pool(
    offline: MarketMemory, instance: dg.DagsterInstance
) -> None:
    result = dg.materialize(
        [tvl_history],
        resources={"memory": offline},
        instance=instance,
        tags={"dagster/asset_partition_range_start": "2023-01-10", "dagster/asset_partition_range_end": "2023-01-12"},
    )
    assert result.success
    assert pools_of(instance, result.run_id) == {"defillama"}
