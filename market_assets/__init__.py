"""The platform's library and its Dagster code location.

The market memory, the channel registry, the ledger, health evaluation and the source clients
are Dagster-free modules, so the streamer and the API import them without importing Dagster.
"""
