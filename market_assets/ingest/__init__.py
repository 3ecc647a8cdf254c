"""The work of each scheduled channel, Dagster-free: what its asset and its manual command run.

Each channel module has an async ``collect`` (reads its sources, writes nothing) and a ``store``
(one memory write); :func:`market_assets.ingest.runner.run_channel` wraps them in the channel's
ledger run, or reports what a dry run would write.
"""
