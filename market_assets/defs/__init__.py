"""Dagster definitions, one package per source, composed by ``market_assets.definitions``.

Everything here is a thin binding of Dagster-free code (the memory, the ledger, the clients,
the registry) to Dagster's assets, schedules, sensors and freshness policies.
"""
