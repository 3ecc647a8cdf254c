"""A second process reading a PostgreSQL-backed Dagster instance, as the webserver or the daemon
on another host would.

    DAGSTER_HOME=... MARKET_DAGSTER_POSTGRES_URL=... python postgres_instance_reader.py RUN_ID ASSET_KEY CHECK_NAME

psycopg 3 is made unimportable first, as in an image holding Dagster alone: the instance must load
on psycopg2, the driver dagster-postgres is written for. Prints one JSON object: each store's class
and driver, the run (status, job, tags), the asset's latest materialization (run, metadata), the
check's latest evaluation, and the schedule ticks stored for ``reader-test-schedule``.
"""

from __future__ import annotations

import json
import sys

sys.modules["psycopg"] = None  # type: ignore[assignment]  # import psycopg -> ModuleNotFoundError

import dagster as dg
from dagster._core.definitions.run_request import InstigatorType


def main(run_id: str, asset_path: str, check_name: str) -> None:
    key = dg.AssetKey(asset_path.split("/"))
    with dg.DagsterInstance.get() as instance:
        stores = [instance.run_storage, instance.event_log_storage, instance.schedule_storage]
        record = instance.get_run_record_by_id(run_id)
        assert record is not None, f"run {run_id} not found"
        event = instance.get_latest_materialization_event(key)
        assert event is not None and event.asset_materialization is not None
        check = instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(key, check_name))
        assert check is not None and check.event is not None and check.event.dagster_event is not None
        evaluation = check.event.dagster_event.asset_check_evaluation_data
        ticks = instance.get_ticks("reader-test-origin", "reader-test-selector")
        print(json.dumps({
            "stores": [f"{type(store).__name__} {store._engine.dialect.driver}" for store in stores],  # type: ignore[union-attr]
            "run": {"status": record.dagster_run.status.value, "job": record.dagster_run.job_name,
                    "group": record.dagster_run.tags.get("market/group")},
            "materialization": {"run_id": event.run_id,
                                "metadata": {k: v.value for k, v in event.asset_materialization.metadata.items()}},
            "check": {"run_id": check.run_id, "passed": evaluation.passed,
                      "metadata": {k: v.value for k, v in evaluation.metadata.items()}},
            "ticks": [{"type": tick.instigator_type.value, "status": tick.status.value, "run_ids": list(tick.run_ids)}
                      for tick in ticks if tick.instigator_type is InstigatorType.SCHEDULE],
            "psycopg3_loaded": "psycopg" in sys.modules and sys.modules["psycopg"] is not None,
        }))


if __name__ == "__main__":
    main(*sys.argv[1:4])
